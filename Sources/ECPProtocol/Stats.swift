/// What one machine uses, as `stats` and the `stats` message report it. A figure libvirt does
/// not give for a machine is nil (null on the wire), never a made-up zero.
public struct MachineStats: Codable, Sendable, Equatable {
    public var name: String
    public var uuid: String
    public var state: String
    public var cpuTimeNs: UInt64?
    /// CPU used since the previous sample the worker took of this machine; 100 is one host core.
    public var cpuPercent: Double?
    public var vcpus: Int?
    /// The current balloon.
    public var memoryKiB: UInt64?
    public var maxMemoryKiB: UInt64?
    public var block: [BlockStats]
    public var net: [InterfaceStats]

    enum CodingKeys: String, CodingKey {
        case name, uuid, state, vcpus, block, net
        case cpuTimeNs = "cpu_time_ns"
        case cpuPercent = "cpu_percent"
        case memoryKiB = "memory_kib"
        case maxMemoryKiB = "max_memory_kib"
    }

    public init(
        name: String, uuid: String, state: String, cpuTimeNs: UInt64? = nil, cpuPercent: Double? = nil,
        vcpus: Int? = nil, memoryKiB: UInt64? = nil, maxMemoryKiB: UInt64? = nil,
        block: [BlockStats] = [], net: [InterfaceStats] = []
    ) {
        self.name = name
        self.uuid = uuid
        self.state = state
        self.cpuTimeNs = cpuTimeNs
        self.cpuPercent = cpuPercent
        self.vcpus = vcpus
        self.memoryKiB = memoryKiB
        self.maxMemoryKiB = maxMemoryKiB
        self.block = block
        self.net = net
    }

    /// Nil members are written as null: a reader tells "libvirt gave nothing" from a field it
    /// does not know.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(uuid, forKey: .uuid)
        try c.encode(state, forKey: .state)
        try c.encode(cpuTimeNs, forKey: .cpuTimeNs)
        try c.encode(cpuPercent, forKey: .cpuPercent)
        try c.encode(vcpus, forKey: .vcpus)
        try c.encode(memoryKiB, forKey: .memoryKiB)
        try c.encode(maxMemoryKiB, forKey: .maxMemoryKiB)
        try c.encode(block, forKey: .block)
        try c.encode(net, forKey: .net)
    }
}

/// One disk's counters since the machine started.
public struct BlockStats: Codable, Sendable, Equatable {
    public var name: String
    public var rdBytes: UInt64?
    public var wrBytes: UInt64?
    public var rdReqs: UInt64?
    public var wrReqs: UInt64?
    public var errs: UInt64?

    enum CodingKeys: String, CodingKey {
        case name, errs
        case rdBytes = "rd_bytes"
        case wrBytes = "wr_bytes"
        case rdReqs = "rd_reqs"
        case wrReqs = "wr_reqs"
    }

    public init(name: String, rdBytes: UInt64? = nil, wrBytes: UInt64? = nil, rdReqs: UInt64? = nil, wrReqs: UInt64? = nil, errs: UInt64? = nil) {
        self.name = name
        self.rdBytes = rdBytes
        self.wrBytes = wrBytes
        self.rdReqs = rdReqs
        self.wrReqs = wrReqs
        self.errs = errs
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(rdBytes, forKey: .rdBytes)
        try c.encode(wrBytes, forKey: .wrBytes)
        try c.encode(rdReqs, forKey: .rdReqs)
        try c.encode(wrReqs, forKey: .wrReqs)
        try c.encode(errs, forKey: .errs)
    }
}

/// One network interface's counters since the machine started.
public struct InterfaceStats: Codable, Sendable, Equatable {
    public var name: String
    public var rxBytes: UInt64?
    public var txBytes: UInt64?
    public var rxPkts: UInt64?
    public var txPkts: UInt64?
    public var rxErrs: UInt64?
    public var txErrs: UInt64?
    public var rxDrop: UInt64?
    public var txDrop: UInt64?

    enum CodingKeys: String, CodingKey {
        case name
        case rxBytes = "rx_bytes", txBytes = "tx_bytes", rxPkts = "rx_pkts", txPkts = "tx_pkts"
        case rxErrs = "rx_errs", txErrs = "tx_errs", rxDrop = "rx_drop", txDrop = "tx_drop"
    }

    public init(name: String) {
        self.name = name
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(rxBytes, forKey: .rxBytes)
        try c.encode(txBytes, forKey: .txBytes)
        try c.encode(rxPkts, forKey: .rxPkts)
        try c.encode(txPkts, forKey: .txPkts)
        try c.encode(rxErrs, forKey: .rxErrs)
        try c.encode(txErrs, forKey: .txErrs)
        try c.encode(rxDrop, forKey: .rxDrop)
        try c.encode(txDrop, forKey: .txDrop)
    }
}

/// One sample of every machine (or one), taken in one bulk libvirt call.
public struct StatsSample: Codable, Sendable, Equatable {
    /// When the sample was taken (ISO 8601 UTC with milliseconds).
    public var collectedAt: String
    public var machines: [MachineStats]

    enum CodingKeys: String, CodingKey {
        case machines
        case collectedAt = "collected_at"
    }

    public init(collectedAt: String, machines: [MachineStats]) {
        self.collectedAt = collectedAt
        self.machines = machines
    }
}

/// `stats`: the periodic sample, published on `stats.<worker-id>`.
public struct StatsMessage: Encodable, Sendable {
    public var type = "stats"
    public var sample: StatsSample

    enum CodingKeys: String, CodingKey {
        case type, machines
        case collectedAt = "collected_at"
    }

    public init(_ sample: StatsSample) {
        self.sample = sample
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encode(sample.machines, forKey: .machines)
        try c.encode(sample.collectedAt, forKey: .collectedAt)
    }
}

/// Where the metrics endpoint finds the latest sample of the machines, without taking one on a
/// command's path (the engine provides it).
public protocol StatsSource: Sendable {
    /// The newest sample taken, or a fresh one when the worker samples only on demand.
    func latestStats() -> StatsSample?
}
