import ECPProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A command whose state change libvirt reports as a lifecycle event.
struct WorkerMachineEventCase: Sendable, CustomTestStringConvertible {
    var name: String
    var setup: [(String, String?, JSONValue?)] = []
    var op: String
    var machine: String?
    var args: JSONValue?
    /// The machine the event is about.
    var subject: WorkerMachine
    var event: String
    var detail: String
    /// The state the event must carry; nil for `undefined`, where the machine may be gone and the
    /// state may be left out (schemas/machine_event.json).
    var state: String?

    var testDescription: String { name }

    static let newMachine = WorkerMachine(name: "new1", uuid: "3b9f4e2a-6c1d-4f0b-9a8e-2d7c5b1a0f02", running: false)

    static let all: [WorkerMachineEventCase] = [
        WorkerMachineEventCase(name: "start", op: "start", machine: "web1", subject: .web1, event: "started", detail: "booted", state: "running"),
        WorkerMachineEventCase(name: "start paused", op: "start", machine: "web2", args: ["paused": true], subject: .web2, event: "suspended", detail: "paused", state: "paused"),
        WorkerMachineEventCase(name: "suspend", op: "suspend", machine: "db1", subject: .db1, event: "suspended", detail: "paused", state: "paused"),
        WorkerMachineEventCase(name: "resume", setup: [("suspend", "db1", nil)], op: "resume", machine: "db1", subject: .db1, event: "resumed", detail: "unpaused", state: "running"),
        WorkerMachineEventCase(name: "destroy", op: "destroy", machine: "cache1", subject: .cache1, event: "stopped", detail: "destroyed", state: "shutoff"),
        WorkerMachineEventCase(name: "shutdown", op: "shutdown", machine: "db1", subject: .db1, event: "stopped", detail: "shutdown", state: "shutoff"),
        WorkerMachineEventCase(
            name: "define", op: "define", args: ["xml": .string(WorkerMachine.domainXML(name: newMachine.name, uuid: newMachine.uuid))],
            subject: newMachine, event: "defined", detail: "added", state: "shutoff"),
        WorkerMachineEventCase(
            name: "undefine", op: "undefine", machine: "web2", subject: .web2, event: "undefined", detail: "removed", state: nil),
    ]
}

@Suite("Worker lifecycle: events, heartbeats, sequence numbers, graceful stop")
struct WorkerLifecycleTests {
    static let machineStates: Set<String> = ["nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended"]

    @Test("a state change made through the worker is published as a machine.event", arguments: WorkerMachineEventCase.all)
    func machineEvent(_ testCase: WorkerMachineEventCase) async throws {
        try await WorkerTestThread.run { try machineEventBody(testCase) }
    }

