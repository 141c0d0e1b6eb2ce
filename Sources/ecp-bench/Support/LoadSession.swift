import ECPProtocol
import Foundation
import Histogram
import ZeroMQ

/// What a load run sends and how long it may take.
struct LoadPlan {
    var count: Int
    var window: Int
    var mix: OpMix
    /// Machines for the ops that need one, in turn.
    var machines: [String]
    /// `timeout_ms` on each command, when set.
    var commandTimeoutMs: Int?
    /// The run stops when no result came for this long.
    var stallSeconds: Double
    /// The run stops at this monotonic instant.
    var deadline: UInt64
}

/// Counts for one op.
struct OpCounts: Codable {
    var sent = 0
    var ok = 0
    var failed = 0
    /// Successes that changed nothing (`changed: false`) for a state-changing op.
    var unchanged = 0
}

/// A kind of failure, how often it came, and the first one's words.
struct FailureKind: Codable {
    var count: Int
    var example: String
}

/// What came of a load run.
struct LoadOutcome {
    var sent = 0
    var answered = 0
    var ok = 0
    var failed = 0
    var perOp: [Op: OpCounts] = [:]
    var failures: [String: FailureKind] = [:]
    /// Send-to-result times, in nanoseconds.
    var latency = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000_000)
    var firstSendAt: UInt64 = 0
    var lastAnswerAt: UInt64 = 0
    /// Why the run ended before every result came back; nil when it completed.
    var stopReason: String?

    var complete: Bool { stopReason == nil }

    /// From the first send to the last result.
    var elapsedSeconds: Double {
        lastAnswerAt > firstSendAt ? Double(lastAnswerAt - firstSendAt) / 1e9 : 0
    }

    var commandsPerSecond: Double {
        elapsedSeconds > 0 ? Double(answered) / elapsedSeconds : 0
    }
}

/// A PUB socket that sends commands to a worker and a SUB socket that reads its results, both
/// owned by the calling thread.
///
/// Every command id is `<run prefix>-<n>`: the prefix is new for each run, so the worker's
/// de-duplication (which answers a known id with the earlier result) never mistakes one run's
/// commands for another's, and stray replies of other clients are ignored.
final class LoadSession {
    let context: Context
    let workerID: String
    private let pub: Socket
    private let sub: Socket
    private let commandTopic: Data
    private let resultTopic: Data
    private let requestErrorTopic: Data
    /// This run's id prefix.
    let prefix: String

    init(context: Context, commands: Endpoint, events: Endpoint, workerID: String) throws {
        self.context = context
        self.workerID = workerID
        prefix = "b" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(8).lowercased()
        commandTopic = Data(Topic.command(workerID).utf8)
        resultTopic = Data(Topic.result(workerID).utf8)
        requestErrorTopic = Data(Topic.requestError(workerID).utf8)
        pub = try context.makeSocket(.pub)
        sub = try context.makeSocket(.sub)
        try pub.setLinger(milliseconds: 0)
        try sub.setLinger(milliseconds: 0)
        try pub.setSendHighWaterMark(100_000)
        try sub.setReceiveHighWaterMark(100_000)
        try sub.subscribe(Topic.result(workerID))
        try sub.subscribe(Topic.requestError(workerID))
        do {
            try pub.attach(commands)
        } catch {
            throw BenchFailure(2, "cannot open the commands endpoint \(commands): \(error)")
        }
        do {
            try sub.attach(events)
        } catch {
            throw BenchFailure(2, "cannot open the events endpoint \(events): \(error)")
        }
    }

    deinit {
        pub.close()
        sub.close()
    }

    /// The address the PUB socket is bound to (for a bind to port `*`).
    var commandsBoundAddress: String? { try? pub.lastEndpoint }

    // MARK: sending and receiving

    private func send(_ body: Data) throws {
        // A PUB socket never blocks; with the window far under the high-water mark, nothing is
        // dropped on this side.
        _ = try pub.send([commandTopic, body], dontWait: true)
    }

    private static func command(id: String, op: Op, machine: String?) -> Data {
        var object: [String: JSONValue] = ["v": 1, "id": .string(id), "op": .string(op.rawValue)]
        if let machine { object["machine"] = .string(machine) }
        return (try? JSONEncoder().encode(JSONValue.object(object))) ?? Data()
    }

