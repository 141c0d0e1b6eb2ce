import ArgumentParser
import ECPProtocol
import Foundation
import WorkerLauncher
import ZeroMQ

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Starts a worker whose state table wants N shut-off machines running, and times the restore.",
        discussion: """
            The bench writes, in a temporary directory, a libvirt test-driver node file with N \
            machines, all shut off, and a state table that wants every one running, then starts the \
            worker on it (--libvirt-uri test://<node file> --state-file <table>, free ports) and \
            measures from process start to the restore.summary on the events socket.

            The bench's SUB socket connects to the events endpoint before the worker binds it, and \
            ZeroMQ connects it as soon as it can, but the messages published before the subscription \
            reaches the worker are lost (PUB/SUB drops for absent subscribers): usually \
            worker.started and perhaps the first outcomes. So the table gives the worker's own \
            duration_ms from the summary next to the wall time, counts the outcomes received, and \
            asks the worker for its record of the restore (report, on the control socket), which \
            holds every outcome. If the summary itself was missed, it comes from that record and the \
            wall time is not given.

            Examples:
              ecp-bench restore
              ecp-bench restore --machines 5000 --restore-parallel 16
              ecp-bench restore --machines 50 --json
            """)

    @Option(help: "Machines in the node file and the state table.")
    var machines = 1000

    @Option(help: "The worker's --restore-parallel: machines restored at once (default: the worker's own, 4).")
    var restoreParallel: Int?

    @Option(help: "Stop after this many seconds in all, and report what came.")
    var timeoutS: Double = 120

    @Option(help: "Stop when nothing has come for this many seconds.")
    var stallS: Double = 10

    @OptionGroup(title: "Started worker") var spawn: SpawnOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard machines >= 1, machines <= 1_000_000 else { throw ValidationError("--machines must be between 1 and 1000000") }
        if let p = restoreParallel, p < 1 || p > 256 { throw ValidationError("--restore-parallel must be between 1 and 256") }
        guard timeoutS > 0, stallS > 0 else { throw ValidationError("--timeout-s and --stall-s must be positive") }
    }

    func run() throws {
        try guarded {
            let result = try measure()
            emit(result.table, json: result.json, asJSON: output.json)
            return result.json.complete ? 0 : 1
        }
    }

    struct RestoreJSON: Encodable {
        var benchmark = "restore"
        var machines: Int
        var restoreParallel: Int?
        var workerMs: Double?
        var wallMs: Double?
        var summarySource: String?
        var startedMs: Double?
        var firstOutcomeMs: Double?
        var outcomesReceived: Int
        var outcomesExpected: Int
        var outcomesReported: Int?
        var total: Int?
        var counts: [String: Int]
        var machinesPerS: Double?
        var complete: Bool
        var stopReason: String?

        enum CodingKeys: String, CodingKey {
            case benchmark, machines, total, counts, complete
            case restoreParallel = "restore_parallel"
            case workerMs = "worker_ms"
            case wallMs = "wall_ms"
            case summarySource = "summary_source"
            case startedMs = "started_ms"
            case firstOutcomeMs = "first_outcome_ms"
            case outcomesReceived = "outcomes_received"
            case outcomesExpected = "outcomes_expected"
            case outcomesReported = "outcomes_reported"
            case machinesPerS = "machines_per_s"
            case stopReason = "stop_reason"
        }
    }

    private var workerID: String { "bench" }

    private func measure() throws -> (table: Table, json: RestoreJSON) {
        let deadline = Clock.nanos() + Clock.ns(seconds: timeoutS)
        let fixture = RestoreFixture(count: machines)
        let directory = try Cleanup.makeDirectory("restore")
        let files = try fixture.write(into: directory, worker: workerID)
        let context = try Context()

        for attempt in 1...3 {
            let ports = try SpawnedWorker.freePorts(2)
            let events = "tcp://127.0.0.1:\(ports[0])"
            let control = "tcp://127.0.0.1:\(ports[1])"
            let subscriber = try EarlySubscriber(
                context: context, address: events, topics: [Topic.restore(workerID), Topic.worker(workerID)])
            defer { subscriber.close() }

            var arguments = [
                "--worker-id", workerID,
                "--libvirt-uri", "test://\(files.node)",
                "--state-file", files.table,
                "--commands", "none",
                "--events=@\(events)",
                "--control=@\(control)",
                "--shutdown-grace-s", "5",
            ]
            if let p = restoreParallel { arguments += ["--restore-parallel", String(p)] }
            arguments += spawn.workerArg
            let worker = try SpawnedWorker.launch(
                binary: spawn.binary, arguments: arguments,
                logPath: directory.appendingPathComponent("worker-\(attempt).log").path)

            var startedAt: UInt64?
            var firstOutcomeAt: UInt64?
            var summaryAt: UInt64?
            var summary: RestoreSummaryMessage?
            var summarySource: String?
            var received = 0
            var receivedCounts: [String: Int] = [:]
            var lastNews = worker.spawnedAt
            var lastReport: UInt64 = 0
            var stopReason: String?
            let restoreTopic = Data(Topic.restore(workerID).utf8)

            while summary == nil {
                let now = Clock.nanos()
                if now >= deadline { stopReason = "the time limit (--timeout-s) ran out"; break }
                if now - lastNews >= Clock.ns(seconds: stallS) { stopReason = "nothing came for \(Int(stallS)) s"; break }
                if !worker.isRunning {
                    if worker.failedToOpenSockets && received == 0 && attempt < 3 { break }
                    throw BenchFailure(2, "the worker exited with status \(worker.exitStatus ?? -1) during the restore\n\(worker.benchLogTail)")
                }
                for event in try subscriber.receive(timeoutMs: 50) {
                    lastNews = event.at
                    if event.topic == restoreTopic {
                        if event.head?.type == "restore.outcome" {
                            received += 1
                            if firstOutcomeAt == nil { firstOutcomeAt = event.at }
                            if let outcome = try? JSONDecoder().decode(RestoreOutcomeMessage.self, from: event.body) {
                                receivedCounts[outcome.action, default: 0] += 1
                            }
                        } else if event.head?.type == "restore.summary",
                            let s = try? JSONDecoder().decode(RestoreSummaryMessage.self, from: event.body)
                        {
                            summary = s
                            summaryAt = event.at
                            summarySource = "events"
                        }
                    } else if startedAt == nil, event.head?.type == "worker.started" {
                        startedAt = event.at
                    }
                }
                // Quiet for a second: perhaps the summary went out before the subscription took
                // hold. The worker's record of its last restore says.
                let quiet = Clock.nanos()
                if summary == nil && quiet - lastNews > 1_000_000_000 && quiet - lastReport > 1_000_000_000 {
                    lastReport = quiet
                    if let record = try report(context: context, control: control), let s = record.summary {
                        summary = s
                        summarySource = "report"
                        lastNews = Clock.nanos()
                    }
                }
            }
            if summary == nil && stopReason == nil { continue }  // a port was taken: again, on others

            // The worker's own record: every outcome, also those the subscription missed.
            let record = try report(context: context, control: control)
            worker.stop(graceSeconds: 15)

            let spawnedAt = worker.spawnedAt
            let ms = { (t: UInt64?) in t.map { Format.tenth(Clock.ms(from: spawnedAt, to: $0)) } }
            let workerMs = summary.map { Format.tenth($0.durationMs) }
            let counts = summary?.counts ?? receivedCounts
            let complete = summary != nil && summary!.total == machines && (summary!.counts["started"] ?? 0) == machines
            let json = RestoreJSON(
                machines: machines, restoreParallel: restoreParallel, workerMs: workerMs,
                wallMs: summarySource == "events" ? ms(summaryAt) : nil, summarySource: summarySource,
                startedMs: ms(startedAt), firstOutcomeMs: ms(firstOutcomeAt), outcomesReceived: received,
                outcomesExpected: machines, outcomesReported: record?.outcomes, total: summary?.total, counts: counts,
                machinesPerS: workerMs.flatMap { $0 > 0 ? (Double(machines) / $0 * 1000).rounded() : nil },
                complete: complete,
                stopReason: stopReason ?? (complete ? nil : "the restore did not start every machine (see counts)"))

            var table = Table(
                "ecp-bench restore: \(machines) machines shut off, all desired running; restore-parallel "
                    + (restoreParallel.map(String.init) ?? "4 (the worker's default)"))
            if let workerMs {
                table.add("restore (worker)", Format.ms(workerMs) + (json.machinesPerS.map { "  \(Format.rate($0)) machines/s" } ?? ""))
            } else {
                table.add("restore (worker)", "no summary")
            }
            if let wall = json.wallMs {
                table.add("restore (wall)", Format.ms(wall) + "  spawn → restore.summary received")
            } else if summarySource == "report" {
                table.add("restore (wall)", "not known: the summary went out before the subscription took hold (read from report)")
            }
            table.add("worker.started", json.startedMs.map { Format.ms($0) + " after spawn" } ?? "not seen: published before the subscription took hold")
            table.add("first outcome", json.firstOutcomeMs.map { Format.ms($0) + " after spawn" } ?? "not seen")
            table.add(
                "outcomes", "\(received) / \(machines) received on events"
                    + ((record?.outcomes).map { ", \($0) in the worker's report" } ?? ""))
            table.add("actions", counts.sorted { $0.key < $1.key }.filter { $0.value > 0 }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            if let reason = json.stopReason { table.add("stopped", reason) }
            return (table, json)
        }
        throw BenchFailure(2, "the worker could not open its sockets three times")
    }

    /// The worker's record of its last restore: the summary (nil while none has finished) and the
    /// number of outcomes.
    private func report(context: Context, control: String) throws -> (summary: RestoreSummaryMessage?, outcomes: Int)? {
        let id = "bench-report-\(UUID().uuidString.prefix(8).lowercased())"
        let payload = Data(#"{"v":1,"id":"\#(id)","op":"report"}"#.utf8)
        guard let body = try ControlRequest.send(context: context, address: control, payload: payload, id: id, timeoutMs: 2000),
            let result = try? JSONDecoder().decode(ResultMessage.self, from: body), result.ok, let data = result.data
        else { return nil }
        var summary: RestoreSummaryMessage?
        if let restore = data["restore"], restore != .null, let encoded = try? JSONEncoder().encode(restore) {
            summary = try? JSONDecoder().decode(RestoreSummaryMessage.self, from: encoded)
        }
        return (summary, data["outcomes"]?.arrayValue?.count ?? 0)
    }
}
