import ECPProtocol
import Foundation
import Testing
import ZeroMQ

/// One message from a worker: published on its events socket, or a reply on its control socket.
struct WorkerMessage: Sendable, CustomStringConvertible {
    /// The events topic; empty for a control reply.
    var topic: String
    /// The JSON frame as received.
    var body: Data
    /// The frames of a control reply before the JSON (the envelope the worker mirrored).
    var envelope: [Data] = []
    /// The JSON, or nil when the frame is not JSON.
    var json: JSONValue?
    /// When the test received it.
    var receivedAt: ContinuousClock.Instant

    init(topic: String, body: Data, envelope: [Data] = [], receivedAt: ContinuousClock.Instant = .now) {
        self.topic = topic
        self.body = body
        self.envelope = envelope
        self.json = try? JSONDecoder().decode(JSONValue.self, from: body)
        self.receivedAt = receivedAt
    }

    subscript(key: String) -> JSONValue? { json?[key] }

    var type: String? { self["type"]?.stringValue }
    var id: String? { self["id"]?.stringValue }
    var worker: String? { self["worker"]?.stringValue }
    var run: String? { self["run"]?.stringValue }
    var seq: Int64? { self["seq"]?.intValue }
    var ok: Bool? { self["ok"]?.boolValue }
    var changed: Bool? { self["changed"]?.boolValue }
    var state: String? { self["state"]?.stringValue }
    var data: JSONValue? { self["data"] }
    var error: JSONValue? { self["error"] }
    var reason: String? { self["reason"]?.stringValue }
    var field: String? { self["field"]?.stringValue }

    /// The message without the envelope fields (`v`, `worker`, `run`, `seq`, `ts`), for comparing
    /// a published record with the same record inline.
    var withoutEnvelope: JSONValue? {
        guard var object = json?.objectValue else { return nil }
        for key in ["v", "worker", "run", "seq", "ts"] { object[key] = nil }
        return .object(object)
    }

    var description: String {
        let text = String(decoding: body.prefix(600), as: UTF8.self)
        return topic.isEmpty ? "(reply) \(text)" : "\(topic) \(text)"
    }
}

/// The two ways a command reaches a worker.
enum CommandChannel: String, CaseIterable, Sendable, CustomTestStringConvertible {
    /// The commands socket: the test's PUB publishes `[cmd.<worker-id>][json]` to the worker's SUB.
    case commands
    /// The control socket: the test's DEALER sends `[""][json]` to the worker's ROUTER and gets the
    /// result as the reply.
    case control

    var testDescription: String { rawValue }
}

/// What one command came to: its ack, its result on the events socket, and (for the control
/// channel) the direct reply.
struct CommandExchange: Sendable {
    var ack: WorkerMessage
    var result: WorkerMessage
    var reply: WorkerMessage?
}

/// The test's side of one or more workers: a PUB connected to their commands sockets, a SUB
/// connected to their events sockets, and a DEALER connected to the first worker's control socket.
///
/// Every received message is kept (``received``), so a test can look back as well as wait. All
/// sockets belong to the thread that made the client: make, use and drop it inside one synchronous
/// body run by ``WorkerTestThread/run(_:_:)``, which keeps that body on one dedicated thread.
final class WorkerClient {
    let workers: [WorkerProcess]
    let context: Context
    let publisher: Socket
    let subscriber: Socket
    let dealer: Socket
    /// Every message received on the events socket, in arrival order.
    private(set) var received: [WorkerMessage] = []
    /// Control replies received and not yet taken by ``nextReply(timeout:)``.
    private(set) var pendingReplies: [WorkerMessage] = []
    /// Every control reply received, in arrival order.
    private(set) var allReplies: [WorkerMessage] = []
    /// How long waits last unless told otherwise.
    var timeout: Duration = .seconds(10)
    /// Whether ``sync(timeout:)`` has succeeded: from then on the commands socket reaches every
    /// worker and their events reach this client.
    private(set) var isSynced = false
    private var counter = 0

    /// The first (often the only) worker.
    var worker: WorkerProcess { workers[0] }