    private func machineEventBody(_ testCase: WorkerMachineEventCase) throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        for (op, machine, args) in testCase.setup {
            let r = try client.run(op, machine: machine, args: args)
            try #require(r.ok == true, "setup \(op): \(r)")
        }
        let mark = client.received.count
        let r = try client.run(testCase.op, machine: testCase.machine, args: testCase.args, via: .commands)
        #expect(r.ok == true, "\(r)")
        let event = try client.waitFor("a machine.event \(testCase.event) for \(testCase.subject.name)") {
            $0.type == "machine.event" && $0["machine"]?.stringValue == testCase.subject.name && $0["event"]?.stringValue == testCase.event
        }
        #expect(client.received.firstIndex { $0.seq == event.seq }! >= mark, "the event comes from this command")
        WorkerExpect.envelope(event, worker: worker, type: "machine.event", topic: "machine")
        #expect(event["uuid"]?.stringValue?.lowercased() == testCase.subject.uuid, "\(event)")
        #expect(event["detail"]?.stringValue == testCase.detail, "\(event)")
        if let state = testCase.state {
            #expect(event["state"]?.stringValue == state, "machine.event carries the state: \(event)")
        }
        // Every machine.event of the run, not just this one, carries all five fields (the state
        // may be left out only when the machine is gone).
        try client.barrier()
        for e in client.messages(where: { $0.type == "machine.event" }) {
            for key in ["machine", "uuid", "event", "detail", "state"] where !(key == "state" && e["event"] == "undefined") {
                #expect(e[key] != nil && e[key] != .null, "machine.event without \(key): \(e)")
            }
            if let state = e["state"]?.stringValue {
                #expect(Self.machineStates.contains(state), "\(e)")
            }
        }
        #expect(worker.stop() == 0)
    }

    @Test("heartbeats arrive at the interval with libvirt connected, in_flight, and growing counters", arguments: [200, 400])
    func heartbeats(intervalMs: Int) async throws {
        try await WorkerTestThread.run { try heartbeatsBody(intervalMs: intervalMs) }
    }

    private func heartbeatsBody(intervalMs: Int) throws {
        var options = WorkerLaunchOptions()
        options.heartbeatMs = intervalMs
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker, subscriptions: ["heartbeat.", "result.", "ack."])
        try client.sync()
        let wanted = 5
        let beats = try client.waitForCount(wanted, "heartbeats", timeout: .milliseconds(intervalMs * (wanted + 8))) { $0.type == "heartbeat" }
        for b in beats {
            WorkerExpect.envelope(b, worker: worker, type: "heartbeat", topic: "heartbeat")
            #expect(b["libvirt"] == "connected", "\(b)")
            #expect(b["interval_ms"]?.intValue == Int64(intervalMs), "\(b)")
            #expect((b["in_flight"]?.intValue ?? -1) >= 0, "\(b)")
            #expect(b["processed"]?.intValue != nil && b["failed"]?.intValue != nil, "\(b)")
            #expect((b["uptime_s"]?.doubleValue ?? -1) >= 0, "\(b)")
        }
        // Spacing by the worker's own timestamps.
        let times = beats.compactMap { WorkerExpect.date($0["ts"]?.stringValue) }
        let gaps = zip(times.dropFirst(), times).map { $0.timeIntervalSince($1) * 1000 }
        let mean = gaps.reduce(0, +) / Double(max(1, gaps.count))
        // The timer keeps its schedule: one late beat (a loaded host) is followed by a short gap, so
        // single gaps say little; on average the beats follow the interval.
        #expect(
            mean > Double(intervalMs) * 0.5 && mean < Double(intervalMs) * 2,
            "mean gap \(mean) ms for \(intervalMs) ms: \(gaps)")
        let uptimes = beats.compactMap { $0["uptime_s"]?.doubleValue }
        #expect(uptimes == uptimes.sorted() && Set(uptimes).count == uptimes.count, "uptime_s grows: \(uptimes)")

        // Counters: five commands, one of which fails.
        let last = beats.last!
        let processed0 = last["processed"]?.intValue ?? 0
        let failed0 = last["failed"]?.intValue ?? 0
        for (i, (op, machine)) in [("start", "web1"), ("status", "web1"), ("destroy", "web1"), ("list", nil), ("start", "web9")].enumerated() {
            _ = try client.execute(WorkerClient.command(op, id: "hb-\(i)", machine: machine), via: .commands)
        }
        let lastResultSeq = client.messages { $0.type == "result" }.compactMap(\.seq).max() ?? 0
        let after = try client.waitFor("a heartbeat after the commands", timeout: .milliseconds(intervalMs * 6)) {
            $0.type == "heartbeat" && ($0.seq ?? 0) > lastResultSeq
        }
        #expect((after["processed"]?.intValue ?? 0) >= processed0 + 5, "processed grows by the 5 commands: \(last) → \(after)")
        #expect((after["failed"]?.intValue ?? 0) >= failed0 + 1, "failed counts the failure: \(last) → \(after)")
        #expect(after["in_flight"] == 0, "nothing is running now: \(after)")
        #expect(worker.stop() == 0)
    }

    @Test("seq has no gaps for a subscriber to everything: 200 commands, one run, millisecond UTC timestamps")
    func sequenceWithoutGaps() async throws {
        try await WorkerTestThread.run { try sequenceWithoutGapsBody() }
    }

    private func sequenceWithoutGapsBody() throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        let syncIndex = try #require(client.received.lastIndex { $0.type == "result" && WorkerClient.isHarnessID($0.id) })

        let ops: [(String, String?)] = [("ping", nil), ("status", "web1"), ("start", "web1"), ("list", nil), ("destroy", "web1"), ("status", "web9")]
        for i in 0..<200 {
            let (op, machine) = ops[i % ops.count]
            try client.publish(WorkerClient.command(op, id: "seq-\(i)", machine: machine))
        }
        try client.waitForCount(200, "results of the 200 commands") { $0.type == "result" && ($0.id?.hasPrefix("seq-") ?? false) }
        try client.barrier()

        let window = Array(client.received[syncIndex...])
        let seqs = window.compactMap(\.seq)
        #expect(seqs.count == window.count, "every message has a seq")
        let gaps = zip(seqs.dropFirst(), seqs).filter { $0 != $1 + 1 }
        #expect(gaps.isEmpty, "consecutive seq numbers; breaks at \(gaps.prefix(10).map { "\($1)→\($0)" })")
        #expect(Set(window.compactMap(\.run)).count == 1, "one run")
        let envelopesFit = window.allSatisfy { $0.worker == worker.id && $0["v"] == 1 }
        #expect(envelopesFit, "v and worker on every message")
        let badTimestamps = window.filter { !WorkerExpect.isTimestamp($0["ts"]?.stringValue ?? "") }
        #expect(badTimestamps.isEmpty, "ts is ISO 8601 UTC with milliseconds: \(badTimestamps.prefix(3))")
        let dates = window.compactMap { WorkerExpect.date($0["ts"]?.stringValue) }
        let timeMovesOn = zip(dates.dropFirst(), dates).allSatisfy { $0 >= $1 }
        #expect(timeMovesOn, "ts never goes back")
        let topicPrefix: [String: String] = [
            "accepted": "ack", "result": "result", "E2LibvirtError": "error.libvirt", "request_error": "error.request",
            "machine.event": "machine", "heartbeat": "heartbeat", "worker.started": "worker", "worker.stopping": "worker",
            "restore.outcome": "restore", "restore.summary": "restore",
        ]
        for m in window {
            #expect(m.topic == "\(topicPrefix[m.type ?? ""] ?? "?").\(worker.id)", "topic fits type: \(m)")
        }
        let results = window.filter { $0.type == "result" && ($0.id?.hasPrefix("seq-") ?? false) }
        #expect(Set(results.compactMap(\.id)).count == 200, "one result per command")
        #expect(window.filter { $0.type == "accepted" && ($0.id?.hasPrefix("seq-") ?? false) }.count == 200, "one ack per command")
        #expect(worker.stop() == 0)
    }

    @Test("SIGTERM and SIGINT: worker.stopping is published, the state is saved, exit status 0", arguments: [SIGTERM, SIGINT])
    func gracefulStopWhenIdle(signal: Int32) async throws {
        try await WorkerTestThread.run { try gracefulStopWhenIdleBody(signal: signal) }
    }

    private func gracefulStopWhenIdleBody(signal: Int32) throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        _ = try client.run("start", machine: "web1")
        worker.signal(signal)
        let status = worker.waitForExit()
        #expect(status == 0, "\(worker.logTail())")
        #expect(worker.terminatedBySignal == false)
        let stopping = try client.waitFor("worker.stopping", timeout: .seconds(3)) { $0.type == "worker.stopping" }
        WorkerExpect.envelope(stopping, worker: worker, type: "worker.stopping", topic: "worker")
        #expect(stopping["reason"]?.stringValue?.isEmpty == false, "\(stopping)")
        #expect(worker.log.contains("worker stopped"), "\(worker.logTail())")
        #expect(!worker.log.contains("events still unsent"), "a quiet stop drops nothing: \(worker.logTail())")
        let table = try #require(try? Data(contentsOf: URL(fileURLWithPath: worker.stateFilePath)), "the state table is written")
        let json = try JSONDecoder().decode(JSONValue.self, from: table)
        let web1 = json["machines"]?[WorkerMachine.web1.uuid]
        #expect(web1?["desired"] == "running", "the state table keeps what the last command asked for: \(json)")
        #expect(web1?["name"] == "web1", "\(json)")
    }

    @Test("SIGTERM with commands in flight: every accepted command gets its result, later commands are not run, exit 0")
    func gracefulStopWithCommandsInFlight() async throws {
        try await WorkerTestThread.run { try gracefulStopWithCommandsInFlightBody() }
    }

    private func gracefulStopWithCommandsInFlightBody() throws {
        var options = WorkerLaunchOptions()
        options.shutdownGraceSeconds = 10
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()

        // A burst on a few machines (each machine's commands run one after another), then SIGTERM.
        let plan: [(String, String?)] = [
            ("start", "web1"), ("destroy", "web1"), ("suspend", "db1"), ("resume", "db1"), ("status", "cache1"),
            ("start", "web2"), ("shutdown", "web2"), ("list", nil), ("reboot", "cache1"), ("ping", nil),
        ]
        for i in 0..<300 {
            let (op, machine) = plan[i % plan.count]
            try client.publish(WorkerClient.command(op, id: "burst-\(i)", machine: machine))
            if i % 30 == 0 {
                try client.sendControl(WorkerClient.command("status", id: "burst-ctl-\(i)", machine: "web1"))
            }
        }
        // The signal goes out as soon as the worker has taken the first of them.
        _ = try client.waitFor("the first ack of the burst") { $0.type == "accepted" && ($0.id?.hasPrefix("burst-") ?? false) }
        worker.signal(SIGTERM)

        // Commands sent once the worker said it is stopping must not run.
        var lateSent = false
        let deadline = ContinuousClock.now + .seconds(20)
        while worker.isRunning && ContinuousClock.now < deadline {
            try client.pump(timeoutMs: 5)
            if !lateSent, client.messages(where: { $0.type == "worker.stopping" }).count == 1 {
                try client.publish(WorkerClient.command("start", id: "late-commands", machine: "cache1"))
                try client.sendControl(WorkerClient.command("start", id: "late-control", machine: "cache1"))
                lateSent = true
            }
        }
        let status = worker.waitForExit(timeout: .seconds(1))
        try client.collect(for: .milliseconds(300))
        #expect(status == 0, "exit status 0\n\(worker.logTail())")

        let stopping = client.messages { $0.type == "worker.stopping" }
        #expect(stopping.count == 1, "worker.stopping is published once: \(stopping)\n\(client.diagnostics(messages: 8))")
        if let s = stopping.first { WorkerExpect.envelope(s, worker: worker, type: "worker.stopping", topic: "worker") }

        let accepted = Set(client.messages { $0.type == "accepted" && !WorkerClient.isHarnessID($0.id) }.compactMap(\.id))
        let results = client.messages { $0.type == "result" && !WorkerClient.isHarnessID($0.id) }
        let answered = Set(results.compactMap(\.id))
        #expect(accepted.isSubset(of: answered), "accepted without a result: \(accepted.subtracting(answered).sorted())")
        #expect(results.count == answered.count, "one result per command")
        for r in results where r.ok == false {
            let type = r.error?["type"]?.stringValue
            #expect(type == "E2LibvirtError" || type == "cancelled", "a failure is libvirt's or a cancellation: \(r)")
        }
        let refusals = client.messages { $0.type == "request_error" }
        let allBusy = refusals.allSatisfy { $0.reason == "busy" }
        #expect(allBusy, "commands arriving while stopping are refused as busy: \(refusals)")
        // Commands that were neither accepted nor refused were never read: not run either.
        let late = client.messages { ($0.id ?? "").hasPrefix("late-") && $0.type != "request_error" }
        #expect(late.isEmpty, "nothing sent after worker.stopping runs: \(late)")
        if !lateSent {
            // worker.stopping goes out just before the sockets close; a worker that exits within
            // the client's next 5 ms poll leaves nobody to send late commands to.
            print("the worker exited before the client read worker.stopping; no late commands were sent")
        }
        for reply in client.allReplies where reply.id?.hasPrefix("late-") ?? false {
            #expect(reply.type == "request_error" && reply.reason == "busy", "\(reply)")
        }
        // Refusals may still follow worker.stopping (the batch being read when the signal came);
        // nothing is taken or run after it.
        if let lastStop = stopping.first?.seq {
            let after = client.messages { ($0.seq ?? 0) > lastStop && $0.type != "request_error" }
            #expect(after.isEmpty, "nothing is accepted or answered after worker.stopping: \(after)")
        }
    }

    @Test("SIGTERM with a long queue and no grace: queued commands are answered cancelled, and everything reaches the subscriber before the exit")
    func gracefulStopWithLongQueue() async throws {
        try await WorkerTestThread.run { try gracefulStopWithLongQueueBody() }
    }

    private func gracefulStopWithLongQueueBody() throws {
        var options = WorkerLaunchOptions()
        options.shutdownGraceSeconds = 0
        // What is under test is the flush at the exit: a subscriber slowed by a loaded machine must
        // not lose messages to the events socket's queue bound (6,000 messages come at once).
        options.extraArguments = ["--events-hwm", "100000"]
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()
        // Commands for one machine run one after another, so most of these wait in its queue.
        for i in 0..<3000 {
            try client.publish(WorkerClient.command("status", id: "queued-\(i)", machine: "web1"))
        }
        _ = try client.waitForCount(500, "acks of the queued commands") { $0.type == "accepted" && ($0.id?.hasPrefix("queued-") ?? false) }
        worker.signal(SIGTERM)
        let deadline = ContinuousClock.now + .seconds(20)
        while worker.isRunning && ContinuousClock.now < deadline {
            try client.pump(timeoutMs: 5)
        }
        let status = worker.waitForExit(timeout: .seconds(1))
        try client.collect(for: .milliseconds(500))
        #expect(status == 0)

        let accepted = Set(client.messages { $0.type == "accepted" && ($0.id?.hasPrefix("queued-") ?? false) }.compactMap(\.id))
        let results = client.messages { $0.type == "result" && ($0.id?.hasPrefix("queued-") ?? false) }
        let answered = Set(results.compactMap(\.id))
        let cancelled = results.filter { $0.error?["type"] == "cancelled" }
        let missing = accepted.subtracting(answered)
        #expect(missing.isEmpty, "\(missing.count) of \(accepted.count) accepted commands got no result (\(cancelled.count) cancelled); seq of the last message received: \(client.received.last?.seq ?? 0)")
        for r in cancelled.prefix(3) {
            #expect(r.ok == false && r.error?["retryable"] == true, "\(r)")
            #expect(r.error?["message"]?.stringValue?.isEmpty == false, "\(r)")
        }
        let stopping = client.messages { $0.type == "worker.stopping" }
        #expect(stopping.count == 1, "worker.stopping arrives; last message received: \(client.received.last.map(String.init(describing:)) ?? "-")")
        let seqs = client.received.compactMap(\.seq)
        let gaps = zip(seqs.dropFirst(), seqs).filter { $0 != $1 + 1 }
        #expect(gaps.isEmpty, "no message is lost at the exit: breaks at \(gaps.prefix(5).map { "\($1)→\($0)" })")
    }

    @Test("past --max-queue, commands are refused as busy with their id; every other command runs")
    func queueBound() async throws {
        try await WorkerTestThread.run { try queueBoundBody() }
    }

    private func queueBoundBody() throws {
        var options = WorkerLaunchOptions()
        options.extraArguments = ["--max-queue", "2"]
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()
        let count = 400
        for i in 0..<count {
            try client.publish(WorkerClient.command(i % 2 == 0 ? "start" : "destroy", id: "q-\(i)", machine: "web1"))
        }
        try client.waitForCount(count, "an answer to every command") {
            ($0.type == "result" || $0.type == "request_error") && ($0.id?.hasPrefix("q-") ?? false)
        }
        try client.barrier()
        let results = Set(client.messages { $0.type == "result" && ($0.id?.hasPrefix("q-") ?? false) }.compactMap(\.id))
        let acks = Set(client.messages { $0.type == "accepted" && ($0.id?.hasPrefix("q-") ?? false) }.compactMap(\.id))
        let busy = client.messages { $0.type == "request_error" && ($0.id?.hasPrefix("q-") ?? false) }
        let allBusy = busy.allSatisfy { $0.reason == "busy" }
        #expect(allBusy, "\(busy.prefix(3))")
        let refused = Set(busy.compactMap(\.id))
        #expect(refused.count == busy.count, "one refusal per command")
        #expect(results == acks, "every accepted command has its result and nothing else does")
        #expect(results.isDisjoint(with: refused), "a command is either run or refused: \(results.intersection(refused).sorted().prefix(5))")
        #expect(results.count + refused.count == count, "every command is answered")
        #expect(!refused.isEmpty, "with 2 commands allowed in flight, a burst of \(count) meets the bound (\(results.count) ran)")
        #expect(worker.stop() == 0)
    }
}
