
/// The fields every message carries: added by the publisher around a message's own fields.
public struct Envelope: Codable, Sendable, Equatable {
    public var v: Int
    public var type: String
    public var worker: String
    public var run: String
    public var seq: UInt64
    public var ts: String
}

/// `accepted`: the command parsed and validated and is about to run.
public struct AcceptedMessage: Codable, Sendable, Equatable {
    public var type = "accepted"
    public var id: String
    public var op: String
    public var machine: String?

    public init(id: String, op: String, machine: String?) {
        self.id = id
        self.op = op
        self.machine = machine
    }
}

/// `result`: what came of a command.
public struct ResultMessage: Codable, Sendable, Equatable {
    public var type = "result"
    public var id: String
    public var op: String
    public var machine: String?
    public var ok: Bool
    public var changed: Bool?
    public var state: String?
    public var data: JSONValue?
    public var error: ErrorRecord?
    public var durationMs: Double
    public var duplicate: Bool?
    /// false when the command changed a machine's state but the state table could not be written:
    /// a host reboot now would restore the previous desired state. Absent when the change was saved.
    public var saved: Bool?
    /// `data` already written as JSON (`replay`'s, which holds messages exactly as published);
    /// used when `data` is nil, and not part of the Codable form.
    public var dataJSON: [UInt8]?

    enum CodingKeys: String, CodingKey {
        case type, id, op, machine, ok, changed, state, data, error, duplicate, saved
        case durationMs = "duration_ms"
    }

    public init(
        id: String, op: String, machine: String?, ok: Bool, changed: Bool? = nil, state: String? = nil,
        data: JSONValue? = nil, error: ErrorRecord? = nil, durationMs: Double, duplicate: Bool? = nil
    ) {
        self.id = id
        self.op = op
        self.machine = machine
        self.ok = ok
        self.changed = changed
        self.state = state
        self.data = data
        self.error = error
        self.durationMs = durationMs
        self.duplicate = duplicate
    }
}

/// The error inside a failed result: libvirt's, or the worker's own (a deadline, a shutdown).
public enum ErrorRecord: Codable, Sendable, Equatable {
    case libvirt(E2LibvirtErrorRecord)
    case worker(WorkerErrorRecord)

    /// The one sentence for a person.
    public var summary: String {
        switch self {
        case .libvirt(let e): return e.summary
        case .worker(let e): return e.summary
        }
    }

    /// The error's category.
    public var category: String {
        switch self {
        case .libvirt(let e): return e.category
        case .worker(let e): return e.category
        }
    }

    public init(from decoder: any Decoder) throws {
        struct Probe: Decodable { var type: String }
        let probe = try Probe(from: decoder)
        if probe.type == E2LibvirtErrorRecord.typeName {
            self = .libvirt(try E2LibvirtErrorRecord(from: decoder))
        } else {
            self = .worker(try WorkerErrorRecord(from: decoder))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .libvirt(let e): try e.encode(to: encoder)
        case .worker(let e): try e.encode(to: encoder)
        }
    }
}

/// An error of the worker itself, not of libvirt: `type` is `timeout` (a deadline passed),
/// `cancelled` (the worker stopped before the command could run), `internal` (an unexpected
/// failure) or `corrupt_table` (the state table could not be read; `file` is where it was kept
/// aside).
public struct WorkerErrorRecord: Codable, Sendable, Equatable {
    public var type: String
    /// One of the protocol's categories in snake_case (`timeout`, `config`, …); the worker makes
    /// it from its `ErrorCategory`. A string here, so that a client still reads a record whose
    /// category it does not know.
    public var category: String
    public var retryable: Bool
    public var message: String
    public var summary: String
    public var timeoutMs: Int?
    /// The file concerned, for errors about a file (a corrupt state table: where it was kept aside).
    public var file: String?

    enum CodingKeys: String, CodingKey {
        case type, category, retryable, message, summary, file
        case timeoutMs = "timeout_ms"
    }

