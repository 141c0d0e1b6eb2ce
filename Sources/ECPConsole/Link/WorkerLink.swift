import ECPProtocol
import FoundationEssentials
import Logging
import Synchronization
import Threading
import ZeroMQ

/// A command for the worker, made by the web server and sent by the link's thread.
public struct OutgoingCommand: Sendable {
    public var id: String
    public var op: String
    public var machine: String?
    /// The command document.
    public var payload: [UInt8]
    /// How long the console waits for its answer.
    public var waitNanos: UInt64
}

/// How the link behaves; the defaults suit a person's console.
public struct LinkTiming: Sendable {
    /// How often the thread wakes to check heartbeats and deadlines.
    public var tickMs = 100
    /// How long a catch-up request may take before the catch-up starts again.
    public var requestTimeoutMs = 10_000
    /// The pause before a catch-up that failed is tried again.
    public var retryMs = 1_000
    /// A host is down after this many heartbeat intervals without one.
    public var missedHeartbeats = 3
    /// Messages held while a catch-up runs; past it the catch-up starts over.
    public var bufferLimit = 50_000
    /// Messages asked for per `replay` page.
    public var replayPage = 1_000

    public init() {}
}

/// The console's connection to one worker, on a thread of its own that alone uses its two
/// sockets: a SUB on every topic of the events socket and a DEALER on the control socket.
///
/// On every (re)connection and every new `run` it catches up through the control socket:
/// `stats` (machines, state, CPU, memory; `list` when stats fail), `report` (the last restore),
/// and `replay` of the `error.` topics from the run's start. It keeps the run's `seq`: a gap in the
/// live stream is filled by `replay` before the messages after it are applied, and a message
/// older than what a machine shows (a sample's or a reply's `seq`) never overrides it. A host is
/// down while no heartbeat came for three of its intervals (and before the first).
public final class WorkerLink: Sendable {
    public let spec: WorkerSpec
    let state: ConsoleState
    let logger: Logger
    let timing: LinkTiming
    private let context: Context
    private let outbox = Mutex<[OutgoingCommand]>([])
    private let wake: WakeSignal
    private let stopping = Atomic<Bool>(false)
    private let finished = OneShot<Void>()

    public init(spec: WorkerSpec, state: ConsoleState, context: Context, logger: Logger, timing: LinkTiming = LinkTiming()) throws {
        self.spec = spec
        self.state = state
        self.context = context
        self.logger = logger
        self.timing = timing
        self.wake = try WakeSignal()
    }

    /// Starts the thread.
    public func start() {
        WorkerThread.start(name: "con-\(spec.id)") { [self] in
            do {
                var loop = try LinkLoop(link: self)
                loop.serve()
            } catch {
                logger.error(
                    "worker connection failed", metadata: ["worker.id": "\(spec.id)", "error": "\(error)"])
            }
            finished.set(())
        }
    }

    /// Stops the thread and waits for it.
    public func stop() {
        stopping.store(true, ordering: .relaxed)
        wake.raise()
        finished.wait()
    }

    /// Hands a command to the thread; its answer settles the command in ``ConsoleState``.
    public func submit(_ command: OutgoingCommand) {
        outbox.withLock { $0.append(command) }
        wake.raise()
    }

    fileprivate var isStopping: Bool { stopping.load(ordering: .relaxed) }
    fileprivate var wakeDescriptor: Int32 { wake.fileDescriptor }
    fileprivate func takeOutbox() -> [OutgoingCommand] {
        wake.drain()
        return outbox.withLock { box in
            defer { box.removeAll() }
            return box
        }
    }
    fileprivate func makeSocket(_ type: SocketType) throws -> Socket { try context.makeSocket(type) }
}

/// A message of the worker, decoded.
struct WireMessage {
    var topic: String
    var body: JSONValue
    var type: String
    var run: String
    var seq: UInt64

    init?(topic: String, body: JSONValue) {
        guard let type = body["type"]?.stringValue, let run = body["run"]?.stringValue,
            let seq = body["seq"]?.intValue, seq >= 0
        else { return nil }
        self.topic = topic
        self.body = body
        self.type = type
        self.run = run
        self.seq = UInt64(seq)
    }
}

