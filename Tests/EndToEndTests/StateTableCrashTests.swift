import ECPProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One command of the crash test's stream, sent and not yet answered.
private struct StateTableCrashPending {
    var id: String
    var op: String
    var machine: Int
    /// The desired state a successful result implies.
    var desired: String
    var channel: CommandChannel
    var sentAt: ContinuousClock.Instant
    var acked = false
}

/// What the crash test saw over all its rounds.
private struct StateTableCrashFigures: CustomStringConvertible {
    var kills = 0
    var commandsSent = 0
    var okResults = 0
    var failedResults = 0
    /// Machine rows compared with the last ok result seen for them in a round.
    var lastOkChecks = 0
    /// Rounds whose table held, for some machine, the state of a command whose ack was seen and
    /// whose result was not (allowed: the kill fell between the commit and the publication).
    var acceptedButUnanswered = 0
    /// Rows holding the state of a command neither whose ack nor whose result was seen.
    var appliedWithoutSeenAck = 0
    var violations = 0
    var maxTemporaryFiles = 0
    var roundsWithTemporaryFile = 0
    var temporaryFileNames: Set<String> = []
    /// The first round that ended with more than one temporary file.
    var firstRoundWithTemporaryFiles: Int?

    var description: String {
        "kills \(kills), commands \(commandsSent), ok results \(okResults), failed results \(failedResults), "
            + "last-ok checks \(lastOkChecks), table held an accepted-but-unanswered command's state \(acceptedButUnanswered), "
            + "applied without a seen ack \(appliedWithoutSeenAck), violations \(violations), "
            + "rounds ending with a temporary file \(roundsWithTemporaryFile), most temporary files at once \(maxTemporaryFiles), "
            + "distinct temporary files \(temporaryFileNames.count)"
    }
}

@Suite("State table: crash safety")
struct StateTableCrashTests {
    /// The desired state a successful op implies.
    static func desired(after op: String) -> String {
        switch op {
        case "start", "resume": return "running"
        case "suspend": return "paused"
        default: return "shutoff"
        }
    }

    /// An op for a machine last seen in `state` (nil: not known), mostly one that changes it.
    static func nextOp(for state: String?, using rng: inout StateTableRandom) -> String {
        let all = ["start", "destroy", "suspend", "resume"]
        if Int.random(in: 0..<5, using: &rng) == 0 { return all.randomElement(using: &rng)! }
        switch state {
        case "shutoff", "crashed": return "start"
        case "running": return Bool.random(using: &rng) ? "suspend" : "destroy"
        case "paused": return Bool.random(using: &rng) ? "resume" : "destroy"
        default: return all.randomElement(using: &rng)!
        }
    }