    public init(
        type: String, category: String, retryable: Bool, message: String, summary: String, timeoutMs: Int? = nil,
        file: String? = nil
    ) {
        self.type = type
        self.category = category
        self.retryable = retryable
        self.message = message
        self.summary = summary
        self.timeoutMs = timeoutMs
        self.file = file
    }
}

/// `E2LibvirtError`: everything libvirt said about a failure, plus what the worker makes of it.
public struct E2LibvirtErrorRecord: Codable, Sendable, Equatable {
    public static let typeName = "E2LibvirtError"
    public var type = E2LibvirtErrorRecord.typeName
    public var id: String?
    public var op: String?
    public var machine: String?
    public var code: Int32
    public var codeName: String
    public var domain: Int32
    public var domainName: String
    public var level: String
    public var message: String?
    public var str1: String?
    public var str2: String?
    public var str3: String?
    public var int1: Int32
    public var int2: Int32
    public var category: String
    public var retryable: Bool
    public var summary: String

    enum CodingKeys: String, CodingKey {
        case type, id, op, machine, code, domain, level, message, str1, str2, str3, int1, int2, category, retryable, summary
        case codeName = "code_name"
        case domainName = "domain_name"
    }

    public init(
        id: String?, op: String?, machine: String?, code: Int32, codeName: String, domain: Int32, domainName: String,
        level: String, message: String?, str1: String?, str2: String?, str3: String?, int1: Int32, int2: Int32,
        category: String, retryable: Bool, summary: String
    ) {
        self.id = id
        self.op = op
        self.machine = machine
        self.code = code
        self.codeName = codeName
        self.domain = domain
        self.domainName = domainName
        self.level = level
        self.message = message
        self.str1 = str1
        self.str2 = str2
        self.str3 = str3
        self.int1 = int1
        self.int2 = int2
        self.category = category
        self.retryable = retryable
        self.summary = summary
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encodeIfPresent(id, forKey: .id)
        try c.encodeIfPresent(op, forKey: .op)
        try c.encodeIfPresent(machine, forKey: .machine)
        try c.encode(code, forKey: .code)
        try c.encode(codeName, forKey: .codeName)
        try c.encode(domain, forKey: .domain)
        try c.encode(domainName, forKey: .domainName)
        try c.encode(level, forKey: .level)
        // libvirt's optional strings are always present, null when libvirt gave none.
        try c.encode(message, forKey: .message)
        try c.encode(str1, forKey: .str1)
        try c.encode(str2, forKey: .str2)
        try c.encode(str3, forKey: .str3)
        try c.encode(int1, forKey: .int1)
        try c.encode(int2, forKey: .int2)
        try c.encode(category, forKey: .category)
        try c.encode(retryable, forKey: .retryable)
        try c.encode(summary, forKey: .summary)
    }
}

/// `request_error`: a command that could not be parsed or validated.
public struct RequestErrorMessage: Codable, Sendable, Equatable {
    public var type = "request_error"
    public var id: String?
    public var reason: String
    public var field: String?
    public var detail: String

    public init(_ error: RequestError) {
        id = error.id
        reason = error.reason.rawValue
        field = error.field
        detail = error.detail
    }
}

/// `machine.event`: a lifecycle change libvirt reported, whoever caused it.
public struct MachineEventMessage: Codable, Sendable, Equatable {
    public var type = "machine.event"
    public var machine: String
    public var uuid: String
    public var event: String
    public var detail: String
    public var state: String?

    public init(machine: String, uuid: String, event: String, detail: String, state: String?) {
        self.machine = machine
        self.uuid = uuid
        self.event = event
        self.detail = detail
        self.state = state
    }
}

/// `heartbeat`: the worker is alive, and how it is doing.
public struct HeartbeatMessage: Codable, Sendable, Equatable {
    public var type = "heartbeat"
    public var uptimeS: Double
    public var libvirt: String
    public var inFlight: Int
    public var processed: UInt64
    public var failed: UInt64
    public var intervalMs: Int
    /// `saved`, or `unsaved` while the state table holds changes that could not be written.
    public var stateTable: String
    /// While `unsaved`: since when (the first failed write); absent otherwise.
    public var unsavedSince: String?