/// The link thread's own state: only that thread touches it.
private struct LinkLoop {
    enum Pending {
        case stats
        case list
        case report
        /// A page of the run's errors from `since`.
        case errors
        /// A page of a gap fill.
        case gap
        /// A person's command.
        case command(OutgoingCommand)
    }

    struct Request {
        var kind: Pending
        var deadline: UInt64
        /// A replay's `since_seq`, so that a page that does not move on is not asked for again.
        var since: Int64? = nil
    }

    let link: WorkerLink
    let sub: Socket
    let dealer: Socket
    var host: String { link.spec.id }

    var run: String?
    /// The newest seq of `run` the console holds everything up to; nil before the first sample.
    var lastSeq: UInt64?
    var synced = false
    var syncing = false
    var nextSyncAt: UInt64 = 0
    /// Live messages held while a catch-up or a gap fill runs.
    var buffer: [WireMessage] = []
    /// The gap fill under way: the messages collected so far.
    var filling: [WireMessage]?
    var requests: [String: Request] = [:]
    var commandDeadlines: [String: UInt64] = [:]
    var lastHeartbeat: UInt64?
    var heartbeatMs: Int?
    var stoppedRun: String?
    var up = false
    var requestCounter = 0

    init(link: WorkerLink) throws {
        self.link = link
        sub = try link.makeSocket(.sub)
        try sub.setLinger(milliseconds: 0)
        try sub.setReceiveHighWaterMark(200_000)
        try sub.setMaxMessageSize(64 << 20)
        if let keys = link.spec.curve { try keys.apply(to: sub) }
        try sub.subscribe("")
        try sub.attach(link.spec.events)
        dealer = try link.makeSocket(.dealer)
        try dealer.setLinger(milliseconds: 0)
        // Nothing is queued for a worker that is not connected: a command then fails at once
        // instead of running whenever the worker comes back.
        try dealer.setImmediate(true)
        try dealer.setMaxMessageSize(64 << 20)
        if let keys = link.spec.curve { try keys.apply(to: dealer) }
        try dealer.attach(link.spec.control)
    }

    var logger: Logger { link.logger }

    mutating func serve() {
        logger.info(
            "following worker",
            metadata: ["worker.id": "\(host)", "worker.control": "\(link.spec.control)", "worker.events": "\(link.spec.events)"])
        while !link.isStopping {
            tick(now: ConsoleClock.nanos())
            let events: [PollEvents]
            do {
                events = try poll(
                    [.socket(sub), .socket(dealer), .fileDescriptor(link.wakeDescriptor)], timeoutMs: link.timing.tickMs)
            } catch {
                logger.error("worker connection failed", metadata: ["worker.id": "\(host)", "error": "\(error)"])
                // The page must not go on showing a host that nothing follows any more.
                setStatus(up: false, reason: "the console stopped following it: \(error)")
                for command in link.takeOutbox() {
                    finishCommand(id: command.id, status: .notSent, reply: nil, problem: "not sent: the console stopped following this worker")
                }
                break
            }
            if events[2].contains(.readable) {
                for command in link.takeOutbox() { send(command) }
            }
            if events[0].contains(.readable) { receiveLive() }
            if events[1].contains(.readable) { receiveReplies() }
        }
        sub.close()
        dealer.close()
    }

    // MARK: time

    mutating func tick(now: UInt64) {
        // Liveness.
        var isUp = false
        var reason = "no heartbeat yet"
        if let last = lastHeartbeat, let ms = heartbeatMs {
            let limit = UInt64(ms) * UInt64(link.timing.missedHeartbeats) * 1_000_000
            if stoppedRun != nil && stoppedRun == run {
                reason = "the worker said it is stopping"
            } else if now &- last <= limit {
                isUp = true
                reason = ""
            } else {
                reason = "no heartbeat for \(link.timing.missedHeartbeats) × \(ms) ms"
            }
        }
        if isUp != up || (!isUp && reason != currentReason) {
            setStatus(up: isUp, reason: reason)
        }
        // Catch-up.
        if !synced && !syncing && now >= nextSyncAt { startSync() }
        // Deadlines.
        for (id, request) in requests where now >= request.deadline {
            requests[id] = nil
            expired(id: id, request.kind)
        }
        for (id, deadline) in commandDeadlines where now >= deadline {
            commandDeadlines[id] = nil
            finishCommand(id: id, status: .noReply, reply: nil, problem: "no answer from the worker in time")
        }
    }