    /// Receives what is waiting (up to `timeoutMs`) and hands each result or request error to
    /// `handle` with its JSON body.
    private func receive(timeoutMs: Int, _ handle: (Data) throws -> Void) throws {
        let ready = try poll([.socket(sub)], timeoutMs: timeoutMs)
        guard ready[0].contains(.readable) else { return }
        while let frames = try sub.receive(dontWait: true) {
            guard frames.count == 2, frames[0] == resultTopic || frames[0] == requestErrorTopic else { continue }
            try handle(frames[1])
        }
    }

    // MARK: handshake

    /// Sends `ping` every 100 ms until one is answered or `deadline` passes. Subscriptions
    /// travel after a connection is made, so the first commands of a late joiner are dropped by
    /// PUB/SUB: the ping repeats until one gets through both ways. Returns the milliseconds it
    /// took, or nil.
    func handshake(deadline: UInt64, alive: () -> Bool = { true }) throws -> Double? {
        let start = Clock.nanos()
        let syncPrefix = "\(prefix)-s"
        var attempt = 0
        while Clock.nanos() < deadline && alive() {
            attempt += 1
            try send(Self.command(id: "\(syncPrefix)\(attempt)", op: .ping, machine: nil))
            let until = min(deadline, Clock.nanos() + 100_000_000)
            var answered = false
            while !answered && Clock.nanos() < until {
                try receive(timeoutMs: max(1, Int((until - min(until, Clock.nanos())) / 1_000_000))) { body in
                    if let id = (try? JSONDecoder().decode(JSONValue.self, from: body))?["id"]?.stringValue,
                        id.hasPrefix(syncPrefix)
                    {
                        answered = true
                    }
                }
            }
            if answered { return Clock.ms(from: start, to: Clock.nanos()) }
        }
        return nil
    }

    /// Sends one command per entry and waits for every result (or `deadline`); results by index.
    func exchange(_ commands: [(op: Op, machine: String?)], tag: String, deadline: UInt64) throws -> [ResultMessage?] {
        var results = [ResultMessage?](repeating: nil, count: commands.count)
        let idPrefix = "\(prefix)-\(tag)"
        for (k, c) in commands.enumerated() {
            try send(Self.command(id: "\(idPrefix)\(k)", op: c.op, machine: c.machine))
        }
        var missing = commands.count
        while missing > 0 && Clock.nanos() < deadline {
            try receive(timeoutMs: 100) { body in
                guard let id = (try? JSONDecoder().decode(JSONValue.self, from: body))?["id"]?.stringValue,
                    id.hasPrefix(idPrefix), let k = Int(id.dropFirst(idPrefix.count)), k < results.count, results[k] == nil
                else { return }
                if let result = try? JSONDecoder().decode(ResultMessage.self, from: body) {
                    results[k] = result
                } else {
                    // A request error: a result that failed for the same reason.
                    let detail = (try? JSONDecoder().decode(JSONValue.self, from: body))?["detail"]?.stringValue ?? "request refused"
                    results[k] = ResultMessage(
                        id: id, op: commands[k].op.rawValue, machine: commands[k].machine, ok: false,
                        error: .worker(WorkerErrorRecord(type: "request_error", category: "request", retryable: false, message: detail, summary: detail)),
                        durationMs: 0)
                }
                missing -= 1
            }
        }
        return results
    }

    // MARK: the run

