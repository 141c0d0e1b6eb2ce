import CoreMetrics
import ECPEngine
import ECPProtocol
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import Prometheus
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the endpoint reads from the running worker at each scrape.
public struct MetricsReadings: Sendable {
    public var inFlight: @Sendable () -> Int
    public var libvirtConnected: @Sendable () -> Bool
    public var uptimeSeconds: @Sendable () -> Double

    public init(inFlight: @escaping @Sendable () -> Int, libvirtConnected: @escaping @Sendable () -> Bool, uptimeSeconds: @escaping @Sendable () -> Double) {
        self.inFlight = inFlight
        self.libvirtConnected = libvirtConnected
        self.uptimeSeconds = uptimeSeconds
    }
}

/// The worker's figures and its machines' stats in Prometheus's text format, on `GET /metrics`.
public final class MetricsEndpoint: Sendable {
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public let registry = PrometheusCollectorRegistry()
    private let stats = Mutex<(any StatsSource)?>(nil)
    private let rendered = Mutex<RenderedSample?>(nil)
    private let readings = Mutex<MetricsReadings?>(nil)
    private let inFlight: Prometheus.Gauge
    private let libvirtConnected: Prometheus.Gauge
    private let uptime: Prometheus.Gauge

    public init() {
        func describe(_ name: String) -> MetricNameDescriptor {
            MetricNameDescriptor(metricName: name, unitName: "", helpText: WorkerMetricsFactory.help[name] ?? "")
        }
        inFlight = registry.makeGauge(descriptor: describe(MetricName.inFlight))
        libvirtConnected = registry.makeGauge(descriptor: describe(MetricName.libvirtConnected))
        uptime = registry.makeGauge(descriptor: describe(MetricName.uptime))
    }

    /// The swift-metrics factory whose figures this endpoint serves.
    public var factory: any MetricsFactory { WorkerMetricsFactory(registry: registry) }

    /// Connects the endpoint to the running worker: its readings, and wherever its machines' stats
    /// come from (any `StatsSource`, the engine's by default).
    public func attach(readings: MetricsReadings, stats source: any StatsSource) {
        self.readings.withLock { $0 = readings }
        self.stats.withLock { $0 = source }
    }

    /// One scrape's text. The stats are the source's latest sample, already taken: no libvirt call
    /// runs on the HTTP event loop.
    public func scrape() -> [UInt8] {
        if let r = readings.withLock({ $0 }) {
            inFlight.set(to: Double(r.inFlight()))
            libvirtConnected.set(to: r.libvirtConnected() ? 1 : 0)
            uptime.set(to: r.uptimeSeconds())
        }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(16 << 10)
        registry.emit(into: &buffer)
        if let sample = stats.withLock({ $0 })?.latestStats() {
            buffer += domainText(sample)
        }
        return buffer
    }

    /// The machines' families for a sample: rendered once per sample, by `prepare` on the
    /// sampling thread when the worker samples periodically, else by the first scrape that sees it.
    /// A registry of 1,000 machines takes tens of milliseconds to build; every scrape of the same
    /// sample then costs a copy.
    private func domainText(_ sample: StatsSample) -> [UInt8] {
        let key = RenderedSample.Key(sample)
        if let cached = rendered.withLock({ $0 }), cached.key == key { return cached.text }
        return prepare(sample)
    }

    /// Renders a sample's families and keeps them for the scrapes to come.
    @discardableResult
    public func prepare(_ sample: StatsSample) -> [UInt8] {
        var text: [UInt8] = []
        text.reserveCapacity(sample.machines.count * 600)
        DomainMetrics.registry(for: sample).emit(into: &text)
        rendered.withLock { $0 = RenderedSample(key: .init(sample), text: text) }
        return text
    }

    /// The families of the newest sample rendered, and which sample it was.
    private struct RenderedSample: Sendable {
        struct Key: Equatable, Sendable {
            let collectedAt: String
            let machines: Int
            init(_ sample: StatsSample) {
                collectedAt = sample.collectedAt
                machines = sample.machines.count
            }
        }
        let key: Key
        let text: [UInt8]
    }

    /// The response to a request: the scrape for `GET /metrics` (its head alone for `HEAD`), 404
    /// for any other path or method.
    func respond(to request: Request) -> Response {
        guard request.uri.path == "/metrics", request.method == .get || request.method == .head else {
            return Response(status: .notFound, headers: [.date: Self.httpDate()])
        }
        let response = Response(
            status: .ok, headers: [.contentType: Self.contentType, .date: Self.httpDate()],
            body: .init(byteBuffer: ByteBuffer(bytes: scrape())))
        return request.method == .head ? response.createHeadResponse() : response
    }

    /// Serves until the worker shuts down (graceful shutdown or cancellation). An address that
    /// cannot be bound is logged as an error and the worker runs on without the endpoint.
    ///
    /// HummingbirdCore's HTTP/1.1 server with a responder of its own: Hummingbird's application
    /// layer (router, request contexts, middleware) has nothing to do for one path, and its date
    /// cache would have the idle worker format a date every second through Foundation's ICU time
    /// zones, which maps megabytes of ICU into the process.
    public func serve(host: String, port: Int, logger: Logger, onReady: (@Sendable (Int) -> Void)? = nil) async {
        // Its own event loop thread: however slow or hostile a scraper, the sockets and the
        // engine never wait on it.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var quiet = logger
        quiet.logLevel = .warning
        let http = HTTP1Channel(
            responder: { [self] request, writer, _ in
                let response = respond(to: request)
                try await writer.write(response: response.head, body: response.body)
            },
            // A scraper that connects and says nothing is dropped after the idle timeout.
            configuration: .init(idleTimeout: .seconds(30)))
        let server = http.server(
            configuration: ServerConfiguration(address: .hostname(host, port: port), serverName: nil, backlog: 32),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                logger.notice("metrics endpoint ready", metadata: ["endpoint.metrics": "http://\(host):\(bound)/metrics"])
                onReady?(bound)
            },
            eventLoopGroup: group,
            logger: quiet)
        do {
            try await server.run()
        } catch is CancellationError {
        } catch {
            logger.error(
                "metrics endpoint cannot listen; the worker runs on without it",
                metadata: ["endpoint.metrics": "\(host):\(port)", "error": "\(error)"])
        }
        try? await group.shutdownGracefully()
    }

    /// Now as an HTTP date (RFC 9110's IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`), from the C
    /// library's UTC calendar, not Foundation's (which loads ICU).
    static func httpDate(_ now: time_t = time(nil)) -> String {
        var seconds = now
        var t = tm()
        guard gmtime_r(&seconds, &t) != nil else { return "Thu, 01 Jan 1970 00:00:00 GMT" }
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(days[Int(t.tm_wday)]), \(two(t.tm_mday)) \(months[Int(t.tm_mon)]) \(t.tm_year + 1900) "
            + "\(two(t.tm_hour)):\(two(t.tm_min)):\(two(t.tm_sec)) GMT"
    }
}

/// Splits `host:port` (`[v6]:port` too); nil when it is not one.
public func parseMetricsAddress(_ text: String) -> (host: String, port: Int)? {
    guard let colon = text.lastIndex(of: ":") else { return nil }
    var host = String(text[..<colon])
    guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    guard !host.isEmpty else { return nil }
    return (host, port)
}
