/// A domain lifecycle event as libvirt reported it (`VIR_DOMAIN_EVENT_ID_LIFECYCLE`).
///
/// Names follow libvirt's `virDomainEventType` and the per-type detail enums of
/// `libvirt-domain.h`, lower-case and without their prefix: event `VIR_DOMAIN_EVENT_STOPPED`
/// with detail `VIR_DOMAIN_EVENT_STOPPED_DESTROYED` is `"stopped"` / `"destroyed"`.
public struct LifecycleEvent: Sendable, Equatable {
    /// The domain's name.
    public var domainName: String
    /// The domain's UUID, lower-case string form.
    public var domainUUID: String
    /// The raw `virDomainEventType` value.
    public var event: Int32
    /// The raw detail value; its meaning depends on ``event``.
    public var detail: Int32
    /// The event's name: `"defined"`, `"undefined"`, `"started"`, `"suspended"`, `"resumed"`,
    /// `"stopped"`, `"shutdown"`, `"pmsuspended"` or `"crashed"`; `"unknown_<n>"` otherwise.
    public var eventName: String
    /// The detail's name for this event type (for `"started"`: `"booted"`, `"migrated"`,
    /// `"restored"`, `"from_snapshot"`, `"wakeup"`); `"unknown_<n>"` when not known.
    public var detailName: String

    /// Creates an event from its raw values, deriving ``eventName`` and ``detailName``.
    public init(domainName: String, domainUUID: String, event: Int32, detail: Int32) {
        self.domainName = domainName
        self.domainUUID = domainUUID
        self.event = event
        self.detail = detail
        self.eventName = LifecycleEvent.eventName(event)
        self.detailName = LifecycleEvent.detailName(event: event, detail: detail)
    }

    /// The name of a `virDomainEventType` value, `"unknown_<n>"` if not known.
    public static func eventName(_ event: Int32) -> String {
        name(at: event, in: eventNames)
    }

    /// The name of a detail value of the given event type, `"unknown_<n>"` if not known.
    public static func detailName(event: Int32, detail: Int32) -> String {
        guard event >= 0, Int(event) < detailNames.count else {
            return "unknown_\(detail)"
        }
        return name(at: detail, in: detailNames[Int(event)])
    }

    private static func name(at value: Int32, in table: [String]) -> String {
        if value >= 0, Int(value) < table.count {
            return table[Int(value)]
        }
        return "unknown_\(value)"
    }

    /// `virDomainEventType`, indexed by value.
    static let eventNames: [String] = [
        "defined", "undefined", "started", "suspended", "resumed",
        "stopped", "shutdown", "pmsuspended", "crashed",
    ]

    /// The detail enums, indexed by event type, then by detail value.
    static let detailNames: [[String]] = [
        // virDomainEventDefinedDetailType
        ["added", "updated", "renamed", "from_snapshot"],
        // virDomainEventUndefinedDetailType
        ["removed", "renamed"],
        // virDomainEventStartedDetailType
        ["booted", "migrated", "restored", "from_snapshot", "wakeup"],
        // virDomainEventSuspendedDetailType
        [
            "paused", "migrated", "ioerror", "watchdog", "restored",
            "from_snapshot", "api_error", "postcopy", "postcopy_failed",
        ],
        // virDomainEventResumedDetailType
        ["unpaused", "migrated", "from_snapshot", "postcopy", "postcopy_failed"],
        // virDomainEventStoppedDetailType
        ["shutdown", "destroyed", "crashed", "migrated", "saved", "failed", "from_snapshot"],
        // virDomainEventShutdownDetailType
        ["finished", "guest", "host"],
        // virDomainEventPMSuspendedDetailType
        ["memory", "disk"],
        // virDomainEventCrashedDetailType
        ["panicked", "crashloaded"],
    ]
}
