import ECPProtocol

/// A machine as the page shows it.
struct MachineRow: Equatable {
    var uuid: String
    var name: String
    /// libvirt's state, lower-case; nil while unknown.
    var state: String?
    /// An `undefined` event came: the machine is gone from libvirt (the row stays until the next
    /// full sample, so that the person sees what happened).
    var undefined = false
    var cpuPercent: Double?
    var memoryKiB: Int64?
    var maxMemoryKiB: Int64?
    var vcpus: Int64?
    /// The last lifecycle event, e.g. `suspended (paused)`.
    var lastEvent: String?
    /// The seq (of the current run) of the message that set `state`: an older message, arriving
    /// later on another socket or in a replay, does not override it.
    var stateSeq: UInt64 = 0

    func write(to w: inout JSONWriter) {
        w.beginObject()
        w.key("uuid"); w.string(uuid)
        w.key("name"); w.string(name)
        w.key("state"); if let state { w.string(state) } else { w.null() }
        w.key("undefined"); w.bool(undefined)
        w.key("cpu_percent"); if let cpuPercent, cpuPercent.isFinite { w.double(cpuPercent) } else { w.null() }
        w.key("memory_kib"); if let memoryKiB { w.int(memoryKiB) } else { w.null() }
        w.key("max_memory_kib"); if let maxMemoryKiB { w.int(maxMemoryKiB) } else { w.null() }
        w.key("vcpus"); if let vcpus { w.int(vcpus) } else { w.null() }
        w.key("event"); if let lastEvent { w.string(lastEvent) } else { w.null() }
        w.endObject()
    }
}

/// An error published on an `error.` topic: an `E2LibvirtError` or a `request_error`.
struct ErrorEntry {
    var host: String
    var run: String
    var seq: UInt64
    var message: JSONValue

    var kind: String { message["type"]?.stringValue == "request_error" ? "request" : "libvirt" }

    /// The sentence to show first.
    var summary: String {
        if let summary = message["summary"]?.stringValue { return summary }
        let reason = message["reason"]?.stringValue ?? "refused"
        let detail = message["detail"]?.stringValue ?? ""
        return "request refused (\(reason)): \(detail)"
    }

    func write(to w: inout JSONWriter) {
        w.beginObject()
        w.key("host"); w.string(host)
        w.key("run"); w.string(run)
        w.key("seq"); w.int(Int64(clamping: seq))
        w.key("kind"); w.string(kind)
        w.key("ts"); w.value(message["ts"] ?? .null)
        w.key("id"); w.value(message["id"] ?? .null)
        w.key("op"); w.value(message["op"] ?? .null)
        w.key("machine"); w.value(message["machine"] ?? .null)
        w.key("summary"); w.string(summary)
        w.key("record"); w.value(message)
        w.endObject()
    }
}

/// The last restore of a host, machine by machine.
struct RestoreView {
    var restoreID: String?
    var trigger: String?
    /// The summary (nil while a restore is under way or before any finished).
    var summary: JSONValue?
    /// One outcome per machine, in the order they came.
    var outcomes: [JSONValue] = []
    var inProgress = false
    /// The last host stop's summary, when one came.
    var hostStop: JSONValue?

    func write(to w: inout JSONWriter) {
        w.beginObject()
        w.key("restore_id"); if let restoreID { w.string(restoreID) } else { w.null() }
        w.key("trigger"); if let trigger { w.string(trigger) } else { w.null() }
        w.key("in_progress"); w.bool(inProgress)
        w.key("summary"); w.value(summary ?? .null)
        w.key("outcomes")
        w.beginArray()
        for outcome in outcomes { w.value(outcome) }
        w.endArray()
        w.key("host_stop"); w.value(hostStop ?? .null)
        w.endObject()
    }
}

/// Whether a worker is heard from.
public enum HostStatus: String, Sendable {
    case up
    case down
}