    var currentReason = "no heartbeat yet"

    mutating func setStatus(up isUp: Bool, reason: String) {
        let wasUp = up
        up = isUp
        currentReason = reason
        let run = self.run
        link.state.update(host) { model in
            model.status = isUp ? .up : .down
            model.reason = reason
            return [.host(model.id)]
        }
        if wasUp != isUp {
            if isUp {
                logger.info("worker up", metadata: ["worker.id": "\(host)", "worker.run": "\(run ?? "-")"])
            } else {
                logger.warning("worker down", metadata: ["worker.id": "\(host)", "worker.reason": "\(reason)"])
            }
        }
    }

    // MARK: requests

    mutating func newID(_ what: String) -> String {
        requestCounter += 1
        return "con-\(what)-\(RandomText.hex(bytes: 4))-\(requestCounter)"
    }

    /// Sends a catch-up request; false when the control socket has no connection.
    mutating func ask(_ kind: Pending, op: String, args: [String: JSONValue] = [:]) -> Bool {
        let id = newID(op)
        var w = JSONWriter(capacity: 128)
        w.beginObject()
        w.key("v"); w.int(1)
        w.key("id"); w.string(id)
        w.key("op"); w.string(op)
        if !args.isEmpty {
            w.key("args"); w.value(.object(args))
        }
        w.endObject()
        guard sendFrames(w.bytes) else { return false }
        requests[id] = Request(
            kind: kind, deadline: ConsoleClock.nanos() + UInt64(link.timing.requestTimeoutMs) * 1_000_000,
            since: args["since_seq"]?.intValue)
        return true
    }

    func sendFrames(_ payload: [UInt8]) -> Bool {
        do {
            return try dealer.send([Data(), Data(payload)], dontWait: true)
        } catch {
            return false
        }
    }

    mutating func send(_ command: OutgoingCommand) {
        guard sendFrames(command.payload) else {
            finishCommand(
                id: command.id, status: .notSent, reply: nil,
                problem: "not sent: the console has no connection to the worker's control socket")
            return
        }
        requests[command.id] = Request(kind: .command(command), deadline: UInt64.max)
        commandDeadlines[command.id] = ConsoleClock.nanos() + command.waitNanos
    }

    mutating func expired(id: String, _ kind: Pending) {
        switch kind {
        case .command:
            break
        case .stats, .list, .report, .errors:
            logger.warning("catch-up request unanswered; trying again", metadata: ["worker.id": "\(host)", "request.id": "\(id)"])
            abandonSync()
        case .gap:
            gapFailed(reason: "the replay was not answered in time")
        }
    }

    mutating func abandonSync() {
        syncing = false
        synced = false
        nextSyncAt = ConsoleClock.nanos() + UInt64(link.timing.retryMs) * 1_000_000
        requests = requests.filter { if case .command = $0.value.kind { return true } else { return false } }
        filling = nil
    }

    // MARK: catch-up

    mutating func startSync() {
        syncing = true
        filling = nil
        requests = requests.filter { if case .command = $0.value.kind { return true } else { return false } }
        if !ask(.stats, op: "stats") { abandonSync() }
    }

    mutating func syncStep(after kind: Pending) {
        switch kind {
        case .stats, .list:
            if !ask(.report, op: "report") { abandonSync() }
        case .report:
            if !ask(.errors, op: "replay", args: ["since_seq": 0, "limit": .int(Int64(link.timing.replayPage)), "topics": ["error."]]) {
                abandonSync()
            }
        default:
            break
        }
    }

    mutating func syncDone() {
        syncing = false
        synced = true
        let lastSeq = self.lastSeq ?? 0
        link.state.update(host) { model in
            model.synced = true
            model.seq = max(model.seq, lastSeq)
            return [.host(model.id), .errors(model.id)]
        }
        logger.info(
            "caught up with worker",
            metadata: ["worker.id": "\(host)", "worker.run": "\(run ?? "-")", "worker.seq": .stringConvertible(lastSeq)])
        drainBuffer()
    }