    /// Keeps `plan.window` commands in flight until `plan.count` have been answered, the
    /// deadline passes, results stop coming for `plan.stallSeconds`, or `alive` says the worker
    /// is gone. `paused` holds each machine's state (paused or not) and is updated as the
    /// suspend/resume pairs are sent. `tick` runs about once a second. `tag` sets this run's ids
    /// apart from another run's in the same session (the worker would answer a known id from its
    /// de-duplication memory).
    func run(
        _ plan: LoadPlan, paused: inout [Bool], tag: String = "", alive: () -> Bool = { true }, tick: () -> Void = {}
    ) throws -> LoadOutcome {
        var outcome = LoadOutcome()
        let count = plan.count
        let cycle = plan.mix.cycle
        let pairs = plan.mix.pairsSuspendResume
        var sentAt = [UInt64](repeating: 0, count: count)
        var sentOp = [UInt8](repeating: 0, count: count)
        var done = [Bool](repeating: false, count: count)
        let opIndex = Dictionary(uniqueKeysWithValues: Op.allCases.enumerated().map { ($1, UInt8($0)) })
        let opsByIndex = Op.allCases

        // Every command is `<head><n><tail>`, with its head and tail made once per (op, machine).
        let idPrefix = "\(prefix)-\(tag)"
        let idPrefixBytes = Array(idPrefix.utf8)
        let tail = Data((plan.commandTimeoutMs.map { "\",\"timeout_ms\":\($0)}" } ?? "\"}").utf8)
        var heads: [String: Data] = [:]
        func head(_ op: Op, _ machine: Int?) -> Data {
            let key = "\(op.rawValue)/\(machine ?? -1)"
            if let h = heads[key] { return h }
            var text = "{\"v\":1,\"op\":\"\(op.rawValue)\","
            if let machine {
                let quoted = (try? JSONEncoder().encode(plan.machines[machine])).map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
                text += "\"machine\":\(quoted),"
            }
            text += "\"id\":\"\(idPrefix)"
            let h = Data(text.utf8)
            heads[key] = h
            return h
        }

        var machineCursor = 0
        var lastProgress = Clock.nanos()
        var lastTick = lastProgress
        let stall = Clock.ns(seconds: plan.stallSeconds)
        outcome.firstSendAt = Clock.nanos()

        while outcome.answered < count {
            // Fill the window.
            while outcome.sent < count && outcome.sent - outcome.answered < plan.window {
                let n = outcome.sent
                var op = cycle[n % cycle.count]
                var machine: Int?
                if op.needsMachine {
                    let m = machineCursor % plan.machines.count
                    machineCursor += 1
                    machine = m
                    if pairs && (op == .suspend || op == .resume) {
                        op = paused[m] ? .resume : .suspend
                        paused[m].toggle()
                    }
                }
                var body = head(op, machine)
                body.append(contentsOf: String(n).utf8)
                body.append(tail)
                sentOp[n] = opIndex[op]!
                sentAt[n] = Clock.nanos()
                try send(body)
                outcome.sent += 1
                outcome.perOp[op, default: OpCounts()].sent += 1
            }

            let now = Clock.nanos()
            if now >= plan.deadline {
                outcome.stopReason = "the overall time limit (--timeout-s) ran out"
                break
            }
            if now - lastProgress >= stall {
                outcome.stopReason = "no result came for \(Int(plan.stallSeconds)) s"
                break
            }
            if now - lastTick >= 1_000_000_000 {
                lastTick = now
                tick()
                if !alive() {
                    outcome.stopReason = "the worker process exited"
                    break
                }
            }
            let waitMs = Int(min(plan.deadline - now, stall - (now - lastProgress), 250_000_000) / 1_000_000)
            try receive(timeoutMs: max(1, waitMs)) { body in
                let at = Clock.nanos()
                // The index and whether it succeeded, for a result of this run not seen before.
                let answer: (n: Int, ok: Bool, unchanged: Bool)? = body.withUnsafeBytes { raw in
                    guard let reply = ReplyScanner.scan(raw), let id = reply.id,
                        let n = ReplyScanner.index(raw, id: id, prefix: idPrefixBytes), n < count, !done[n], sentAt[n] != 0
                    else { return nil }
                    let ok = reply.ok == true && !reply.isRequestError
                    return (n, ok, ok && reply.changed == false)
                }
                guard let answer else { return }
                let n = answer.n
                done[n] = true
                outcome.answered += 1
                outcome.lastAnswerAt = at
                outcome.latency.record(at - sentAt[n])
                let op = opsByIndex[Int(sentOp[n])]
                if answer.ok {
                    outcome.ok += 1
                    outcome.perOp[op, default: OpCounts()].ok += 1
                    if answer.unchanged && op.changesState {
                        outcome.perOp[op, default: OpCounts()].unchanged += 1
                    }
                } else {
                    outcome.failed += 1
                    outcome.perOp[op, default: OpCounts()].failed += 1
                    let (kind, words) = Self.failure(body)
                    outcome.failures[kind, default: FailureKind(count: 0, example: words)].count += 1
                }
            }
            if outcome.lastAnswerAt > lastProgress { lastProgress = outcome.lastAnswerAt }
        }
        return outcome
    }

    /// A failed result's kind (`code_name`, error type, or request error reason) and summary.
    private static func failure(_ body: Data) -> (String, String) {
        guard let json = try? JSONDecoder().decode(JSONValue.self, from: body) else { return ("unreadable", "an unreadable reply") }
        if json["type"]?.stringValue == "request_error" {
            return ("request_error:\(json["reason"]?.stringValue ?? "?")", json["detail"]?.stringValue ?? "")
        }
        let error = json["error"]
        let kind = error?["code_name"]?.stringValue ?? error?["type"]?.stringValue ?? "unknown"
        return (kind, error?["summary"]?.stringValue ?? "")
    }
}
