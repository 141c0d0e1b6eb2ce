/// What a host stop does with a machine.
public enum HostStopMode: String, Codable, Sendable, CaseIterable {
    /// ACPI shutdown, the request repeated while it waits, then destroy after the timeout.
    case shutdown
    /// libvirt's managed save: memory to disk; the next start resumes where it was.
    case managedsave
    /// Power off at once.
    case destroy
    /// Left running.
    case none

    /// Every mode's name, for error messages.
    public static let allNames = allCases.map(\.rawValue).joined(separator: ", ")
}

/// How a machine is brought back by a restore and stopped by a host stop, as the state table keeps
/// it: only the members that were set; the others take their defaults.
public struct RestorePolicy: Codable, Sendable, Equatable {
    /// Restore goes by order, lowest first; machines without one come last (and stop first).
    public var order: Int?
    /// After the machines of an order are started, the next order waits the largest of these.
    public var upDelayMs: Int?
    /// Tries after a start or resume failed with a retryable error.
    public var retries: Int?
    public var hostStop: HostStopMode?

    public static let orderRange = 0...1000
    public static let upDelayRange = 0...600_000
    public static let retriesRange = 0...10

    enum CodingKeys: String, CodingKey {
        case order, retries
        case upDelayMs = "up_delay_ms"
        case hostStop = "host_stop"
    }

    public init(order: Int? = nil, upDelayMs: Int? = nil, retries: Int? = nil, hostStop: HostStopMode? = nil) {
        self.order = order
        self.upDelayMs = upDelayMs
        self.retries = retries
        self.hostStop = hostStop
    }

    /// Whether every member takes its default.
    public var isEmpty: Bool { order == nil && upDelayMs == nil && retries == nil && hostStop == nil }

    /// The policy with the defaults filled in.
    public func effective(defaultRetries: Int) -> EffectivePolicy {
        EffectivePolicy(order: order, upDelayMs: upDelayMs ?? 0, retries: retries ?? defaultRetries, hostStop: hostStop ?? .shutdown)
    }

    /// The policy after `change`: members given change, cleared ones go back to their defaults.
    public func applying(_ change: PolicyChange) -> RestorePolicy {
        var p = self
        change.order.apply(to: &p.order)
        change.upDelayMs.apply(to: &p.upDelayMs)
        change.retries.apply(to: &p.retries)
        change.hostStop.apply(to: &p.hostStop)
        return p
    }

    /// What is wrong with a policy read from a file, or nil.
    public var problem: String? {
        if let o = order, !Self.orderRange.contains(o) { return "policy.order \(o) is not in \(Self.orderRange)" }
        if let d = upDelayMs, !Self.upDelayRange.contains(d) { return "policy.up_delay_ms \(d) is not in \(Self.upDelayRange)" }
        if let r = retries, !Self.retriesRange.contains(r) { return "policy.retries \(r) is not in \(Self.retriesRange)" }
        return nil
    }
}

/// A policy with every member given, as results and `report` show it (`order` null when none).
public struct EffectivePolicy: Encodable, Sendable, Equatable {
    public var order: Int?
    public var upDelayMs: Int
    public var retries: Int
    public var hostStop: HostStopMode

    enum CodingKeys: String, CodingKey {
        case order, retries
        case upDelayMs = "up_delay_ms"
        case hostStop = "host_stop"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        // Written as null, not left out: "no order" is a value a reader should see.
        try c.encode(order, forKey: .order)
        try c.encode(upDelayMs, forKey: .upDelayMs)
        try c.encode(retries, forKey: .retries)
        try c.encode(hostStop, forKey: .hostStop)
    }
}

/// `set_policy`'s arguments: for each member, leave it, clear it (null), or set it.
public struct PolicyChange: Sendable, Equatable {
    public var order: Member<Int> = .keep
    public var upDelayMs: Member<Int> = .keep
    public var retries: Member<Int> = .keep
    public var hostStop: Member<HostStopMode> = .keep

    public init() {}

    public enum Member<Value: Sendable & Equatable>: Sendable, Equatable {
        case keep, clear
        case set(Value)

        func apply(to value: inout Value?) {
            switch self {
            case .keep: break
            case .clear: value = nil
            case .set(let v): value = v
            }
        }
    }
}