    /// A reply of another run than the one followed: the worker restarted.
    mutating func beginRun(_ newRun: String) {
        let previous = run
        run = newRun
        lastSeq = nil
        buffer.removeAll()
        filling = nil
        synced = false
        link.state.update(host) { model in
            model.run = newRun
            model.synced = false
            model.seq = 0
            model.lost = 0
            for key in model.machines.keys { model.machines[key]?.stateSeq = 0 }
            return [.host(model.id)]
        }
        if previous != nil {
            logger.notice("worker began a new run", metadata: ["worker.id": "\(host)", "worker.run": "\(newRun)", "worker.previous_run": "\(previous ?? "-")"])
        }
        startSync()
    }

    // MARK: live messages

    mutating func receiveLive() {
        var count = 0
        while count < 5_000, let frames = try? sub.receive(dontWait: true) {
            count += 1
            guard frames.count == 2, let body = JSONValue.parse(bytes: Array(frames[1])) else { continue }
            guard let message = WireMessage(topic: String(decoding: frames[0], as: UTF8.self), body: body) else { continue }
            live(message)
        }
    }

    mutating func live(_ message: WireMessage) {
        let newRun = message.run != run
        if newRun { beginRun(message.run) }
        if message.type == "heartbeat" {
            lastHeartbeat = ConsoleClock.nanos()
            // The protocol's range (100 ms to an hour); anything else from the wire is ignored.
            if let ms = message.body["interval_ms"]?.intValue, (1...3_600_000).contains(ms) { heartbeatMs = Int(ms) }
            if stoppedRun != message.run { stoppedRun = nil }
            let libvirt = message.body["libvirt"]?.stringValue
            let ts = message.body["ts"]?.stringValue
            let interval = heartbeatMs
            link.state.update(host) { model in
                let changed = model.libvirt != libvirt || model.heartbeatMs != interval
                model.libvirt = libvirt
                model.heartbeatMs = interval
                model.lastHeartbeat = ts
                return changed ? [.host(model.id)] : []
            }
            tick(now: ConsoleClock.nanos())
        } else if message.type == "worker.stopping" {
            stoppedRun = message.run
            tick(now: ConsoleClock.nanos())
        }
        if newRun {
            buffer.append(message)
            return
        }
        if !synced || filling != nil {
            buffer.append(message)
            if buffer.count > link.timing.bufferLimit {
                logger.warning("too many messages held during a catch-up; starting over", metadata: ["worker.id": "\(host)"])
                buffer.removeAll()
                abandonSync()
            }
            return
        }
        process(message)
    }

    /// Applies a message in seq order, or starts a gap fill first.
    mutating func process(_ message: WireMessage) {
        guard let last = lastSeq else {
            lastSeq = message.seq
            apply(message)
            return
        }
        if message.seq <= last { return }
        if message.seq > last + 1 {
            buffer.insert(message, at: 0)
            startFill(since: last)
            return
        }
        apply(message)
        lastSeq = message.seq
    }

    mutating func drainBuffer() {
        while synced, filling == nil, !buffer.isEmpty {
            let message = buffer.removeFirst()
            if message.run != run { continue }
            process(message)
        }
    }

    mutating func startFill(since: UInt64) {
        filling = []
        if !ask(.gap, op: "replay", args: ["since_seq": .int(Int64(clamping: since)), "limit": .int(Int64(link.timing.replayPage))]) {
            gapFailed(reason: "the control socket has no connection")
        }
    }

    mutating func gapFailed(reason: String) {
        filling = nil
        let last = lastSeq ?? 0
        if let first = buffer.first?.seq, first > last + 1 {
            let lost = first - last - 1
            logger.warning(
                "messages lost", metadata: ["worker.id": "\(host)", "worker.run": "\(run ?? "-")", "messages.lost": .stringConvertible(lost), "reason": "\(reason)"])
            lastSeq = first - 1
            link.state.update(host) { model in
                model.lost += lost
                return [.host(model.id)]
            }
            // Machine states may have changed unseen: take a new sample.
            synced = false
            startSync()
            return
        }
        drainBuffer()
    }

