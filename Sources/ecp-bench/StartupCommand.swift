import ArgumentParser
import ECPProtocol
import Foundation
import WorkerLauncher
import ZeroMQ

struct StartupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "startup",
        abstract: "Starts a worker with nothing to restore, R times, and times how soon it talks.",
        discussion: """
            Each run starts the worker on free ports (libvirt test driver, --no-restore, no state \
            table) and measures from process start to the first message on its events socket \
            (worker.started or a heartbeat; the acks of the bench's own pings are left out) and to \
            its control socket answering ping, then waits 0.5 s and reads its idle resident memory \
            (VmRSS), then stops it with SIGTERM and times the exit.

            A ZeroMQ socket that connects before its peer binds retries every 100 ms; so the bench \
            opens a fresh socket every 5 ms while it waits, and the figures are within about 5 ms \
            of the moment the worker's sockets open. The first event is worker.started when a \
            subscription is in place before it goes out, which is rare (it is published as soon as \
            the socket is bound); otherwise it is the first heartbeat: the bench starts the workers \
            with --heartbeat-ms 100, so that one comes within 100 ms.

            Examples:
              ecp-bench startup
              ecp-bench startup --runs 20 --json
            """)

    @Option(help: "How many times to start the worker.")
    var runs = 10

    @Option(help: "Seconds each run may take before it counts as failed.")
    var timeoutS: Double = 30

    @OptionGroup(title: "Started worker") var spawn: SpawnOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        guard runs >= 1, runs <= 1000 else { throw ValidationError("--runs must be between 1 and 1000") }
        guard timeoutS > 0 else { throw ValidationError("--timeout-s must be positive") }
    }

    /// Median, min and max of one figure over the runs, in ms (KiB for memory).
    struct Spread: Encodable {
        var median: Double
        var min: Double
        var max: Double
        var values: [Double]

        init?(_ values: [Double]) {
            guard let median = Format.median(values) else { return nil }
            self.median = Format.tenth(median)
            self.min = Format.tenth(values.min()!)
            self.max = Format.tenth(values.max()!)
            self.values = values.map(Format.tenth)
        }

        func text(_ unit: (Double) -> String) -> String {
            "median \(unit(median)), min \(unit(min)), max \(unit(max))"
        }
    }

    struct StartupJSON: Encodable {
        var benchmark = "startup"
        var runs: Int
        var toPingMs: Spread?
        var toFirstEventMs: Spread?
        var firstEventTypes: [String: Int]
        var idleRssKiB: Spread?
        var stopMs: Spread?
        var failedRuns: Int

        enum CodingKeys: String, CodingKey {
            case benchmark, runs
            case toPingMs = "to_ping_ms"
            case toFirstEventMs = "to_first_event_ms"
            case firstEventTypes = "first_event_types"
            case idleRssKiB = "idle_rss_kib"
            case stopMs = "stop_ms"
            case failedRuns = "failed_runs"
        }
    }

    func run() throws {
        try guarded {
            let context = try Context()
            var ping: [Double] = []
            var event: [Double] = []
            var types: [String: Int] = [:]
            var rss: [Double] = []
            var stops: [Double] = []
            var failed = 0
            var lastProblem = ""
            for run in 1...runs {
                let directory = try Cleanup.makeDirectory("startup")
                var done = false
                for attempt in 1...3 where !done {
                    let ports = try SpawnedWorker.freePorts(2)
                    let events = "tcp://127.0.0.1:\(ports[0])"
                    let control = "tcp://127.0.0.1:\(ports[1])"
                    let arguments = [
                        "--worker-id", "bench",
                        "--libvirt-uri", "test:///default",
                        "--commands", "none",
                        "--events=@\(events)",
                        "--control=@\(control)",
                        "--state-file", directory.appendingPathComponent("state.json").path,
                        "--no-restore",
                        "--heartbeat-ms", "100",
                        "--shutdown-grace-s", "5",
                    ] + spawn.workerArg
                    let worker = try SpawnedWorker.launch(
                        binary: spawn.binary, arguments: arguments,
                        logPath: directory.appendingPathComponent("worker-\(run)-\(attempt).log").path)
                    let probe = try Probe.run(
                        context: context, control: control, events: events,
                        eventTopics: [Topic.worker("bench"), Topic.heartbeat("bench")], worker: worker,
                        deadline: Clock.nanos() + Clock.ns(seconds: timeoutS))
                    if probe.pingAnsweredAt == nil && worker.failedToOpenSockets && attempt < 3 { continue }
                    done = true
                    guard let pingAt = probe.pingAnsweredAt, let eventAt = probe.firstEventAt else {
                        failed += 1
                        lastProblem = "run \(run): " + (worker.isRunning ? "no answer within \(Int(timeoutS)) s" : "the worker exited with status \(worker.exitStatus ?? -1)")
                            + "\n" + worker.benchLogTail
                        worker.stop(graceSeconds: 2)
                        break
                    }
                    ping.append(Clock.ms(from: worker.spawnedAt, to: pingAt))
                    event.append(Clock.ms(from: worker.spawnedAt, to: eventAt))
                    types[probe.firstEventType ?? "unreadable", default: 0] += 1
                    Clock.sleep(ms: 500)
                    if let m = ProcMemory.read(pid: worker.pid) { rss.append(Double(m.rssKiB)) }
                    let stop = worker.stop(graceSeconds: 15)
                    if stop.status != nil { stops.append(stop.ms) }
                }
            }
            if ping.isEmpty { throw BenchFailure(1, "no run of the worker answered\n\(lastProblem)") }
            if failed > 0 { note("\(failed) of \(runs) runs failed; the last:\n\(lastProblem)") }

            let json = StartupJSON(
                runs: runs, toPingMs: Spread(ping), toFirstEventMs: Spread(event), firstEventTypes: types,
                idleRssKiB: Spread(rss), stopMs: Spread(stops), failedRuns: failed)
            var table = Table("ecp-bench startup: \(runs) runs, libvirt test driver, --no-restore, no state table")
            table.add("spawn → ping answered", json.toPingMs?.text { Format.ms($0) } ?? "-")
            table.add("spawn → first event", json.toFirstEventMs?.text { Format.ms($0) } ?? "-")
            table.add("first event", types.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)×" }.joined(separator: ", "))
            table.add("idle rss", json.idleRssKiB?.text { String(format: "%.1f MiB", $0 / 1024) } ?? "-")
            table.add("SIGTERM → exit", json.stopMs?.text { Format.ms($0) } ?? "-")
            if failed > 0 { table.add("failed runs", "\(failed)") }
            emit(table, json: json, asJSON: output.json)
            return failed == 0 ? 0 : 1
        }
    }
}
