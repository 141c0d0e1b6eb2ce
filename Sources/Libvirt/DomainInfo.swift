/// A domain's state and resources, as `virDomainGetInfo` reports them.
public struct DomainInfo: Sendable, Equatable {
    /// The domain's state.
    public var state: DomainState
    /// The most memory the domain may use, in KiB.
    public var maxMemoryKiB: UInt64
    /// The memory the domain uses now, in KiB.
    public var memoryKiB: UInt64
    /// The number of virtual CPUs.
    public var vcpus: UInt32
    /// The CPU time used, in nanoseconds.
    public var cpuTimeNs: UInt64

    /// Creates a value from its fields.
    public init(state: DomainState, maxMemoryKiB: UInt64, memoryKiB: UInt64, vcpus: UInt32, cpuTimeNs: UInt64) {
        self.state = state
        self.maxMemoryKiB = maxMemoryKiB
        self.memoryKiB = memoryKiB
        self.vcpus = vcpus
        self.cpuTimeNs = cpuTimeNs
    }
}