/// What the console knows of one worker: its machines, errors and last restore, and whether it
/// is up. Changed only under ``ConsoleState``'s lock.
struct HostModel {
    let id: String
    let control: String
    let events: String
    var status: HostStatus = .down
    var reason = "no heartbeat yet"
    var run: String?
    var seq: UInt64 = 0
    var libvirt: String?
    var heartbeatMs: Int?
    var lastHeartbeat: String?
    /// The console holds the run's machines, errors and restore (the catch-up is done).
    var synced = false
    /// Messages of this run lost for good (gone from the worker's replay memory).
    var lost: UInt64 = 0
    /// Gaps in the live stream filled from `replay`.
    var gapsFilled: UInt64 = 0
    var machines: [String: MachineRow] = [:]
    var errors: [ErrorEntry] = []
    var restore = RestoreView()

    /// The most errors kept per host, newest last.
    static let errorCapacity = 500

    init(id: String, control: String, events: String) {
        self.id = id
        self.control = control
        self.events = events
    }

    // MARK: machines

    /// The row of `machine`, a name or a UUID (with or without dashes, any case).
    func key(of machine: String) -> String? {
        let lower = machine.lowercased()
        if machines[lower] != nil { return lower }
        if lower.count == 32, lower.allSatisfy(\.isHexDigit) {
            let dashed = Self.dashed(lower)
            if machines[dashed] != nil { return dashed }
        }
        return machines.first(where: { $0.value.name == machine })?.key
    }

    static func dashed(_ hex: String) -> String {
        let c = Array(hex)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-"
            + String(c[20..<32])
    }

    /// Replaces the machines with a full sample (`list`, `stats` result or `stats` message) taken
    /// at `seq`: a machine that a newer message changed keeps that state; one missing from the
    /// sample is gone, unless a newer message defined it.
    mutating func applySample(_ list: [JSONValue], seq: UInt64, withFigures: Bool) {
        var next: [String: MachineRow] = [:]
        for item in list {
            guard let uuid = item["uuid"]?.stringValue?.lowercased(), let name = item["name"]?.stringValue else { continue }
            var row = machines[uuid] ?? MachineRow(uuid: uuid, name: name)
            if row.stateSeq <= seq {
                row.name = name
                row.state = item["state"]?.stringValue
                row.undefined = false
                row.stateSeq = seq
            }
            if withFigures {
                row.cpuPercent = item["cpu_percent"]?.doubleValue
                row.memoryKiB = item["memory_kib"]?.intValue
                row.maxMemoryKiB = item["max_memory_kib"]?.intValue
                row.vcpus = item["vcpus"]?.intValue
            }
            next[uuid] = row
        }
        for (uuid, row) in machines where next[uuid] == nil && row.stateSeq > seq {
            next[uuid] = row
        }
        machines = next
    }

    /// A `machine.event`; returns the row it changed.
    mutating func applyMachineEvent(_ message: JSONValue, seq: UInt64) -> MachineRow? {
        guard let uuid = message["uuid"]?.stringValue?.lowercased(), let name = message["machine"]?.stringValue else { return nil }
        let event = message["event"]?.stringValue ?? "?"
        var row = machines[uuid] ?? MachineRow(uuid: uuid, name: name)
        guard seq >= row.stateSeq else { return nil }
        row.name = name
        row.stateSeq = seq
        let detail = message["detail"].map { value -> String in
            if case .string(let s) = value { return s }
            if let i = value.intValue { return String(i) }
            return "?"
        }
        row.lastEvent = detail.map { "\(event) (\($0))" } ?? event
        if event == "undefined" {
            row.undefined = true
            row.state = message["state"]?.stringValue
            row.cpuPercent = nil
        } else {
            row.undefined = false
            if let state = message["state"]?.stringValue { row.state = state }
            if row.state != "running" { row.cpuPercent = nil }
        }
        machines[uuid] = row
        return row
    }

    /// A result that says a machine's state; returns the row it changed.
    mutating func applyResultState(_ message: JSONValue, seq: UInt64) -> MachineRow? {
        guard let op = message["op"]?.stringValue, Self.stateOps.contains(op) else { return nil }
        guard message["ok"]?.boolValue == true, let machine = message["machine"]?.stringValue,
            let state = message["state"]?.stringValue, let key = key(of: machine), var row = machines[key],
            seq > row.stateSeq
        else { return nil }
        guard row.state != state || row.undefined else {
            row.stateSeq = seq
            machines[key] = row
            return nil
        }
        row.state = state
        row.undefined = false
        row.stateSeq = seq
        if state != "running" { row.cpuPercent = nil }
        machines[key] = row
        return row
    }

