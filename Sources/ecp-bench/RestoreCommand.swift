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

            On a real host (--uri qemu:///system --guests N) the bench defines N tiny guests of \
            its own instead (ecp-bench-<8 hex>-<n>: 32 MiB, 1 vCPU, no disk, no NIC, no OS; kvm when \
            /dev/kvm is there, else qemu), shut off, and a state table that wants them running, and \
            times the worker's restore with --restore-parallel (or the worker's default), powers \
            the guests off, and times it again one at a time (--restore-parallel 1), --rounds \
            times (3). It prints the medians of both and their ratio, parallel / one at a time; \
            --timeout-s bounds each run. The guests are destroyed and undefined at the end, also \
            on failure or interruption.

            Examples:
              ecp-bench restore
              ecp-bench restore --uri qemu:///system --guests 8
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

    @Option(help: "With --uri: rounds of the two restores (parallel, one at a time); the table gives medians, since QEMU's starts vary (default 3).")
    var rounds: Int?

    @OptionGroup(title: "Started worker") var spawn: SpawnOptions
    @OptionGroup(title: "Real host (instead of --machines on the test driver)") var host: HostOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if host.uri != nil && host.guests == nil { throw ValidationError("restore --uri needs --guests N: the guests the restore starts") }
        if let r = rounds {
            guard host.uri != nil else { throw ValidationError("--rounds is for a real host (--uri); the test driver's restore runs once") }
            guard (1...50).contains(r) else { throw ValidationError("--rounds must be between 1 and 50") }
        }
        guard machines >= 1, machines <= 1_000_000 else { throw ValidationError("--machines must be between 1 and 1000000") }
        if let p = restoreParallel, p < 1 || p > 256 { throw ValidationError("--restore-parallel must be between 1 and 256") }
        guard timeoutS > 0, stallS > 0 else { throw ValidationError("--timeout-s and --stall-s must be positive") }
    }

    func run() throws {
        try guarded {
            if let uri = host.uri, let guests = host.guests {
                let result = try measureHost(uri: uri, guests: guests)
                emit(result.table, json: result.json, asJSON: output.json)
                return result.json.complete ? 0 : 1
            }
            let result = try measure()
            emit(result.table, json: result.json, asJSON: output.json)
            return result.json.run.complete ? 0 : 1
        }
    }

    /// The figures of one restore run, as the test driver's report and each run on a real host
    /// give them: their fields sit at the top level of the JSON object around them.
    struct RestoreRun: Encodable {
        var restoreParallel: Int?
        var workerMs: Double?
        var wallMs: Double?
        var summarySource: String?
        var total: Int?
        var counts: [String: Int]
        var complete: Bool
        var stopReason: String?

        enum CodingKeys: String, CodingKey {
            case total, counts, complete
            case restoreParallel = "restore_parallel"
            case workerMs = "worker_ms"
            case wallMs = "wall_ms"
            case summarySource = "summary_source"
            case stopReason = "stop_reason"
        }
    }

    struct RestoreJSON: Encodable {
        var benchmark = "restore"
        var machines: Int
        var run: RestoreRun
        var startedMs: Double?
        var firstOutcomeMs: Double?
        var outcomesReceived: Int
        var outcomesExpected: Int
        var outcomesReported: Int?
        var machinesPerS: Double?

        enum CodingKeys: String, CodingKey {
            case benchmark, machines
            case startedMs = "started_ms"
            case firstOutcomeMs = "first_outcome_ms"
            case outcomesReceived = "outcomes_received"
            case outcomesExpected = "outcomes_expected"
            case outcomesReported = "outcomes_reported"
            case machinesPerS = "machines_per_s"
        }

        func encode(to encoder: any Encoder) throws {
            try run.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(benchmark, forKey: .benchmark)
            try c.encode(machines, forKey: .machines)
            try c.encodeIfPresent(startedMs, forKey: .startedMs)
            try c.encodeIfPresent(firstOutcomeMs, forKey: .firstOutcomeMs)
            try c.encode(outcomesReceived, forKey: .outcomesReceived)
            try c.encode(outcomesExpected, forKey: .outcomesExpected)
            try c.encodeIfPresent(outcomesReported, forKey: .outcomesReported)
            try c.encodeIfPresent(machinesPerS, forKey: .machinesPerS)
        }
    }

    private var workerID: String { "bench" }

    /// What one restore run found: its figures, and what only the test driver's report gives.
    struct RunResult {
        var run: RestoreRun
        var startedMs: Double?
        var firstOutcomeMs: Double?
        var received: Int
        var reportedOutcomes: Int?
    }

    private func measure() throws -> (table: Table, json: RestoreJSON) {
        let deadline = Clock.nanos() + Clock.ns(seconds: timeoutS)
        let fixture = RestoreFixture(count: machines)
        let directory = try Cleanup.makeDirectory("restore")
        let files = try fixture.write(into: directory, worker: workerID)
        let context = try Context()
        let r = try runOnce(
            context: context, directory: directory, uri: "test://\(files.node)", table: files.table, machines: machines,
            parallel: restoreParallel, deadline: deadline, label: "")
        let json = RestoreJSON(
            machines: machines, run: r.run, startedMs: r.startedMs, firstOutcomeMs: r.firstOutcomeMs,
            outcomesReceived: r.received, outcomesExpected: machines, outcomesReported: r.reportedOutcomes,
            machinesPerS: r.run.workerMs.flatMap { $0 > 0 ? (Double(machines) / $0 * 1000).rounded() : nil })

        var table = Table(
            "ecp-bench restore: \(machines) machines shut off, all desired running; restore-parallel "
                + (restoreParallel.map(String.init) ?? "4 (the worker's default)"))
        if let workerMs = r.run.workerMs {
            table.add("restore (worker)", Format.ms(workerMs) + (json.machinesPerS.map { "  \(Format.rate($0)) machines/s" } ?? ""))
        } else {
            table.add("restore (worker)", "no summary")
        }
        if let wall = r.run.wallMs {
            table.add("restore (wall)", Format.ms(wall) + "  spawn → restore.summary received")
        } else if r.run.summarySource == "report" {
            table.add("restore (wall)", "not known: the summary went out before the subscription took hold (read from report)")
        }
        table.add("worker.started", json.startedMs.map { Format.ms($0) + " after spawn" } ?? "not seen: published before the subscription took hold")
        table.add("first outcome", json.firstOutcomeMs.map { Format.ms($0) + " after spawn" } ?? "not seen")
        table.add(
            "outcomes", "\(r.received) / \(machines) received on events"
                + (r.reportedOutcomes.map { ", \($0) in the worker's report" } ?? ""))
        table.add("actions", r.run.counts.sorted { $0.key < $1.key }.filter { $0.value > 0 }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        if let reason = r.run.stopReason { table.add("stopped", reason) }
        return (table, json)
    }

    struct HostRunJSON: Encodable {
        var round: Int
        var mode: String
        var run: RestoreRun

        enum CodingKeys: String, CodingKey {
            case round, mode
        }

        func encode(to encoder: any Encoder) throws {
            try run.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(round, forKey: .round)
            try c.encode(mode, forKey: .mode)
        }
    }

    struct HostModeJSON: Encodable {
        var restoreParallel: Int?
        var workerMsMedian: Double?
        var wallMsMedian: Double?
        var workerMs: [Double]
        var wallMs: [Double]

        enum CodingKeys: String, CodingKey {
            case restoreParallel = "restore_parallel"
            case workerMsMedian = "worker_ms_median"
            case wallMsMedian = "wall_ms_median"
            case workerMs = "worker_ms"
            case wallMs = "wall_ms"
        }

        init(_ runs: [HostRunJSON], parallel: Int?) {
            restoreParallel = parallel
            workerMs = runs.compactMap(\.run.workerMs)
            wallMs = runs.compactMap(\.run.wallMs)
            workerMsMedian = Format.median(workerMs).map(Format.tenth)
            wallMsMedian = Format.median(wallMs).map(Format.tenth)
        }
    }

    struct HostJSON: Encodable {
        var benchmark = "restore"
        var host: HostInfo
        var guests: Int
        var rounds: Int
        var parallel: HostModeJSON
        var sequential: HostModeJSON
        /// Median parallel / median one at a time.
        var ratioWorker: Double?
        var ratioWall: Double?
        var runs: [HostRunJSON]
        var complete: Bool

        enum CodingKeys: String, CodingKey {
            case benchmark, host, guests, rounds, parallel, sequential, runs, complete
            case ratioWorker = "ratio_worker"
            case ratioWall = "ratio_wall"
        }
    }

    /// The restore on a real host: `guests` shut-off guests of the bench's own, a state table
    /// that wants them running, a worker on `uri`; timed with the worker's --restore-parallel and
    /// again one at a time, for `--rounds` rounds. The guests are powered off between runs and
    /// removed at the end.
    private func measureHost(uri: String, guests count: Int) throws -> (table: Table, json: HostJSON) {
        let host = try HostGuests(uri: uri)
        try host.create(count: count, start: false)
        let directory = try Cleanup.makeDirectory("restore")
        let tablePath = directory.appendingPathComponent("state.json").path
        var fixture = RestoreFixture(count: 0)
        fixture.machines = host.guests.map { RestoreFixture.Machine(name: $0.name, uuid: $0.uuid) }
        let context = try Context()
        let rounds = self.rounds ?? 3
        var runs: [HostRunJSON] = []

        for round in 1...rounds {
            // Alternate which goes first, so that a host getting busier or quieter weighs on both.
            var modes: [(mode: String, parallel: Int?)] = [("parallel", restoreParallel), ("sequential", 1)]
            if round % 2 == 0 { modes.reverse() }
            for (mode, parallel) in modes {
                try host.destroyAll()
                // Written afresh each time: the worker saves its own table, with every guest of
                // the host in it, when it stops.
                guard FileManager.default.createFile(
                    atPath: tablePath, contents: try fixture.stateTable(worker: workerID), attributes: [.posixPermissions: 0o600])
                else { throw BenchFailure(2, "cannot write the state table \(tablePath)") }
                let r = try runOnce(
                    context: context, directory: directory, uri: uri, table: tablePath, machines: count, parallel: parallel,
                    deadline: Clock.nanos() + Clock.ns(seconds: timeoutS), label: "-\(round)-\(mode)")
                runs.append(HostRunJSON(round: round, mode: mode, run: r.run))
            }
        }
        try host.destroyAll()

        let parallel = HostModeJSON(runs.filter { $0.mode == "parallel" }, parallel: restoreParallel)
        let sequential = HostModeJSON(runs.filter { $0.mode == "sequential" }, parallel: 1)
        func ratio(_ a: Double?, _ b: Double?) -> Double? {
            guard let a, let b, b > 0 else { return nil }
            return (a / b * 1000).rounded() / 1000
        }
        let json = HostJSON(
            host: host.info(), guests: count, rounds: rounds, parallel: parallel, sequential: sequential,
            ratioWorker: ratio(parallel.workerMsMedian, sequential.workerMsMedian),
            ratioWall: ratio(parallel.wallMsMedian, sequential.wallMsMedian), runs: runs,
            complete: runs.allSatisfy(\.run.complete))

        let parallelName = "parallel " + (restoreParallel.map(String.init) ?? "4")
        var table = Table(
            "ecp-bench restore: \(count) guests shut off on \(uri), all desired running; medians of \(rounds) round\(rounds == 1 ? "" : "s"), "
                + "restore-parallel " + (restoreParallel.map(String.init) ?? "4 (the worker's default)") + " and 1")
        table.add("host", json.host.summary)
        func values(_ v: [Double]) -> String { v.count > 1 ? "  (" + v.map { String(format: "%.1f", $0) }.joined(separator: ", ") + ")" : "" }
        for (name, m) in [(parallelName, parallel), ("one at a time", sequential)] {
            table.add("\(name) (worker)", Format.ms(m.workerMsMedian) + values(m.workerMs))
            table.add("\(name) (wall)", (m.wallMsMedian.map { Format.ms($0) } ?? "not known (summaries read from report)") + values(m.wallMs))
        }
        table.add("ratio (worker)", json.ratioWorker.map { String(format: "%.2f", $0) + "  parallel / one at a time" } ?? "not known")
        table.add("ratio (wall)", json.ratioWall.map { String(format: "%.2f", $0) + "  parallel / one at a time" } ?? "not known")
        let failed = runs.filter { !$0.run.complete }
        table.add("runs", "\(runs.count - failed.count) of \(runs.count) started all \(count) guests")
        for run in failed.prefix(4) {
            table.add("  round \(run.round) \(run.mode)", (run.run.stopReason ?? "incomplete") + ": "
                + run.run.counts.sorted { $0.key < $1.key }.filter { $0.value > 0 }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        return (table, json)
    }

    /// Starts a worker on `uri` with the state table `table`, and waits for its restore of
    /// `machines` machines. A worker that could not bind is started again on other ports.
    private func runOnce(
        context: Context, directory: URL, uri: String, table: String, machines: Int, parallel restoreParallel: Int?,
        deadline: UInt64, label: String
    ) throws -> RunResult {
        for attempt in 1...3 {
            let ports = try SpawnedWorker.freePorts(2)
            let events = "tcp://127.0.0.1:\(ports[0])"
            let control = "tcp://127.0.0.1:\(ports[1])"
            let subscriber = try EarlySubscriber(
                context: context, address: events, topics: [Topic.restore(workerID), Topic.worker(workerID)])
            defer { subscriber.close() }

            var arguments = [
                "--worker-id", workerID,
                "--libvirt-uri", uri,
                "--state-file", table,
                "--commands", "none",
                "--events=@\(events)",
                "--control=@\(control)",
                "--shutdown-grace-s", "5",
            ]
            if let p = restoreParallel { arguments += ["--restore-parallel", String(p)] }
            arguments += spawn.workerArg
            let worker = try SpawnedWorker.launch(
                binary: spawn.binary, arguments: arguments,
                logPath: directory.appendingPathComponent("worker\(label)-\(attempt).log").path)

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
            let complete = summary != nil && summary!.total == machines && (summary!.counts["started"] ?? 0) == machines
            return RunResult(
                run: RestoreRun(
                    restoreParallel: restoreParallel, workerMs: summary.map { Format.tenth($0.durationMs) },
                    wallMs: summarySource == "events" ? ms(summaryAt) : nil, summarySource: summarySource,
                    total: summary?.total, counts: summary?.counts ?? receivedCounts, complete: complete,
                    stopReason: stopReason ?? (complete ? nil : "the restore did not start every machine (see counts)")),
                startedMs: ms(startedAt), firstOutcomeMs: ms(firstOutcomeAt), received: received,
                reportedOutcomes: record?.outcomes)
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
