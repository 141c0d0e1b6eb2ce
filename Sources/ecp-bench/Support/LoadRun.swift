import ECPProtocol
import Foundation
import WorkerLauncher
import ZeroMQ

/// The memory figures of a load run, in KiB.
struct RunMemory: Encodable {
    /// With a warm-up: before it (after the same rest).
    var idle: Int?
    /// Before the first command (after `settle_before_ms` of rest for a started worker).
    var before: Int
    /// Right after the last result.
    var after: Int
    /// After `settle_after_ms` more of rest, when asked for.
    var settled: Int?
    /// The largest resident size sampled during the run.
    var sampledPeak: Int
    /// The kernel's high-water mark (VmHWM) at the end: the largest resident size ever.
    var highWater: Int
    var growth: Int { after - before }

    enum CodingKeys: String, CodingKey {
        case idle, before, after, settled, growth
        case sampledPeak = "sampled_peak"
        case highWater = "high_water"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(idle, forKey: .idle)
        try c.encode(before, forKey: .before)
        try c.encode(after, forKey: .after)
        try c.encodeIfPresent(settled, forKey: .settled)
        try c.encode(growth, forKey: .growth)
        try c.encode(sampledPeak, forKey: .sampledPeak)
        try c.encode(highWater, forKey: .highWater)
    }
}

/// Everything a throughput, latency or memory run found.
struct LoadReport {
    var workerID: String
    var workerPID: Int32?
    var spawned: Bool
    var plan: LoadPlan
    var outcome: LoadOutcome
    var handshakeMs: Double
    var memory: RunMemory?
    /// Machines whose starting state could not be put back.
    var notRestored: [String] = []
    /// A real libvirt host the started worker ran on (nil: the test driver).
    var host: HostInfo?

    /// 0: complete and every command succeeded; 3: complete with failures; 1: incomplete.
    var exitStatus: Int32 {
        if !outcome.complete { return 1 }
        return outcome.failed == 0 ? 0 : 3
    }

    /// The rows shared by the load subcommands.
    func rows(into table: inout Table) {
        let o = outcome
        table.add("commands", "\(o.answered) answered of \(plan.count)" + (o.sent < plan.count ? " (\(o.sent) sent)" : ""))
        table.add("ok", "\(o.ok)")
        table.add("failed", "\(o.failed)")
        for (kind, f) in o.failures.sorted(by: { $0.value.count > $1.value.count }).prefix(5) {
            table.add("  \(kind)", "\(f.count) × \(f.example)")
        }
        table.add("ops", Op.allCases.compactMap { op in
            guard let c = o.perOp[op] else { return nil }
            return "\(op.rawValue) \(c.sent)" + (c.unchanged > 0 ? " (\(c.unchanged) unchanged)" : "")
        }.joined(separator: ", "))
        table.add("elapsed", Format.seconds(o.elapsedSeconds))
        table.add("throughput", "\(Format.rate(o.commandsPerSecond)) commands/s")
        LatencySummary(o.latency).rows(into: &table)
        if let stop = o.stopReason { table.add("stopped", stop) }
        if !notRestored.isEmpty { table.add("not put back", notRestored.joined(separator: ", ")) }
    }

    /// The JSON fields shared by the load subcommands.
    var json: LoadJSON {
        var ops: [String: OpCounts] = [:]
        for (op, c) in outcome.perOp { ops[op.rawValue] = c }
        return LoadJSON(
            workerID: workerID, workerPID: workerPID, spawned: spawned, count: plan.count, window: plan.window,
            mix: plan.mix.dictionary, machines: plan.machines, sent: outcome.sent, answered: outcome.answered,
            ok: outcome.ok, failed: outcome.failed, complete: outcome.complete, stopReason: outcome.stopReason,
            elapsedS: (outcome.elapsedSeconds * 1000).rounded() / 1000,
            commandsPerS: outcome.commandsPerSecond.rounded(), latencyUs: LatencySummary(outcome.latency),
            ops: ops, failures: outcome.failures, handshakeMs: Format.tenth(handshakeMs), rssKiB: memory, host: host)
    }
}

