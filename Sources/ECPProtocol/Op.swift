/// The operations a command can ask for (the `op` field).
public enum Op: String, Sendable, CaseIterable, Codable {
    case start, shutdown, destroy, reboot, suspend, resume
    case define, undefine, status, list
    case restore, report, ping
    /// Published messages of this run again, for a subscriber that missed some (control socket only).
    case replay
    /// What the machines use (CPU, memory, disks, network): one machine, or all.
    case stats
    /// A machine's restore policy: order, up delay, retries, host-stop mode.
    case setPolicy = "set_policy"
    /// Stops every machine for a host shutdown, keeping what each should be after the reboot.
    case hostStop = "host_stop"

    /// Whether the command must name a machine.
    public var needsMachine: Bool {
        switch self {
        case .start, .shutdown, .destroy, .reboot, .suspend, .resume, .undefine, .status, .setPolicy: return true
        case .define, .list, .restore, .report, .ping, .replay, .stats, .hostStop: return false
        }
    }

    /// Whether the command may name a machine without having to (`stats`: one, or all).
    public var takesMachine: Bool {
        needsMachine || self == .stats
    }

    /// Whether a success can change a machine's state (and so the state table's `desired`).
    public var changesState: Bool {
        switch self {
        case .start, .shutdown, .destroy, .reboot, .suspend, .resume, .define, .undefine: return true
        case .status, .list, .restore, .report, .ping, .replay, .stats, .setPolicy, .hostStop: return false
        }
    }

    /// The verb a person reads in a summary ("start", "shut down").
    public var verb: String {
        switch self {
        case .shutdown: return "shut down"
        case .status: return "read the state of"
        case .list: return "list machines"
        case .stats: return "read the stats of"
        case .setPolicy: return "set the restore policy of"
        case .hostStop: return "stop the machines for a host shutdown"
        default: return rawValue
        }
    }

    /// Every op name, for error messages.
    public static let allNames: String = allCases.map(\.rawValue).joined(separator: ", ")
}