    enum CodingKeys: String, CodingKey {
        case type, libvirt, processed, failed
        case uptimeS = "uptime_s"
        case inFlight = "in_flight"
        case intervalMs = "interval_ms"
        case stateTable = "state_table"
        case unsavedSince = "unsaved_since"
    }

    public init(
        uptimeS: Double, libvirt: String, inFlight: Int, processed: UInt64, failed: UInt64, intervalMs: Int,
        stateTable: String = "saved", unsavedSince: String? = nil
    ) {
        self.uptimeS = uptimeS
        self.libvirt = libvirt
        self.inFlight = inFlight
        self.processed = processed
        self.failed = failed
        self.intervalMs = intervalMs
        self.stateTable = stateTable
        self.unsavedSince = unsavedSince
    }
}

/// `worker.started`.
public struct WorkerStartedMessage: Codable, Sendable, Equatable {
    public var type = "worker.started"
    public var version: String
    public var libvirtUri: String
    public var endpoints: [String: String]

    enum CodingKeys: String, CodingKey {
        case type, version, endpoints
        case libvirtUri = "libvirt_uri"
    }

    public init(version: String, libvirtUri: String, endpoints: [String: String]) {
        self.version = version
        self.libvirtUri = libvirtUri
        self.endpoints = endpoints
    }
}

/// `worker.stopping`.
public struct WorkerStoppingMessage: Codable, Sendable, Equatable {
    public var type = "worker.stopping"
    public var reason: String

    public init(reason: String) {
        self.reason = reason
    }
}

/// `restore.outcome`: what a restore did to one machine of the state table.
public struct RestoreOutcomeMessage: Codable, Sendable, Equatable {
    public var type = "restore.outcome"
    public var restoreId: String
    public var trigger: String
    public var machine: String
    public var uuid: String
    public var desired: String
    public var found: String?
    public var action: String
    public var error: ErrorRecord?
    public var durationMs: Double
    /// Starts or resumes tried (1 when the first worked, or when there was nothing to do).
    public var attempts: Int
    /// The machine's policy order; null when it has none (it came last).
    public var order: Int?
    /// Set when the start resumed a managed save image instead of booting.
    public var fromSave: Bool?

    enum CodingKeys: String, CodingKey {
        case type, trigger, machine, uuid, desired, found, action, error, attempts, order
        case restoreId = "restore_id"
        case durationMs = "duration_ms"
        case fromSave = "from_save"
    }

    public init(
        restoreId: String, trigger: String, machine: String, uuid: String, desired: String, found: String?,
        action: String, error: ErrorRecord? = nil, durationMs: Double, attempts: Int = 1, order: Int? = nil,
        fromSave: Bool? = nil
    ) {
        self.restoreId = restoreId
        self.trigger = trigger
        self.machine = machine
        self.uuid = uuid
        self.desired = desired
        self.found = found
        self.action = action
        self.error = error
        self.durationMs = durationMs
        self.attempts = attempts
        self.order = order
        self.fromSave = fromSave
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encode(restoreId, forKey: .restoreId)
        try c.encode(trigger, forKey: .trigger)
        try c.encode(machine, forKey: .machine)
        try c.encode(uuid, forKey: .uuid)
        try c.encode(desired, forKey: .desired)
        try c.encode(found, forKey: .found)
        try c.encode(action, forKey: .action)
        try c.encodeIfPresent(error, forKey: .error)
        try c.encode(durationMs, forKey: .durationMs)
        try c.encode(attempts, forKey: .attempts)
        // null, not left out: "no order" says the machine came last.
        try c.encode(order, forKey: .order)
        try c.encodeIfPresent(fromSave, forKey: .fromSave)
    }
}

/// `host_stop.outcome`: what a host stop did with one machine.
public struct HostStopOutcomeMessage: Codable, Sendable, Equatable {
    public var type = "host_stop.outcome"
    public var hostStopId: String
    public var machine: String
    public var uuid: String
    public var mode: String
    public var order: Int?
    public var found: String?
    public var action: String
    public var error: ErrorRecord?
    public var durationMs: Double