    /// Applies one message of the followed run to the model.
    mutating func apply(_ message: WireMessage) {
        let seq = message.seq
        let body = message.body
        var finished: (String, CommandRecord.Status)?
        switch message.type {
        case "result":
            if let id = body["id"]?.stringValue, requests[id] != nil || commandDeadlines[id] != nil {
                finished = (id, body["ok"]?.boolValue == true ? .ok : .failed)
            }
        case "request_error":
            if let id = body["id"]?.stringValue, commandDeadlines[id] != nil { finished = (id, .refused) }
        default:
            break
        }
        let run = message.run
        link.state.update(host) { model in
            model.seq = max(model.seq, seq)
            switch message.type {
            case "machine.event":
                if let row = model.applyMachineEvent(body, seq: seq) { return [.machine(model.id, row)] }
            case "result":
                if let row = model.applyResultState(body, seq: seq) { return [.machine(model.id, row)] }
            case "E2LibvirtError", "request_error":
                if let entry = model.addError(body, run: run, seq: seq) { return [.error(entry)] }
            case "restore.outcome", "restore.summary", "host_stop.summary":
                if model.applyRestoreMessage(body) { return [.restore(model.id)] }
            case "stats":
                model.applySample(body["machines"]?.arrayValue ?? [], seq: seq, withFigures: true)
                return [.machines(model.id)]
            default:
                break
            }
            return []
        }
        if let (id, status) = finished {
            requests[id] = nil
            commandDeadlines[id] = nil
            finishCommand(id: id, status: status, reply: body, problem: nil)
        }
    }

    // MARK: replies

    mutating func receiveReplies() {
        var count = 0
        while count < 1_000, let frames = try? dealer.receive(dontWait: true) {
            count += 1
            guard let last = frames.last, frames.count <= 2, let body = JSONValue.parse(bytes: Array(last)) else { continue }
            reply(body)
        }
    }