    /// Connects to `workers` and subscribes to `subscriptions` (everything by default). Call
    /// ``sync(timeout:)`` before relying on the commands socket.
    init(_ workers: [WorkerProcess], subscriptions: [String] = [""]) throws {
        precondition(!workers.isEmpty)
        self.workers = workers
        context = try Context()
        publisher = try context.makeSocket(.pub)
        subscriber = try context.makeSocket(.sub)
        dealer = try context.makeSocket(.dealer)
        for socket in [publisher, subscriber, dealer] {
            try socket.setLinger(milliseconds: 0)
        }
        try publisher.setSendHighWaterMark(0)
        try subscriber.setReceiveHighWaterMark(0)
        try subscriber.setMaxMessageSize(-1)
        for prefix in subscriptions { try subscriber.subscribe(prefix) }
        for w in workers {
            try publisher.connect(w.commandsAddress)
            try subscriber.connect(w.eventsAddress)
        }
        try dealer.connect(workers[0].controlAddress)
    }

    convenience init(_ worker: WorkerProcess, subscriptions: [String] = [""]) throws {
        try self.init([worker], subscriptions: subscriptions)
    }

    deinit {
        publisher.close()
        subscriber.close()
        dealer.close()
    }

    /// A fresh command id with the given prefix.
    func nextID(_ prefix: String = "c") -> String {
        counter += 1
        return "\(prefix)-\(counter)"
    }

    // MARK: commands

    /// A command document.
    static func command(
        _ op: String, id: String, machine: String? = nil, args: JSONValue? = nil, extra: [String: JSONValue] = [:]
    ) -> JSONValue {
        var object: [String: JSONValue] = ["v": 1, "id": .string(id), "op": .string(op)]
        if let machine { object["machine"] = .string(machine) }
        if let args { object["args"] = args }
        for (k, v) in extra { object[k] = v }
        return .object(object)
    }

