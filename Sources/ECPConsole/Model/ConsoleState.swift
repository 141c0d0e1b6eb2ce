import DequeModule
import ECPProtocol
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A command the console sent for a person, and what came of it.
struct CommandRecord {
    enum Status: String {
        /// Handed to the worker's connection; no answer yet.
        case sent
        /// The worker answered `ok: true`.
        case ok
        /// The worker answered `ok: false` (an `E2LibvirtError` or a worker error).
        case failed
        /// The worker refused it (`request_error`).
        case refused
        /// No answer in time.
        case noReply = "no_reply"
        /// It could not be handed to the worker (no connection to its control socket).
        case notSent = "not_sent"
    }

    var id: String
    var host: String
    var machine: String?
    var action: String
    /// Who asked: the authenticated user, nil without --auth.
    var user: String?
    /// The browser's address.
    var remote: String
    var status: Status = .sent
    var submittedAt: String
    var submittedNanos: UInt64
    var finishedAt: String?
    var durationMs: Double?
    /// The result or request error as the worker sent it.
    var reply: JSONValue?
    /// Why it was not sent or not answered, when the console says so itself.
    var problem: String?

    /// The sentence for the outcome.
    var summary: String {
        switch status {
        case .sent: return "sent"
        case .ok:
            let state = reply?["state"]?.stringValue
            let changed = reply?["changed"]?.boolValue
            if let state { return changed == false ? "already \(state)" : "now \(state)" }
            return "done"
        case .failed:
            if let summary = reply?["error"]?["summary"]?.stringValue { return summary }
            return reply?["error"]?["message"]?.stringValue ?? "failed"
        case .refused:
            return "refused (\(reply?["reason"]?.stringValue ?? "?")): \(reply?["detail"]?.stringValue ?? "")"
        case .noReply, .notSent:
            return problem ?? status.rawValue
        }
    }

    func write(to w: inout JSONWriter) {
        w.beginObject()
        w.key("id"); w.string(id)
        w.key("host"); w.string(host)
        w.key("machine"); if let machine { w.string(machine) } else { w.null() }
        w.key("action"); w.string(action)
        w.key("by"); w.string(user ?? remote)
        w.key("status"); w.string(status.rawValue)
        w.key("summary"); w.string(summary)
        w.key("submitted_at"); w.string(submittedAt)
        w.key("finished_at"); if let finishedAt { w.string(finishedAt) } else { w.null() }
        w.key("duration_ms"); if let durationMs { w.double(durationMs) } else { w.null() }
        w.key("error")
        if status == .failed, let error = reply?["error"] {
            w.value(error)
        } else if status == .refused, let reply {
            w.value(reply)
        } else {
            w.null()
        }
        w.key("state"); w.value(reply?["state"] ?? .null)
        w.endObject()
    }
}

/// Everything the page shows, and the stream of changes to it.
///
/// One lock guards the hosts, the recent commands and the event log, so a snapshot
/// (`GET /api/state`) and the numbered changes (`GET /api/events`) always agree: the snapshot
/// says the number of the last change it holds, and the page asks for the changes after it.
public final class ConsoleState: Sendable {
    /// The workers' ids, in the order given.
    public let hostIDs: [String]
    private let inner: Mutex<Inner>

    /// Recent commands kept for the page.
    static let commandCapacity = 200

    struct Inner: ~Copyable {
        var hosts: [String: HostModel]
        var commands: Deque<CommandRecord> = []
        var log = EventLog()
    }

    public init(workers: [WorkerSpec]) {
        hostIDs = workers.map(\.id)
        var hosts: [String: HostModel] = [:]
        for worker in workers {
            hosts[worker.id] = HostModel(id: worker.id, control: worker.control.description, events: worker.events.description)
        }
        inner = Mutex(Inner(hosts: hosts))
    }

    /// Changes a host and publishes what `body` returns, under the lock.
    func update(_ host: String, _ body: (inout HostModel) -> [ConsoleEvent]) {
        inner.withLock { inner in
            guard var model = inner.hosts[host] else { return }
            let events = body(&model)
            inner.hosts[host] = model
            for event in events { inner.log.publish(event, hosts: inner.hosts) }
        }
    }

    /// Reads a host.
    func read<T>(_ host: String, _ body: (HostModel) -> T) -> T? {
        inner.withLock { inner in
            guard let model = inner.hosts[host] else { return nil }
            return body(model)
        }
    }

    // MARK: commands

