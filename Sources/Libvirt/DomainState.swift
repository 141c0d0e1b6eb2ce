/// The state of a domain (libvirt's `virDomainState`).
public enum DomainState: Int32, Sendable, CaseIterable, Codable {
    /// No state (`VIR_DOMAIN_NOSTATE`).
    case nostate = 0
    /// Running (`VIR_DOMAIN_RUNNING`).
    case running
    /// Blocked on a resource (`VIR_DOMAIN_BLOCKED`).
    case blocked
    /// Paused by the user (`VIR_DOMAIN_PAUSED`).
    case paused
    /// Being shut down (`VIR_DOMAIN_SHUTDOWN`).
    case shutdown
    /// Shut off (`VIR_DOMAIN_SHUTOFF`).
    case shutoff
    /// Crashed (`VIR_DOMAIN_CRASHED`).
    case crashed
    /// Suspended by guest power management (`VIR_DOMAIN_PMSUSPENDED`).
    case pmsuspended

    /// The lower-case name used on the wire, for example `"running"` or `"shutoff"`.
    public var name: String {
        switch self {
        case .nostate: return "nostate"
        case .running: return "running"
        case .blocked: return "blocked"
        case .paused: return "paused"
        case .shutdown: return "shutdown"
        case .shutoff: return "shutoff"
        case .crashed: return "crashed"
        case .pmsuspended: return "pmsuspended"
        }
    }

    /// Maps a raw `virDomainState` value; a value this type does not know becomes ``nostate``.
    public init(raw: Int32) {
        self = DomainState(rawValue: raw) ?? .nostate
    }
}
