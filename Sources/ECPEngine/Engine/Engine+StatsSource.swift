import ECPProtocol

/// The engine takes no samples of its machines yet: the metrics endpoint then writes only the
/// worker's own figures.
extension Engine: StatsSource {
    public func latestStats() -> StatsSample? { nil }
}