    mutating func reply(_ body: JSONValue) {
        guard let id = body["id"]?.stringValue, let request = requests.removeValue(forKey: id) else { return }
        if case .command = request.kind {
            commandDeadlines[id] = nil
            let status: CommandRecord.Status =
                body["type"]?.stringValue == "request_error" ? .refused : (body["ok"]?.boolValue == true ? .ok : .failed)
            finishCommand(id: id, status: status, reply: body, problem: nil)
            // The published copy carries the machine's new state too; this one may come first (the
            // seq keeps the older of the two from overriding anything).
            if let message = WireMessage(topic: "", body: body), message.run == run {
                let seq = message.seq
                link.state.update(host) { model in
                    if let row = model.applyResultState(body, seq: seq) { return [.machine(model.id, row)] }
                    return []
                }
            }
            return
        }
        guard let replyRun = body["run"]?.stringValue, let replySeq = body["seq"]?.intValue.map({ UInt64(max(0, $0)) }) else {
            abandonSync()
            return
        }
        if run == nil {
            run = replyRun
            link.state.update(host) { model in
                model.run = replyRun
                return [.host(model.id)]
            }
        } else if replyRun != run {
            beginRun(replyRun)
            return
        }
        let ok = body["ok"]?.boolValue == true
        let data = body["data"] ?? .null
        switch request.kind {
        case .stats, .list:
            let isStats: Bool
            if case .stats = request.kind { isStats = true } else { isStats = false }
            guard ok else {
                if isStats, ask(.list, op: "list") { return }
                // No sample now (libvirt away): go on; the next sample brings the machines.
                lastSeq = lastSeq.map { max($0, replySeq) } ?? replySeq
                syncStep(after: request.kind)
                return
            }
            let machines = data["machines"]?.arrayValue ?? []
            link.state.update(host) { model in
                model.applySample(machines, seq: replySeq, withFigures: isStats)
                return [.machines(model.id)]
            }
            lastSeq = lastSeq.map { max($0, replySeq) } ?? replySeq
            syncStep(after: request.kind)
        case .report:
            if ok {
                link.state.update(host) { model in
                    model.applyReport(data)
                    return [.restore(model.id)]
                }
            }
            syncStep(after: request.kind)
        case .errors:
            guard ok, data["run"]?.stringValue == run else {
                abandonSync()
                return
            }
            let messages = (data["messages"]?.arrayValue ?? []).compactMap { item -> WireMessage? in
                guard let message = item["message"] else { return nil }
                return WireMessage(topic: item["topic"]?.stringValue ?? "", body: message)
            }
            let replayRun = replyRun
            link.state.update(host) { model in
                for message in messages { _ = model.addError(message.body, run: replayRun, seq: message.seq) }
                return []
            }
            let next = data["next_seq"]?.intValue ?? 0
            let asked = request.since ?? 0
            if data["more"]?.boolValue == true, next > asked {
                if !ask(
                    .errors, op: "replay",
                    args: ["since_seq": .int(next), "limit": .int(Int64(link.timing.replayPage)), "topics": ["error."]])
                {
                    abandonSync()
                }
            } else {
                syncDone()
            }
        case .gap:
            guard ok, data["run"]?.stringValue == run, filling != nil else {
                gapFailed(reason: "the replay failed")
                return
            }
            let since = lastSeq ?? 0
            // Whether this is the first page of the fill, before its messages are collected.
            let firstPage = (filling ?? []).isEmpty
            for item in data["messages"]?.arrayValue ?? [] {
                guard let message = item["message"], let wire = WireMessage(topic: item["topic"]?.stringValue ?? "", body: message)
                else { continue }
                filling?.append(wire)
            }
            let next = UInt64(max(0, data["next_seq"]?.intValue ?? 0))
            let oldest = UInt64(max(0, data["oldest_seq"]?.intValue ?? 0))
            var lostCount: UInt64 = 0
            if data["truncated"]?.boolValue == true, oldest > since + 1, firstPage {
                lostCount = oldest - since - 1
            }
            if data["more"]?.boolValue == true, next > since {
                // Apply what came, then ask for the next page.
                let collected = filling ?? []
                filling = []
                if lostCount > 0 { noteLost(lostCount) }
                for message in collected where message.seq > (lastSeq ?? 0) {
                    apply(message)
                    lastSeq = message.seq
                }
                lastSeq = max(lastSeq ?? 0, next)
                if !ask(.gap, op: "replay", args: ["since_seq": .int(Int64(clamping: next)), "limit": .int(Int64(link.timing.replayPage))]) {
                    gapFailed(reason: "the control socket has no connection")
                }
                return
            }
            let collected = filling ?? []
            filling = nil
            link.state.update(host) { model in
                model.gapsFilled += 1
                return []
            }
            if lostCount > 0 { noteLost(lostCount) }
            for message in collected where message.seq > (lastSeq ?? 0) {
                apply(message)
                lastSeq = message.seq
            }
            lastSeq = max(lastSeq ?? 0, next)
            if lostCount > 0 {
                // Machine states may have changed unseen: take a new sample.
                synced = false
                startSync()
                return
            }
            drainBuffer()
        case .command:
            break
        }
    }

    mutating func noteLost(_ count: UInt64) {
        logger.warning(
            "messages lost", metadata: ["worker.id": "\(host)", "worker.run": "\(run ?? "-")", "messages.lost": .stringConvertible(count), "reason": "gone from the worker's replay memory"])
        link.state.update(host) { model in
            model.lost += count
            return [.host(model.id)]
        }
    }

    // MARK: commands

    mutating func finishCommand(id: String, status: CommandRecord.Status, reply: JSONValue?, problem: String?) {
        requests[id] = nil
        commandDeadlines[id] = nil
        guard
            let record = link.state.commandFinished(id: id, { record in
                record.status = status
                record.reply = reply
                record.problem = problem
            })
        else { return }
        var metadata: Logger.Metadata = [
            "command.id": "\(record.id)", "command.op": "\(record.action)", "worker.id": "\(record.host)",
            "command.outcome": "\(record.status.rawValue)", "command.duration_ms": .stringConvertible(Int((record.durationMs ?? 0).rounded())),
        ]
        if let user = record.user { metadata["user.name"] = "\(user)" }
        metadata["http.remote"] = "\(record.remote)"
        if let machine = record.machine { metadata["machine.name"] = "\(machine)" }
        if status != .ok { metadata["error.summary"] = "\(record.summary)" }
        if let state = reply?["state"]?.stringValue { metadata["machine.state"] = "\(state)" }
        if status == .ok {
            logger.info("command answered", metadata: metadata)
        } else {
            logger.warning("command answered", metadata: metadata)
        }
    }
}