    enum CodingKeys: String, CodingKey {
        case type, machine, uuid, mode, order, found, action, error
        case hostStopId = "host_stop_id"
        case durationMs = "duration_ms"
    }

    public init(
        hostStopId: String, machine: String, uuid: String, mode: String, order: Int?, found: String?, action: String,
        error: ErrorRecord? = nil, durationMs: Double
    ) {
        self.hostStopId = hostStopId
        self.machine = machine
        self.uuid = uuid
        self.mode = mode
        self.order = order
        self.found = found
        self.action = action
        self.error = error
        self.durationMs = durationMs
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encode(hostStopId, forKey: .hostStopId)
        try c.encode(machine, forKey: .machine)
        try c.encode(uuid, forKey: .uuid)
        try c.encode(mode, forKey: .mode)
        try c.encode(order, forKey: .order)
        try c.encode(found, forKey: .found)
        try c.encode(action, forKey: .action)
        try c.encodeIfPresent(error, forKey: .error)
        try c.encode(durationMs, forKey: .durationMs)
    }
}

/// `host_stop.summary`: the whole host stop, counted; also the `host_stop` result's data, with
/// its outcomes.
public struct HostStopSummaryMessage: Codable, Sendable, Equatable {
    public var type = "host_stop.summary"
    public var hostStopId: String
    public var total: Int
    public var counts: [String: Int]
    public var durationMs: Double
    /// Only in the command's result: every outcome, in the order they ended.
    public var outcomes: [HostStopOutcomeMessage]?

    enum CodingKeys: String, CodingKey {
        case type, total, counts, outcomes
        case hostStopId = "host_stop_id"
        case durationMs = "duration_ms"
    }

    public init(hostStopId: String, total: Int, counts: [String: Int], durationMs: Double, outcomes: [HostStopOutcomeMessage]? = nil) {
        self.hostStopId = hostStopId
        self.total = total
        self.counts = counts
        self.durationMs = durationMs
        self.outcomes = outcomes
    }
}

/// `restore.summary`: the whole restore, counted.
public struct RestoreSummaryMessage: Codable, Sendable, Equatable {
    public var type = "restore.summary"
    public var restoreId: String
    public var trigger: String
    public var table: String
    public var stateFile: String
    public var total: Int
    public var counts: [String: Int]
    public var durationMs: Double
    /// For a corrupt table: why it could not be read, and where it was kept aside (`file`).
    public var error: WorkerErrorRecord?

    enum CodingKeys: String, CodingKey {
        case type, trigger, table, total, counts, error
        case restoreId = "restore_id"
        case stateFile = "state_file"
        case durationMs = "duration_ms"
    }

    public init(
        restoreId: String, trigger: String, table: String, stateFile: String, total: Int, counts: [String: Int],
        durationMs: Double, error: WorkerErrorRecord? = nil
    ) {
        self.restoreId = restoreId
        self.trigger = trigger
        self.table = table
        self.stateFile = stateFile
        self.total = total
        self.counts = counts
        self.durationMs = durationMs
        self.error = error
    }
}

/// Topic names of the events socket.
public enum Topic {
    public static func ack(_ worker: String) -> String { "ack.\(worker)" }
    public static func result(_ worker: String) -> String { "result.\(worker)" }
    public static func libvirtError(_ worker: String) -> String { "error.libvirt.\(worker)" }
    public static func requestError(_ worker: String) -> String { "error.request.\(worker)" }
    public static func restore(_ worker: String) -> String { "restore.\(worker)" }
    public static func machine(_ worker: String) -> String { "machine.\(worker)" }
    public static func heartbeat(_ worker: String) -> String { "heartbeat.\(worker)" }
    public static func worker(_ worker: String) -> String { "worker.\(worker)" }
    public static func stats(_ worker: String) -> String { "stats.\(worker)" }
    public static func command(_ worker: String) -> String { "cmd.\(worker)" }
    public static let commandAll = "cmd.all"
}