struct LoadJSON: Encodable {
    var benchmark = ""
    var workerID: String
    var workerPID: Int32?
    var spawned: Bool
    var count: Int
    var window: Int
    var mix: [String: Int]
    var machines: [String]
    var sent: Int
    var answered: Int
    var ok: Int
    var failed: Int
    var complete: Bool
    var stopReason: String?
    var elapsedS: Double
    var commandsPerS: Double
    var latencyUs: LatencySummary
    var ops: [String: OpCounts]
    var failures: [String: FailureKind]
    var handshakeMs: Double
    var rssKiB: RunMemory?
    var host: HostInfo?

    enum CodingKeys: String, CodingKey {
        case benchmark, spawned, host, count, window, mix, machines, sent, answered, ok, failed, complete, ops, failures
        case workerID = "worker_id"
        case workerPID = "worker_pid"
        case stopReason = "stop_reason"
        case elapsedS = "elapsed_s"
        case commandsPerS = "commands_per_s"
        case latencyUs = "latency_us"
        case handshakeMs = "handshake_ms"
        case rssKiB = "rss_kib"
    }
}

/// Drives one worker through a load run: finds or starts it, handshakes, reads the machines'
/// states, runs the plan, puts the machines back, measures memory around it.
struct LoadRunner {
    /// Start a worker for the run (else drive the one at `commands`/`events`).
    var spawnWorker: Bool
    var commands: String?
    var events: String?
    var workerID: String?
    var workerPID: Int32?
    /// For a started worker: the executable and extra arguments.
    var binary: String
    var workerArgs: [String]
    var load: LoadOptions
    var count: Int
    var window: Int
    /// With a started worker: rest this long before the "before" memory reading.
    var settleBeforeMs: Double = 0
    /// Rest this long after the run for a "settled" memory reading (0: none).
    var settleAfterMs: Double = 0
    /// The label of the run's temporary directory.
    var label: String
    /// `--timeout-s` when not given.
    var defaultTimeoutS: Double = 120
    /// Commands run before the "before" memory reading (and outside every figure), so that what
    /// the worker keeps up to a bound (its de-duplication memory) is full when growth is measured.
    var warmup: Int = 0
    /// For a started worker: a generated test-driver host of this many running machines.
    var testMachines: Int?
    /// For a started worker: a real libvirt daemon instead of the test driver.
    var hostURI: String?
    /// On `hostURI`: this many running guests of the bench's own.
    var hostGuests: Int?

