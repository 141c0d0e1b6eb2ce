import ArgumentParser
import Foundation
import WorkerLauncher
import ZeroMQ

struct SoakCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Attacks a worker with hostile but valid traffic for a while and checks that a normal client is still served.",
        discussion: """
            The bench starts a worker (libvirt test driver, free ports; or drives the one at \
            --control and --events), and a normal client sends `status` one at a time on its \
            control socket. After --baseline-s of that alone, ten attacks run for --seconds, each \
            on a thread of its own and each at a fixed rate, so that the machine is loaded but not \
            simply saturated: a 500 KB one-line bad XML `define` (4/s), list/status floods under \
            fresh ids (500/s), commands with a 24 h timeout_ms (50/s), malformed JSON, duplicate \
            members, too deep, garbage bytes (50/s), wrong frame counts on the control and commands \
            sockets (20/s), a frame and a subscription a byte over --max-frame-bytes (each every \
            2 s), eight subscribers to every topic that never read, connections that vanish at once \
            or cut their greeting short (30/s), and 32 TCP connections that never send a byte.

            Every 10 s a progress line goes to standard error. At the end the report gives the \
            normal client's latency per 10 s window, under attack and in the baseline, the \
            worker's resident memory at the start, its peak and at the end, what each attack sent \
            and got back, and a verdict: PASS when the worker is alive, answered every normal \
            command with success, its memory stayed under --max-rss-mib, the normal client's p99 \
            under attack stayed under --max-p99-ms, no answer to an attack was larger than \
            --max-answer-kib, and every attack ran.

            Exit status: 0 PASS; 1 FAIL; 2 the run could not start.

            Examples:
              ecp-bench soak
              ecp-bench soak --seconds 600 --worker-arg=--events-hwm=100 --json
              ecp-bench soak --control '>tcp://127.0.0.1:5557' --events '>tcp://127.0.0.1:5556' --worker-id host1 --worker-pid 4242
            """)

    @Option(help: "How long the attacks run, in seconds.")
    var seconds: Double = 120

    @Option(help: "How long the normal client runs alone first, in seconds: the baseline.")
    var baselineS: Double = 5

    @Option(help: "The normal client's pause between one answer and its next command, in ms.")
    var intervalMs: Double = 5

    @Option(help: "PASS needs the worker's peak resident memory (VmHWM and sampled VmRSS) under this, in MiB.")
    var maxRssMib: Double = 256

    @Option(help: "PASS needs the normal client's p99 under attack under this, in ms.")
    var maxP99Ms: Double = 50

    @Option(help: "PASS needs every answer to an attack under this, in KiB.")
    var maxAnswerKib: Double = 64

    @Option(help: "The machine the normal client asks about.")
    var machine = "test"

    @Option(help: "The worker's largest frame: the oversized frames are one byte more; a started worker gets it as --max-frame-bytes.")
    var maxFrameBytes = 4 * 1024 * 1024

    @Option(help: "The libvirt URI of a started worker.")
    var uri = "test:///default"

    @Option(help: ArgumentHelp(
        "The control endpoint of a running worker to attack (> connects), instead of starting one.", valueName: "endpoint"))
    var control: String?

    @Option(help: ArgumentHelp("With --control: the worker's events endpoint (default >tcp://127.0.0.1:5556).", valueName: "endpoint"))
    var events: String?

    @Option(help: "With --control: the worker's id (default: $ECP_WORKER_ID, else the host name).")
    var workerId: String?

    @Option(help: "With --control: the worker's process id, to read its resident memory.")
    var workerPid: Int32?

    @OptionGroup(title: "Started worker") var spawn: SpawnOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard seconds > 0, seconds <= 86_400 else { throw ValidationError("--seconds must be between 0 and 86400") }
        guard baselineS >= 0.5 else { throw ValidationError("--baseline-s must be at least 0.5") }
        guard intervalMs >= 0 else { throw ValidationError("--interval-ms must be 0 or more") }
        guard maxRssMib > 0, maxP99Ms > 0, maxAnswerKib > 0 else { throw ValidationError("the bounds must be positive") }
        guard maxFrameBytes >= 1024, maxFrameBytes <= 256 << 20 else {
            throw ValidationError("--max-frame-bytes must be between 1024 and 268435456")
        }
        if spawn.testMachines != nil { throw ValidationError("soak starts its worker on --uri: leave out --test-machines") }
        if control == nil && (events != nil || workerId != nil || workerPid != nil) {
            throw ValidationError("--events, --worker-id and --worker-pid describe a running worker: give its --control too")
        }
    }

    /// The worker under attack.
    private struct Target {
        var worker: SpawnedWorker?
        var pid: Int32?
        var workerID: String
        var control: String
        var events: String
        var commandsBind: String?
    }

    func run() throws {
        try guarded {
            let context = try Context()
            let prefix = "s" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(8).lowercased()
            let target = try control == nil ? startWorker(context: context) : runningWorker(context: context)
            let worker = target.worker
            let pid = target.pid
            let alive: () -> Bool = { worker?.isRunning ?? pid.map(processExists) ?? true }
            if worker != nil { Clock.sleep(ms: 1000) }
            let rssStart = pid.flatMap(ProcMemory.read)
            var sampledPeak = rssStart?.rssKiB ?? 0
            func sample() {
                if let pid, let m = ProcMemory.read(pid: pid) { sampledPeak = max(sampledPeak, m.rssKiB) }
            }

            let windowS = 10.0
            let client = SoakClient(
                context: context, control: target.control, machine: machine, idPrefix: prefix, intervalMs: intervalMs,
                windowS: windowS, answerTimeoutMs: 5000, attackS: seconds)
            client.start()
            let baselineEnd = Clock.nanos() + Clock.ns(seconds: baselineS)
            while Clock.nanos() < baselineEnd && alive() {
                Clock.sleep(ms: 250)
                sample()
            }
            let baseline = client.stats.withLock { LatencySummary($0.baseline) }
            note("soak: baseline \(Format.seconds(baselineS)): \(Self.latencyText(baseline))")

            let attackers = SoakAttackers(
                context: context,
                targets: SoakTargets(
                    control: target.control, events: target.events, commandsBind: target.commandsBind,
                    workerID: target.workerID, machine: machine, maxFrameBytes: maxFrameBytes, idPrefix: prefix))
            let start = Clock.nanos()
            client.attackStart.store(start, ordering: .relaxed)
            attackers.start()
            let end = start + Clock.ns(seconds: seconds)
            var reported = 0
            var died = false
            while Clock.nanos() < end {
                Clock.sleep(ms: 250)
                sample()
                if !alive() {
                    died = true
                    break
                }
                let elapsed = Double(Clock.nanos() - start) / 1e9
                if Int(elapsed / windowS) > reported {
                    reported = Int(elapsed / windowS)
                    let window = client.stats.withLock { s in s.windows.count >= reported ? LatencySummary(s.windows[reported - 1]) : nil }
                    let rss = pid.flatMap(ProcMemory.read).map { String(format: "%.1f MiB", Double($0.rssKiB) / 1024) } ?? "-"
                    let sent = attackers.tally.snapshot.values.reduce(0) { $0 + $1.sent }
                    note(
                        "soak: \(Int(Double(reported) * windowS)) s: normal \(window.map(Self.latencyText) ?? "no answers"); rss \(rss); attacks sent \(sent)")
                }
            }
            let attackSeconds = Double(Clock.nanos() - start) / 1e9
            client.stop()
            attackers.stop()
            sample()
            Clock.sleep(ms: 1000)
            let rssEnd = pid.flatMap(ProcMemory.read)
            let stillAlive = !died && alive() && finalPing(context: context, control: target.control, prefix: prefix)
            worker?.stop(graceSeconds: 15)

            let stats = client.stats.withLock { $0 }
            let tally = attackers.tally.snapshot
            let highWater = rssEnd?.peakKiB
            let peak = max(sampledPeak, highWater ?? 0, rssEnd?.rssKiB ?? 0)
            let attack = LatencySummary(stats.attack)
            let largestAnswer = tally.values.map(\.largestAnswer).max() ?? 0

            var failures: [String] = []
            if !stillAlive { failures.append(died ? "the worker exited during the attacks" : "the worker did not answer a final ping") }
            if stats.unanswered > 0 || stats.answered < stats.sent {
                failures.append("\(stats.sent - stats.answered) of \(stats.sent) normal commands unanswered")
            }
            if stats.ok < stats.answered { failures.append("\(stats.answered - stats.ok) normal commands failed") }
            if stats.attack.totalCount == 0 { failures.append("no normal command was answered under attack") }
            if pid != nil, Double(peak) > maxRssMib * 1024 {
                failures.append(String(format: "rss peak %.1f MiB over %.0f MiB", Double(peak) / 1024, maxRssMib))
            }
            if attack.p99 > maxP99Ms * 1000 {
                failures.append(String(format: "p99 under attack %.1f ms over %.1f ms", attack.p99 / 1000, maxP99Ms))
            }
            if Double(largestAnswer) > maxAnswerKib * 1024 {
                failures.append(String(format: "an answer to an attack of %.1f KiB, over %.0f KiB", Double(largestAnswer) / 1024, maxAnswerKib))
            }
            let idle = SoakAttack.allCases.filter { (tally[$0]?.sent ?? 0) == 0 }
            if !idle.isEmpty { failures.append("attacks that sent nothing: " + idle.map(\.rawValue).joined(separator: ", ")) }
            if let first = stats.firstFailure, !failures.isEmpty { failures.append("first normal failure: \(first)") }
            let verdict = failures.isEmpty ? "PASS" : "FAIL"

            var table = Table(
                "ecp-bench soak: \(worker != nil ? "started worker" : "worker '\(target.workerID)'")"
                    + (pid.map { ", pid \($0)" } ?? "") + String(format: ", %.0f s of attacks after a %.0f s baseline", attackSeconds, baselineS)
                    + ", normal client: status \(machine) one at a time")
            table.add("baseline", Self.latencyText(baseline))
            var windows: [LatencySummary] = []
            for (k, h) in stats.windows.enumerated() {
                let summary = LatencySummary(h)
                windows.append(summary)
                let from = Double(k) * windowS
                table.add(String(format: "%.0f-%.0f s", from, max(from + 1, min(from + windowS, attackSeconds))), Self.latencyText(summary))
            }
            table.add("under attack", Self.latencyText(attack))
            table.add("normal client", "\(stats.sent) sent, \(stats.answered) answered, \(stats.ok) ok, \(stats.unanswered) unanswered")
            table.add("rss start", rssStart.map { Format.kib($0.rssKiB) } ?? "not read")
            table.add("rss peak", pid == nil ? "not read (give --worker-pid)" : Format.kib(peak) + " (VmHWM " + (highWater.map(Format.kib) ?? "-") + ")")
            table.add("rss end", rssEnd.map { Format.kib($0.rssKiB) } ?? "not read")
            let nameWidth = SoakAttack.allCases.map(\.rawValue.count).max() ?? 0
            for a in SoakAttack.allCases {
                let c = tally[a] ?? SoakTally.Count()
                let padded = a.rawValue + String(repeating: " ", count: nameWidth - a.rawValue.count)
                var text = "\(padded)  \(c.sent) sent, \(c.answered) \(a.answerMeaning)"
                if c.largestAnswer > 0 { text += String(format: ", largest %.1f KiB", Double(c.largestAnswer) / 1024) }
                table.add("attack", text)
            }
            table.add(
                "bounds",
                String(format: "rss peak < %.0f MiB, p99 under attack < %.1f ms, answers < %.0f KiB", maxRssMib, maxP99Ms, maxAnswerKib))
            table.add("verdict", failures.isEmpty ? "PASS" : "FAIL: " + failures.joined(separator: "; "))

            let json = SoakJSON(
                workerPID: pid, spawned: worker != nil, attackS: Format.tenth(attackSeconds), baselineS: baselineS,
                normal: .init(sent: stats.sent, answered: stats.answered, ok: stats.ok, unanswered: stats.unanswered),
                latencyUs: .init(baseline: baseline, attack: attack, windows: windows),
                rssKiB: .init(start: rssStart?.rssKiB, peak: pid == nil ? nil : peak, highWater: highWater, end: rssEnd?.rssKiB),
                attacks: Dictionary(uniqueKeysWithValues: SoakAttack.allCases.map { ($0.rawValue, tally[$0] ?? SoakTally.Count()) }),
                verdict: verdict, failures: failures)
            emit(table, json: json, asJSON: output.json)
            return failures.isEmpty ? 0 : 1
        }
    }

    static func latencyText(_ s: LatencySummary) -> String {
        guard s.count > 0 else { return "no answers" }
        // Microseconds as the other subcommands give them, but a stall of seconds reads better in ms.
        func time(_ us: Double) -> String { us < 10_000 ? String(format: "%.1f µs", us) : String(format: "%.1f ms", us / 1000) }
        return "p50 \(time(s.p50)), p99 \(time(s.p99)), max \(time(s.max)) (\(s.count) commands)"
    }

    /// A worker on free ports, its commands socket connected to a port the bench binds for the
    /// wrong-frame attack; started again on other ports when one was taken meanwhile.
    private func startWorker(context: Context) throws -> Target {
        let directory = try Cleanup.makeDirectory("soak")
        let (worker, endpoints, _) = try SpawnedWorker.launchAnswering(
            context: context, binary: spawn.binary, uri: uri, directory: directory,
            extraArguments: ["--max-frame-bytes", "\(maxFrameBytes)"] + spawn.workerArg
        ) { _, port, _ in ("tcp://127.0.0.1:\(port)", ()) }
        return Target(
            worker: worker, pid: worker.pid, workerID: "bench", control: endpoints.control, events: endpoints.events,
            commandsBind: endpoints.commands)
    }

    private func runningWorker(context: Context) throws -> Target {
        let control = try LoadRunner.endpoint(self.control ?? "", default: .connect, name: "--control")
        let events = try LoadRunner.endpoint(self.events ?? ">tcp://127.0.0.1:5556", default: .connect, name: "--events")
        guard control.direction == .connect, events.direction == .connect else {
            throw BenchFailure(2, "--control and --events connect to a running worker: give them with > or without a prefix")
        }
        if let workerPid, !processExists(workerPid) { throw BenchFailure(2, "--worker-pid \(workerPid): no such process") }
        let ping = #"{"v":1,"id":"soak-ready","op":"ping"}"#
        guard try ControlRequest.send(context: context, address: control.address, payload: Data(ping.utf8), id: "soak-ready", timeoutMs: 5000) != nil else {
            throw BenchFailure(2, "no answer to ping on \(control.address) within 5 s: is the worker running there?")
        }
        return Target(
            worker: nil, pid: workerPid, workerID: workerId ?? TargetOptions.defaultWorkerID, control: control.address,
            events: events.address, commandsBind: nil)
    }

    private func finalPing(context: Context, control: String, prefix: String) -> Bool {
        let id = "\(prefix)-final"
        let ping = #"{"v":1,"id":"\#(id)","op":"ping"}"#
        return (try? ControlRequest.send(context: context, address: control, payload: Data(ping.utf8), id: id, timeoutMs: 5000)) != nil
    }
}

struct SoakJSON: Encodable {
    struct Normal: Encodable {
        var sent: Int
        var answered: Int
        var ok: Int
        var unanswered: Int
    }

    struct Latency: Encodable {
        var baseline: LatencySummary
        var attack: LatencySummary
        var windows: [LatencySummary]
    }

    struct Memory: Encodable {
        var start: Int?
        var peak: Int?
        var highWater: Int?
        var end: Int?

        enum CodingKeys: String, CodingKey {
            case start, peak, end
            case highWater = "high_water"
        }
    }

    var benchmark = "soak"
    var workerPID: Int32?
    var spawned: Bool
    var attackS: Double
    var baselineS: Double
    var normal: Normal
    var latencyUs: Latency
    var rssKiB: Memory
    var attacks: [String: SoakTally.Count]
    var verdict: String
    var failures: [String]

    enum CodingKeys: String, CodingKey {
        case benchmark, spawned, normal, attacks, verdict, failures
        case workerPID = "worker_pid"
        case attackS = "attack_s"
        case baselineS = "baseline_s"
        case latencyUs = "latency_us"
        case rssKiB = "rss_kib"
    }
}