    /// A JSON value as bytes (keys sorted).
    static func encode(_ json: JSONValue) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try! encoder.encode(json)
    }

    /// Publishes raw frames on the commands PUB socket.
    func publish(_ frames: [Data]) throws {
        try publisher.send(frames)
    }

    /// Publishes `payload` under `topic` on the commands socket.
    func publish(topic: String, _ payload: Data) throws {
        try publish([Data(topic.utf8), payload])
    }

    /// Publishes a command to one worker (`cmd.<id>`; the first worker by default).
    func publish(_ command: JSONValue, to worker: WorkerProcess? = nil) throws {
        try publish(topic: "cmd.\((worker ?? self.worker).id)", Self.encode(command))
    }

    /// Sends raw frames on the control DEALER (the worker's ROUTER adds the identity).
    func sendControl(_ frames: [Data]) throws {
        try dealer.send(frames)
    }

    /// Sends a command on the control socket, REQ-style (`[""][json]`).
    func sendControl(_ command: JSONValue) throws {
        try sendControl([Data(), Self.encode(command)])
    }

    /// Sends a command on a channel; for the control channel the reply is left for ``nextReply(timeout:)``.
    func send(_ command: JSONValue, via channel: CommandChannel) throws {
        switch channel {
        case .commands: try publish(command)
        case .control: try sendControl(command)
        }
    }

    /// Sends a command and waits for its ack and result (and, on the control channel, the reply).
    /// Synchronises first (``sync(timeout:)``) if that has not been done, since the ack and result
    /// are looked for on the events socket.
    func execute(_ command: JSONValue, via channel: CommandChannel) throws -> CommandExchange {
        if !isSynced { try sync() }
        let id = try #require(command["id"]?.stringValue)
        try send(command, via: channel)
        var reply: WorkerMessage?
        if channel == .control {
            reply = try nextReply(matching: id)
        }
        let result = try result(id)
        let ack = try ack(id)
        return CommandExchange(ack: ack, result: result, reply: reply)
    }

    /// Runs a command over the control socket and returns its result.
    @discardableResult
    func run(_ op: String, machine: String? = nil, args: JSONValue? = nil, via channel: CommandChannel = .control) throws -> WorkerMessage {
        try execute(Self.command(op, id: nextID(op), machine: machine, args: args), via: channel).result
    }

    // MARK: receiving

    /// Receives whatever is waiting on the events and control sockets, waiting at most
    /// `timeoutMs` for the first message.
    func pump(timeoutMs: Int) throws {
        let events = try poll([.socket(subscriber), .socket(dealer)], timeoutMs: timeoutMs)
        if events[0].contains(.readable) {
            while let frames = try subscriber.receive(dontWait: true) {
                let topic = frames.count > 1 ? String(decoding: frames[0], as: UTF8.self) : ""
                received.append(WorkerMessage(topic: topic, body: frames.last ?? Data()))
            }
        }
        if events[1].contains(.readable) {
            while let frames = try dealer.receive(dontWait: true) {
                let reply = WorkerMessage(topic: "", body: frames.last ?? Data(), envelope: Array(frames.dropLast()))
                pendingReplies.append(reply)
                allReplies.append(reply)
            }
        }
    }

    /// Keeps receiving for `duration`, whatever arrives.
    func collect(for duration: Duration) throws {
        let until = ContinuousClock.now + duration
        while ContinuousClock.now < until {
            try pump(timeoutMs: max(1, Self.milliseconds(until - .now)))
        }
    }

    /// The first received event (looking back as well) that satisfies `predicate`, waiting for it
    /// at most `timeout`; nil when none came.
    func awaitMessage(timeout: Duration? = nil, where predicate: (WorkerMessage) -> Bool) throws -> WorkerMessage? {
        if let found = received.first(where: predicate) { return found }
        var checked = received.count
        let until = ContinuousClock.now + (timeout ?? self.timeout)
        while ContinuousClock.now < until {
            try pump(timeoutMs: max(1, min(100, Self.milliseconds(until - .now))))
            if checked < received.count {
                if let found = received[checked...].first(where: predicate) { return found }
                checked = received.count
            }
        }
        return nil
    }

    /// Like ``awaitMessage(timeout:where:)``, but a missing message fails with `what`, the
    /// messages received so far and the workers' logs.
    func waitFor(_ what: String, timeout: Duration? = nil, where predicate: (WorkerMessage) -> Bool) throws -> WorkerMessage {
        if let found = try awaitMessage(timeout: timeout, where: predicate) { return found }
        throw WorkerHarnessError(description: "timed out waiting for \(what)\n\(diagnostics())")
    }

    /// Waits until at least `count` received events satisfy `predicate`, and returns them all.
    @discardableResult
    func waitForCount(
        _ count: Int, _ what: String, timeout: Duration? = nil, where predicate: (WorkerMessage) -> Bool
    ) throws -> [WorkerMessage] {
        let until = ContinuousClock.now + (timeout ?? self.timeout)
        while true {
            let found = received.filter(predicate)
            if found.count >= count { return found }
            if ContinuousClock.now >= until {
                throw WorkerHarnessError(description: "timed out waiting for \(count) \(what), got \(found.count)\n\(diagnostics())")
            }
            try pump(timeoutMs: max(1, min(100, Self.milliseconds(until - .now))))
        }
    }

    /// Every received event that satisfies `predicate`.
    func messages(where predicate: (WorkerMessage) -> Bool) -> [WorkerMessage] {
        received.filter(predicate)
    }

    /// The result of command `id` (from `worker`, when given).
    func result(_ id: String, from worker: String? = nil, timeout: Duration? = nil) throws -> WorkerMessage {
        try waitFor("the result of \(id)", timeout: timeout) {
            $0.type == "result" && $0.id == id && (worker == nil || $0.worker == worker)
        }
    }

    /// The ack of command `id`.
    func ack(_ id: String, from worker: String? = nil) throws -> WorkerMessage {
        try waitFor("the ack of \(id)") { $0.type == "accepted" && $0.id == id && (worker == nil || $0.worker == worker) }
    }

    /// The published E2LibvirtError of command `id`.
    func libvirtError(_ id: String) throws -> WorkerMessage {
        try waitFor("the E2LibvirtError of \(id)") { $0.type == "E2LibvirtError" && $0.id == id }
    }

    /// The next control reply, waiting at most `timeout`; nil when none came.
    func awaitReply(timeout: Duration? = nil, where predicate: (WorkerMessage) -> Bool = { _ in true }) throws -> WorkerMessage? {
        let until = ContinuousClock.now + (timeout ?? self.timeout)
        while true {
            if let index = pendingReplies.firstIndex(where: predicate) {
                return pendingReplies.remove(at: index)
            }
            if ContinuousClock.now >= until { return nil }
            try pump(timeoutMs: max(1, min(100, Self.milliseconds(until - .now))))
        }
    }

    /// The next control reply; a missing one fails with diagnostics.
    func nextReply(timeout: Duration? = nil) throws -> WorkerMessage {
        if let reply = try awaitReply(timeout: timeout) { return reply }
        throw WorkerHarnessError(description: "timed out waiting for a control reply\n\(diagnostics())")
    }

    /// The control reply for command `id`.
    func nextReply(matching id: String, timeout: Duration? = nil) throws -> WorkerMessage {
        if let reply = try awaitReply(timeout: timeout, where: { $0.id == id }) { return reply }
        throw WorkerHarnessError(description: "timed out waiting for the control reply to \(id)\n\(diagnostics())")
    }

    // MARK: synchronisation

    /// Makes sure commands published now reach every worker and their answers reach this client:
    /// publishes `ping` on `cmd.<worker-id>` until a result of one of those pings arrives, per
    /// worker (a PUB drops what it sends before the connection and subscription are up). The
    /// pings' ids start with `sync.`.
    func sync(timeout: Duration = .seconds(15)) throws {
        for w in workers {
            let until = ContinuousClock.now + timeout
            var answered = false
            while !answered && ContinuousClock.now < until {
                let id = nextID("sync.\(w.id)")
                try publish(Self.command("ping", id: id), to: w)
                answered = try awaitMessage(timeout: .milliseconds(200)) {
                    $0.type == "result" && $0.worker == w.id && ($0.id?.hasPrefix("sync.") ?? false)
                } != nil
                if !w.isRunning { break }
            }
            if !answered {
                throw WorkerHarnessError(
                    description: "no answer to ping on cmd.\(w.id) within \(timeout); worker \(w.isRunning ? "running" : "exited (\(w.terminationStatus ?? -1))") as pid \(w.pid), commands \(w.commandsAddress), events \(w.eventsAddress), control \(w.controlAddress)\n\(diagnostics())")
            }
        }
        isSynced = true
    }

    /// Publishes a `ping` on `cmd.<worker-id>` and waits for its result: everything the worker
    /// published because of commands sent earlier on the same socket has arrived by then (acks and
    /// request errors leave before the ping is even read; results of fast ops too).
    @discardableResult
    func barrier(_ worker: WorkerProcess? = nil) throws -> WorkerMessage {
        let w = worker ?? self.worker
        let id = nextID("barrier")
        try publish(Self.command("ping", id: id), to: w)
        return try result(id, from: w.id)
    }

    /// Whether an id belongs to the harness's own pings; a readiness ping repeated while the
    /// worker was slow to start is answered after the test's subscriber connected.
    static func isHarnessID(_ id: String?) -> Bool {
        guard let id else { return false }
        return id.hasPrefix("sync.") || id.hasPrefix("barrier-") || id.hasPrefix("ready-")
    }

    // MARK: diagnostics

    /// The last messages received and the workers' logs, for failure messages.
    func diagnostics(messages: Int = 30) -> String {
        var text = "--- last \(min(messages, received.count)) of \(received.count) events received ---\n"
        text += received.suffix(messages).map(\.description).joined(separator: "\n")
        if !allReplies.isEmpty {
            text += "\n--- last control replies ---\n" + allReplies.suffix(10).map(\.description).joined(separator: "\n")
        }
        for w in workers { text += "\n" + w.logTail() }
        return text
    }

    static func milliseconds(_ d: Duration) -> Int {
        let c = d.components
        return Int(c.seconds) * 1000 + Int(c.attoseconds / 1_000_000_000_000_000)
    }
}