    @Test("kill -9 while the worker commits: the table always parses and holds every change whose result was published")
    func killWhileCommitting() throws {
        let environment = ProcessInfo.processInfo.environment
        let seed = environment["ECP_STATE_TABLE_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64(UInt32.max))
        let rounds = environment["ECP_STATE_TABLE_KILLS"].flatMap { Int($0) } ?? 110
        print("state table crash test: seed \(seed) (ECP_STATE_TABLE_SEED=\(seed) repeats it), \(rounds) kills, restore at startup on")
        var rng = StateTableRandom(seed: seed)

        let dir = try StateTableDirectory()
        let machines = StateTableMachines.shutOff(6, prefix: "crash-")
        let options = try stateTableLaunchOptions(dir, machines: machines, sharedNodeFile: true)
        /// What the table must say per machine at the start of a round (nil: no row yet).
        var expected: [String?] = Array(repeating: nil, count: machines.count)
        var figures = StateTableCrashFigures()
        let began = ContinuousClock.now

        for round in 1...rounds {
            let worker = try WorkerProcess.start(options)
            let client = try WorkerClient(worker, subscriptions: ["ack.", "result."])
            try client.sync()

            var lastOk: [String?] = Array(repeating: nil, count: machines.count)
            var lastState: [String?] = expected
            var pending: [Int: StateTableCrashPending] = [:]
            var byID: [String: Int] = [:]
            var resolved: Set<String> = []
            var scanned = client.received.count
            var sent = 0

            func resolve(_ message: WorkerMessage) {
                guard let id = message.id, let m = byID[id], !resolved.contains(id), let command = pending[m], command.id == id else { return }
                resolved.insert(id)
                pending[m] = nil
                if message.ok == true {
                    // A start that finds the machine up and paused leaves it paused: that is the
                    // intent the worker records.
                    let kept = command.op == "start" && message.changed == false && message.state == "paused"
                    lastOk[m] = kept ? "paused" : command.desired
                    figures.okResults += 1
                } else {
                    figures.failedResults += 1
                }
                lastState[m] = message.state ?? lastState[m]
            }
            func take() throws {
                while scanned < client.received.count {
                    let message = client.received[scanned]
                    scanned += 1
                    if message.type == "accepted", let id = message.id, let m = byID[id], pending[m]?.id == id {
                        pending[m]?.acked = true
                    } else if message.type == "result" {
                        resolve(message)
                    }
                }
                while let reply = try client.awaitReply(timeout: .zero) { resolve(reply) }
            }

            // A stream of state changes on every machine (one command per machine in flight, so
            // the machines' commits overlap and are grouped), killed after a random delay.
            let delayMs = Int.random(in: 0...200, using: &rng)
            let killAt = ContinuousClock.now + .milliseconds(delayMs)
            while ContinuousClock.now < killAt {
                for m in machines.indices where pending[m] == nil {
                    let op = Self.nextOp(for: lastState[m], using: &rng)
                    sent += 1
                    let id = "r\(round)-\(sent)"
                    let command = WorkerClient.command(op, id: id, machine: machines[m].name)
                    let channel: CommandChannel = Bool.random(using: &rng) ? .control : .commands
                    try client.send(command, via: channel)
                    pending[m] = StateTableCrashPending(
                        id: id, op: op, machine: m, desired: Self.desired(after: op), channel: channel, sentAt: .now)
                    byID[id] = m
                    figures.commandsSent += 1
                }
                try client.pump(timeoutMs: max(0, min(5, WorkerClient.milliseconds(killAt - .now))))
                try take()
            }
            let killedAt = ContinuousClock.now
            worker.signal(SIGKILL)
            figures.kills += 1
            #expect(worker.waitForExit(timeout: .seconds(10)) != nil, "round \(round): the worker exits after SIGKILL")
            #expect(worker.terminatedBySignal, "round \(round): SIGKILL ended the worker")
            // What the worker sent before it died may still be on its way: take it too (a result seen
            // later only makes the check stricter).
            while true {
                let before = client.received.count + client.allReplies.count
                try client.pump(timeoutMs: 20)
                try take()
                if client.received.count + client.allReplies.count == before { break }
            }

            // The table: always a whole version 1 table keyed by UUID.
            let context = "round \(round) (seed \(seed), kill after \(delayMs) ms)"
            var table: StateTableFile?
            if FileManager.default.fileExists(atPath: dir.stateFile) {
                do {
                    table = try StateTableFile.read(dir.stateFile)
                } catch {
                    figures.violations += 1
                    Issue.record("\(context): \(error)")
                }
                if let table, !table.problems.isEmpty {
                    figures.violations += 1
                    Issue.record("\(context): the table is not a version 1 table keyed by UUID: \(table.problems)\n\(table.json)")
                }
            }
            if let table {
                let unknown = Set(table.machines.keys).subtracting(machines.map { $0.uuid.lowercased() })
                if !unknown.isEmpty {
                    figures.violations += 1
                    Issue.record("\(context): rows for machines that do not exist: \(unknown)")
                }
            }

            // Every machine: the desired state of the last ok result seen, or of a command accepted
            // whose result was not seen.
            for m in machines.indices {
                let actual = table?.desired(machines[m].uuid)
                let mustHold = lastOk[m] ?? expected[m]
                if lastOk[m] != nil { figures.lastOkChecks += 1 }
                if actual == mustHold { continue }
                if let p = pending[m], p.acked, actual == p.desired {
                    figures.acceptedButUnanswered += 1
                    continue
                }
                if let p = pending[m], !p.acked, actual == p.desired {
                    figures.appliedWithoutSeenAck += 1
                    let ran = worker.log.contains("\"command.id\":\"\(p.id)\"")
                    print(
                        """
                        \(context): \(machines[m].name) holds \(p.desired) from \(p.id) (\(p.op) via \(p.channel.rawValue), \
                        sent \(killedAt - p.sentAt) before the kill), whose ack and result were lost with the process \
                        (the worker's log \(ran ? "shows" : "does not show") it running)
                        """)
                    continue
                }
                figures.violations += 1
                Issue.record(
                    """
                    \(context): \(machines[m].name) should be \(mustHold ?? "absent") \
                    (last ok result: \(lastOk[m] ?? "none this round"), before the round: \(expected[m] ?? "absent")), \
                    the table says \(actual ?? "absent"); unanswered command: \(pending[m].map { "\($0.id) \($0.op) acked \($0.acked)" } ?? "none")
                    """)
            }
            expected = machines.map { table?.desired($0.uuid) }

            // Left-overs: at most one temporary file, never a table moved aside as corrupt.
            let temporary = try dir.temporaryFiles()
            figures.maxTemporaryFiles = max(figures.maxTemporaryFiles, temporary.count)
            if !temporary.isEmpty { figures.roundsWithTemporaryFile += 1 }
            figures.temporaryFileNames.formUnion(temporary)
            if temporary.count > 1 && figures.firstRoundWithTemporaryFiles == nil {
                figures.firstRoundWithTemporaryFiles = round
                print("\(context): \(temporary.count) temporary files: \(temporary)")
            }
            let entries = try dir.entries()
            #expect(try dir.corruptFiles().isEmpty, "\(context): a table was found corrupt: \(entries)")
        }

        let elapsed = ContinuousClock.now - began
        print("state table crash test: seed \(seed), \(elapsed): \(figures)")
        print("state table crash test: files left: \(try dir.entries())")
        #expect(figures.kills >= 100)
        #expect(figures.violations == 0, "seed \(seed): \(figures)")
        #expect(figures.okResults >= 200, "the stream committed enough changes to test something: \(figures)")
        // A kill during a write may leave one temporary file; the next write must replace or remove it.
        #expect(
            figures.maxTemporaryFiles <= 1,
            """
            temporary files accumulate: \(figures.maxTemporaryFiles) at once, the first time after round \
            \(figures.firstRoundWithTemporaryFiles.map(String.init) ?? "-"); left: \(figures.temporaryFileNames.sorted())
            """)
    }
}