    func run() throws -> LoadReport {
        let begin = Clock.nanos()
        let deadline = begin + Clock.ns(seconds: load.timeoutS ?? defaultTimeoutS)
        let mix = try OpMix(parsing: load.mix)
        // A started worker's generated host, when asked for.
        let fixture = spawnWorker ? testMachines.map { RestoreFixture(count: $0, running: true) } : nil
        // A real host's guests run before the worker starts, so that it finds them as a host has them.
        let realHost = spawnWorker ? try hostURI.map { try HostGuests(uri: $0) } : nil
        var hostInfo: HostInfo?
        if let realHost {
            let setUp = Clock.nanos()
            if let hostGuests { try realHost.create(count: hostGuests, start: true) }
            hostInfo = realHost.info()
            if hostGuests != nil { hostInfo?.guestsStartS = Format.tenth(Clock.ms(from: setUp, to: Clock.nanos()) / 1000) }
        }
        let context = try Context()
        let worker: SpawnedWorker?
        let session: LoadSession
        let workerID: String
        let pid: Int32?

        if spawnWorker {
            let started = try startWorker(context: context, deadline: deadline, host: fixture, uri: hostURI)
            (session, worker) = (started.0, started.1)
            workerID = session.workerID
            pid = started.1.pid
        } else {
            worker = nil
            pid = workerPID
            workerID = self.workerID ?? TargetOptions.defaultWorkerID
            let commands = try Self.endpoint(self.commands ?? "@tcp://127.0.0.1:5555", default: .bind, name: "--commands")
            let events = try Self.endpoint(self.events ?? ">tcp://127.0.0.1:5556", default: .connect, name: "--events")
            session = try LoadSession(context: context, commands: commands, events: events, workerID: workerID)
            if let pid, !processExists(pid) { throw BenchFailure(2, "--worker-pid \(pid): no such process") }
        }
        let alive: () -> Bool = { worker?.isRunning ?? pid.map(processExists) ?? true }

        guard let handshakeMs = try session.handshake(deadline: min(deadline, Clock.nanos() + 30_000_000_000), alive: alive) else {
            if let worker, !worker.isRunning {
                throw BenchFailure(2, "the worker exited (status \(worker.exitStatus ?? -1)) before it answered\n\(worker.benchLogTail)")
            }
            throw BenchFailure(
                2,
                "no answer to ping from worker '\(workerID)' (commands \(commands ?? "@tcp://127.0.0.1:5555"), events \(events ?? ">tcp://127.0.0.1:5556")): is it running, with that id, on those endpoints?")
        }

        // Each machine's state now: the suspend/resume pairs start from it, and it is put back at the end.
        var machines = load.machineList
        if let fixture, load.machine == nil, load.machines == nil {
            machines = fixture.machines.map(\.name)
        }
        if let realHost, hostGuests != nil, load.machine == nil, load.machines == nil {
            machines = realHost.guests.map(\.name)
        }
        var pausedAtStart = [Bool](repeating: false, count: machines.count)
        if mix.needsMachine {
            let states = try session.exchange(
                machines.map { (Op.status, $0) }, tag: "i", deadline: min(deadline, Clock.nanos() + 30_000_000_000))
            for (k, state) in states.enumerated() {
                guard let state else { throw BenchFailure(2, "no answer to status of machine \(machines[k].debugDescription)") }
                guard state.ok else {
                    throw BenchFailure(2, "machine \(machines[k].debugDescription): \(state.error?.summary ?? "status failed")")
                }
                pausedAtStart[k] = state.state == "paused"
                if mix.changesState && state.state != "running" && state.state != "paused" {
                    note("machine \(machines[k]) is \(state.state ?? "in an unknown state"): suspend and resume will fail on it")
                }
            }
        }

        if let worker, settleBeforeMs > 0 { Clock.sleep(ms: settleBeforeMs); _ = worker.isRunning }
        var paused = pausedAtStart
        var idle: Int?
        if warmup > 0 {
            idle = pid.flatMap(ProcMemory.read)?.rssKiB
            let warm = LoadPlan(
                count: warmup, window: window, mix: mix, machines: machines, commandTimeoutMs: load.commandTimeoutMs,
                stallSeconds: load.stallS, deadline: deadline)
            let warmed = try session.run(warm, paused: &paused, tag: "w", alive: alive)
            guard warmed.complete else { throw BenchFailure(2, "the warm-up of \(warmup) commands did not complete") }
            if settleBeforeMs > 0 { Clock.sleep(ms: settleBeforeMs) }
        }
        let before = pid.flatMap(ProcMemory.read)
        var sampledPeak = before?.rssKiB ?? 0

        let plan = LoadPlan(
            count: count, window: window, mix: mix, machines: machines, commandTimeoutMs: load.commandTimeoutMs,
            stallSeconds: load.stallS, deadline: deadline)
        let outcome = try session.run(plan, paused: &paused, alive: alive) {
            if let pid, let m = ProcMemory.read(pid: pid) { sampledPeak = max(sampledPeak, m.rssKiB) }
        }
        let after = pid.flatMap(ProcMemory.read)

        // Put back what the pairs left in the other state (outside the measured run).
        var notRestored: [String] = []
        let flips = machines.indices.filter { paused[$0] != pausedAtStart[$0] }
        if !flips.isEmpty {
            let results = try session.exchange(
                flips.map { (pausedAtStart[$0] ? Op.suspend : Op.resume, machines[$0]) }, tag: "f",
                deadline: Clock.nanos() + (outcome.complete ? 15_000_000_000 : 3_000_000_000))
            for (k, r) in results.enumerated() where r?.ok != true { notRestored.append(machines[flips[k]]) }
        }

        var settled: Int?
        if settleAfterMs > 0, let pid {
            Clock.sleep(ms: settleAfterMs)
            settled = ProcMemory.read(pid: pid)?.rssKiB
        }
        let end = pid.flatMap(ProcMemory.read)
        var memory: RunMemory?
        if let before, let after {
            memory = RunMemory(
                idle: idle, before: before.rssKiB, after: after.rssKiB, settled: settled,
                sampledPeak: max(sampledPeak, after.rssKiB), highWater: end?.peakKiB ?? after.peakKiB)
        }
        if let worker { worker.stop(graceSeconds: 15) }
        return LoadReport(
            workerID: workerID, workerPID: pid, spawned: worker != nil, plan: plan, outcome: outcome,
            handshakeMs: handshakeMs, memory: memory, notRestored: notRestored, host: hostInfo)
    }

    /// Starts a worker on free ports (on `host` when given, else on `test:///default`), its commands
    /// socket connected to the bench's PUB, and waits until its control socket answers. A worker that could not bind (a port taken since it was
    /// found free) is started again on other ports, up to three times.
    private func startWorker(context: Context, deadline: UInt64, host: RestoreFixture?, uri realURI: String?) throws -> (LoadSession, SpawnedWorker) {
        let directory = try Cleanup.makeDirectory(label)
        var uri = realURI ?? "test:///default"
        if let host {
            let node = directory.appendingPathComponent("node.xml").path
            guard FileManager.default.createFile(atPath: node, contents: Data(host.nodeXML.utf8)) else {
                throw BenchFailure(2, "cannot write the test-driver node file \(node)")
            }
            uri = "test://" + node
        }
        let (worker, _, session) = try SpawnedWorker.launchAnswering(
            context: context, binary: binary, uri: uri, directory: directory, extraArguments: workerArgs, deadline: deadline
        ) { events, port, attempt in
            let session: LoadSession
            do {
                session = try LoadSession(
                    context: context, commands: Endpoint(direction: .bind, address: "tcp://127.0.0.1:\(port)"),
                    events: Endpoint(direction: .connect, address: events), workerID: "bench")
            } catch let failure as BenchFailure where attempt < 3 {
                throw SpawnedWorker.PortsTaken(log: failure.description)
            }
            guard let commands = session.commandsBoundAddress else { throw BenchFailure(2, "cannot read the commands port") }
            return (commands, session)
        }
        return (session, worker)
    }

    static func endpoint(_ text: String, default direction: Endpoint.Direction, name: String) throws -> Endpoint {
        do {
            return try Endpoint(parsing: text, defaultDirection: direction)
        } catch {
            throw BenchFailure(2, "\(name): \(text.debugDescription) is not an endpoint (@tcp://host:port binds, >tcp://host:port connects)")
        }
    }
}

extension LoadRunner {
    /// A run as `throughput` and `latency` take it from their command lines (in an extension, so
    /// the memberwise initialiser stays).
    init(target: TargetOptions, spawn: SpawnOptions, load: LoadOptions, count: Int, window: Int, label: String, host: HostOptions? = nil) {
        self.init(
            spawnWorker: target.spawn, commands: target.commands, events: target.events, workerID: target.workerId,
            workerPID: target.workerPid, binary: spawn.binary, workerArgs: spawn.workerArg, load: load,
            count: count, window: window, label: label, testMachines: spawn.testMachines,
            hostURI: host?.uri, hostGuests: host?.guests)
    }
}