    /// Records a command just handed to a worker's connection.
    func commandSubmitted(_ record: CommandRecord) {
        inner.withLock { inner in
            inner.commands.append(record)
            if inner.commands.count > Self.commandCapacity { inner.commands.removeFirst() }
            inner.log.publish(.command(record), hosts: inner.hosts)
        }
    }

    /// Settles a command; returns the record, or nil when it was settled already or is unknown.
    func commandFinished(id: String, _ body: (inout CommandRecord) -> Void) -> CommandRecord? {
        inner.withLock { inner in
            guard let index = inner.commands.lastIndex(where: { $0.id == id }), inner.commands[index].status == .sent else {
                return nil
            }
            var record = inner.commands[index]
            body(&record)
            record.finishedAt = Timestamp.now()
            record.durationMs = Double(ConsoleClock.nanos() &- record.submittedNanos) / 1_000_000
            inner.commands[index] = record
            inner.log.publish(.command(record), hosts: inner.hosts)
            return record
        }
    }

    /// The user-facing machine name for `machine` on `host`: the name the console knows for a
    /// UUID, else what was given.
    public func machineName(host: String, machine: String) -> String? {
        read(host) { model in
            model.key(of: machine).flatMap { model.machines[$0]?.name }
        } ?? nil
    }

    public func hasHost(_ host: String) -> Bool {
        inner.withLock { $0.hosts[host] != nil }
    }

    // MARK: the page

    /// `GET /api/state`: every host with its machines and last restore, the errors, the recent
    /// commands, and `rev`, the number of the last change included.
    public func snapshotJSON(csrf: String, user: String?) -> [UInt8] {
        inner.withLock { inner in
            var w = JSONWriter(capacity: 64 << 10)
            w.beginObject()
            w.key("rev"); w.int(Int64(clamping: inner.log.rev))
            w.key("csrf"); w.string(csrf)
            w.key("user"); if let user { w.string(user) } else { w.null() }
            w.key("hosts")
            w.beginArray()
            for id in hostIDs {
                guard let host = inner.hosts[id] else { continue }
                w.beginObject()
                host.writeSummary(to: &w)
                w.key("machines"); host.writeMachines(to: &w)
                w.key("restore"); host.restore.write(to: &w)
                w.endObject()
            }
            w.endArray()
            w.key("errors")
            w.beginArray()
            for id in hostIDs {
                for entry in inner.hosts[id]?.errors ?? [] { entry.write(to: &w) }
            }
            w.endArray()
            w.key("commands")
            w.beginArray()
            for record in inner.commands { record.write(to: &w) }
            w.endArray()
            w.endObject()
            return w.bytes
        }
    }

    /// A stream of changes (SSE frames) after `since`; a `resync` frame first when they are no
    /// longer all held (or `since` is nil: a page that holds nothing yet).
    public func subscribe(since: UInt64?) -> (id: Int, stream: AsyncStream<[UInt8]>) {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingOldest(EventLog.subscriberBuffer))
        // The stream's reader calls unsubscribe when it stops reading; nothing here may take the
        // lock on termination, which can happen under it (a stream that overflowed).
        let id = inner.withLock { inner in inner.log.subscribe(continuation, since: since) }
        return (id, stream)
    }

    public func unsubscribe(_ id: Int) {
        let continuation = inner.withLock { $0.log.subscribers.removeValue(forKey: id) }
        continuation?.finish()
    }

    /// Ends every stream (at shutdown).
    public func finishAllStreams() {
        let all = inner.withLock { inner in
            let all = Array(inner.log.subscribers.values)
            inner.log.subscribers.removeAll()
            inner.log.closed = true
            return all
        }
        for continuation in all { continuation.finish() }
    }

    /// A comment line to every stream, so that proxies keep it open and a gone browser is noticed.
    public func keepAlive() {
        inner.withLock { $0.log.broadcast(Array(": keep-alive\n\n".utf8)) }
    }

    public var subscriberCount: Int { inner.withLock { $0.log.subscribers.count } }

    /// The current change number.
    public var revision: UInt64 { inner.withLock { $0.log.rev } }
}

/// A change the page applies.
enum ConsoleEvent {
    /// A host's status line.
    case host(String)
    /// All machines of a host.
    case machines(String)
    /// One machine.
    case machine(String, MachineRow)
    /// All errors of a host (after a catch-up).
    case errors(String)
    /// One new error.
    case error(ErrorEntry)
    /// A host's last restore.
    case restore(String)
    /// A command's state.
    case command(CommandRecord)