    /// The ops whose successful result says the machine's state (an `undefine`'s does not: the
    /// machine is gone, whatever state it had).
    static let stateOps: Set<String> = ["start", "shutdown", "destroy", "reboot", "suspend", "resume", "status"]

    /// Machines sorted by name, for the page.
    var sortedMachines: [MachineRow] {
        machines.values.sorted { $0.name == $1.name ? $0.uuid < $1.uuid : $0.name < $1.name }
    }

    // MARK: errors

    /// Adds an error unless it is held already; returns it when added.
    mutating func addError(_ message: JSONValue, run: String, seq: UInt64) -> ErrorEntry? {
        if errors.contains(where: { $0.seq == seq && $0.run == run }) { return nil }
        let entry = ErrorEntry(host: id, run: run, seq: seq, message: message)
        // Kept in (run, seq) order of arrival; a replayed one may come after newer ones.
        if let index = errors.firstIndex(where: { $0.run == run && $0.seq > seq }) {
            errors.insert(entry, at: index)
        } else {
            errors.append(entry)
        }
        if errors.count > Self.errorCapacity { errors.removeFirst(errors.count - Self.errorCapacity) }
        return entry
    }

    // MARK: restore

    /// The `report` result's data: the last restore and its outcomes.
    mutating func applyReport(_ data: JSONValue) {
        var view = RestoreView()
        if let summary = data["restore"], summary != .null {
            view.summary = summary
            view.restoreID = summary["restore_id"]?.stringValue
            view.trigger = summary["trigger"]?.stringValue
        }
        view.outcomes = data["outcomes"]?.arrayValue ?? []
        if view.restoreID == nil, let first = view.outcomes.first {
            view.restoreID = first["restore_id"]?.stringValue
            view.trigger = first["trigger"]?.stringValue
            view.inProgress = true
        }
        view.hostStop = restore.hostStop
        restore = view
    }

    /// A `restore.outcome`, `restore.summary`, `host_stop.outcome` or `host_stop.summary`;
    /// returns whether the view changed.
    mutating func applyRestoreMessage(_ message: JSONValue) -> Bool {
        switch message["type"]?.stringValue {
        case "restore.outcome":
            let id = message["restore_id"]?.stringValue
            if id != restore.restoreID {
                restore = RestoreView(restoreID: id, trigger: message["trigger"]?.stringValue, inProgress: true, hostStop: restore.hostStop)
            }
            let uuid = message["uuid"]?.stringValue?.lowercased()
            if let index = restore.outcomes.firstIndex(where: { $0["uuid"]?.stringValue?.lowercased() == uuid }) {
                restore.outcomes[index] = message
            } else {
                restore.outcomes.append(message)
            }
            return true
        case "restore.summary":
            let id = message["restore_id"]?.stringValue
            if id != restore.restoreID {
                restore = RestoreView(restoreID: id, hostStop: restore.hostStop)
            }
            restore.summary = message
            restore.trigger = message["trigger"]?.stringValue
            restore.inProgress = false
            return true
        case "host_stop.summary":
            restore.hostStop = message
            return true
        default:
            return false
        }
    }

    // MARK: JSON

    func writeSummary(to w: inout JSONWriter) {
        w.key("id"); w.string(id)
        w.key("control"); w.string(control)
        w.key("events"); w.string(events)
        w.key("status"); w.string(status.rawValue)
        w.key("reason"); w.string(reason)
        w.key("run"); if let run { w.string(run) } else { w.null() }
        w.key("seq"); w.int(Int64(clamping: seq))
        w.key("libvirt"); if let libvirt { w.string(libvirt) } else { w.null() }
        w.key("heartbeat_ms"); if let heartbeatMs { w.int(Int64(heartbeatMs)) } else { w.null() }
        w.key("last_heartbeat"); if let lastHeartbeat { w.string(lastHeartbeat) } else { w.null() }
        w.key("synced"); w.bool(synced)
        w.key("lost"); w.int(Int64(clamping: lost))
        w.key("gaps_filled"); w.int(Int64(clamping: gapsFilled))
    }

    func writeMachines(to w: inout JSONWriter) {
        w.beginArray()
        for row in sortedMachines { row.write(to: &w) }
        w.endArray()
    }
}