    var name: StaticString {
        switch self {
        case .host: return "host"
        case .machines: return "machines"
        case .machine: return "machine"
        // Not "error": EventSource dispatches an event of that name as a failure of the stream.
        case .errors: return "error_list"
        case .error: return "error_entry"
        case .restore: return "restore"
        case .command: return "command"
        }
    }

    /// The event's data, from the hosts as they are now.
    func json(hosts: [String: HostModel]) -> [UInt8] {
        var w = JSONWriter(capacity: 512)
        w.beginObject()
        switch self {
        case .host(let id):
            guard let host = hosts[id] else { break }
            host.writeSummary(to: &w)
        case .machines(let id):
            w.key("host"); w.string(id)
            w.key("machines"); hosts[id]?.writeMachines(to: &w) ?? w.null()
        case .machine(let id, let row):
            w.key("host"); w.string(id)
            w.key("machine"); row.write(to: &w)
        case .errors(let id):
            w.key("host"); w.string(id)
            w.key("errors")
            w.beginArray()
            for entry in hosts[id]?.errors ?? [] { entry.write(to: &w) }
            w.endArray()
        case .error(let entry):
            w.key("error"); entry.write(to: &w)
        case .restore(let id):
            w.key("host"); w.string(id)
            w.key("restore"); hosts[id]?.restore.write(to: &w) ?? w.null()
        case .command(let record):
            w.key("command"); record.write(to: &w)
        }
        w.endObject()
        return w.bytes
    }
}

/// The numbered changes: the newest kept for pages that reconnect, and the open streams.
struct EventLog: ~Copyable {
    /// The number of the last change.
    var rev: UInt64 = 0
    var ring: Deque<(rev: UInt64, frame: [UInt8])> = []
    var ringBytes = 0
    var subscribers: [Int: AsyncStream<[UInt8]>.Continuation] = [:]
    var nextSubscriber = 0
    var closed = false

    /// Changes kept for reconnecting pages: this many, within `ringByteLimit` (a page that
    /// was away longer gets a `resync` and reloads the state: as cheap, and memory stays flat).
    static let ringCapacity = 1024
    static let ringByteLimit = 1 << 20
    /// Frames a stream may hold for a slow browser; past it the stream ends and the browser
    /// reconnects from the last change it has (EventSource's Last-Event-ID).
    static let subscriberBuffer = 2048

    mutating func publish(_ event: ConsoleEvent, hosts: [String: HostModel]) {
        rev += 1
        var frame = Array("id: \(rev)\nevent: ".utf8)
        JSONWriter.append(event.name, to: &frame)
        frame.append(contentsOf: Array("\ndata: ".utf8))
        // JSONWriter escapes line breaks inside strings: the data is one line.
        frame.append(contentsOf: event.json(hosts: hosts))
        frame.append(contentsOf: [0x0A, 0x0A])
        ring.append((rev, frame))
        ringBytes += frame.count
        while ring.count > Self.ringCapacity || (ringBytes > Self.ringByteLimit && ring.count > 1) {
            ringBytes -= ring.removeFirst().frame.count
        }
        broadcast(frame)
    }

    mutating func broadcast(_ frame: [UInt8]) {
        var overflowed: [Int] = []
        for (id, continuation) in subscribers {
            switch continuation.yield(frame) {
            // Too far behind, or its stream is gone (the page left without its body running).
            case .dropped, .terminated: overflowed.append(id)
            default: break
            }
        }
        for id in overflowed { subscribers.removeValue(forKey: id)?.finish() }
    }

    mutating func subscribe(_ continuation: AsyncStream<[UInt8]>.Continuation, since: UInt64?) -> Int {
        let id = nextSubscriber
        nextSubscriber += 1
        if closed {
            continuation.finish()
            return id
        }
        // Tell the browser to wait a second before reconnecting.
        continuation.yield(Array("retry: 1000\n\n".utf8))
        if let since, since <= rev, since + 1 >= (ring.first?.rev ?? rev + 1) {
            for entry in ring where entry.rev > since { continuation.yield(entry.frame) }
        } else {
            continuation.yield(Array("id: \(rev)\nevent: resync\ndata: {\"rev\":\(rev)}\n\n".utf8))
        }
        subscribers[id] = continuation
        return id
    }
}

/// The monotonic clock, for durations and deadlines.
enum ConsoleClock {
    static func nanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
