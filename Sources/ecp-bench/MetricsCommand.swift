import ArgumentParser
import Foundation
import Histogram
import NIOCore
import WorkerLauncher
import ZeroMQ

struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Measures the worker's Prometheus endpoint: how long a scrape of GET /metrics takes, and what the endpoint costs an idle worker in memory.",
        discussion: """
            Scrape latency: starts a worker on a generated test-driver host of --test-machines \
            running machines, with --stats-interval-ms 1000 and --metrics on a free port of \
            127.0.0.1, waits until /metrics holds the first sample of the machines \
            (libvirt_domain_info_vstate), then sends --count GET /metrics one after another on one \
            keep-alive HTTP/1.1 connection (SwiftNIO). Each latency runs from the request (from \
            the connect, when the connection had to be opened again) to the last byte of the body; a scrape counts when the status is 200 and \
            the content type text/plain. It reports the percentiles (HdrHistogram, 3 significant \
            digits), the body size, the vstate series found (one per machine), and the worker's \
            resident memory after the scrapes.

            Idle memory: starts a worker with --metrics none and one with --metrics on a free port \
            (one at a time, both on a generated test-driver host of --idle-machines running \
            machines, by default none, other options the worker's defaults), waits until each answers ping on its \
            control socket, and the one with the endpoint until it has served one scrape, rests \
            --settle-s, and reads VmRSS, RssAnon (heap, stacks), RssFile (mapped code and \
            read-only data, shared and reclaimable) and Threads from /proc/<pid>/status, Pss and \
            Private_Dirty from /proc/<pid>/smaps_rollup. --rounds pairs alternate which of the two \
            runs first; it reports the medians of each and the median of the paired differences.

            --count 0 leaves out the scrapes, --rounds 0 the idle memory.

            Exit status: 0 every scrape and every memory reading succeeded; 3 the run completed but \
            some scrapes failed (status, content type, or connection); 1 it stopped before the end \
            (time limit, a worker exited); 2 it could not start (no worker answering, endpoint not \
            serving). Bad options are refused before anything starts.

            Examples:
              ecp-bench metrics
              ecp-bench metrics --test-machines 1000 --count 500 --json
              ecp-bench metrics --count 0 --rounds 7 --idle-machines 8
            """)

    @Option(help: "Scrapes to time, one after another (0: none).")
    var count = 200

    @Option(help: "Running machines on the generated test-driver host of the scraped worker.")
    var testMachines = 1000

    @Option(help: "Pairs of idle workers to measure, without and with the endpoint (0: none).")
    var rounds = 3

    @Option(help: "Running machines on the generated test-driver host of the idle workers.")
    var idleMachines = 0

    @Option(help: "Seconds each idle worker rests before its memory is read.")
    var settleS: Double = 2

    @Option(help: ArgumentHelp("The ecp-worker executable to start (default: ecp-worker next to ecp-bench).", valueName: "path"))
    var worker: String?

    @Option(help: ArgumentHelp("An extra argument for started workers (repeatable), e.g. --worker-arg=--log-level=warning.", valueName: "argument"))
    var workerArg: [String] = []

    @Option(help: "Stop after this many seconds in all, and report what was measured.")
    var timeoutS: Double = 300

    @OptionGroup var output: OutputOptions

    func validate() throws {
        if !(0...1_000_000).contains(count) { throw ValidationError("--count must be between 0 and 1000000") }
        if !(1...10_000).contains(testMachines) { throw ValidationError("--test-machines must be between 1 and 10000") }
        if !(0...100).contains(rounds) { throw ValidationError("--rounds must be between 0 and 100") }
        if !(0...10_000).contains(idleMachines) { throw ValidationError("--idle-machines must be between 0 and 10000") }
        if count == 0 && rounds == 0 { throw ValidationError("--count 0 and --rounds 0 leave nothing to measure") }
        if !(0...600).contains(settleS) { throw ValidationError("--settle-s must be between 0 and 600") }
        if timeoutS <= 0 { throw ValidationError("--timeout-s must be positive") }
    }

    func run() throws {
        try guarded {
            let deadline = Clock.nanos() + Clock.ns(seconds: timeoutS)
            let launcher = MetricsWorkers(
                context: try Context(), binary: worker ?? SpawnedWorker.defaultBinary(), extraArguments: workerArg)
            var json = MetricsJSON()
            var table = Table("ecp-bench metrics")
            var problems: [String] = []

            if count > 0 {
                let scrape = try scrapeLatency(launcher, deadline: deadline)
                json.scrape = scrape.json
                table.title = "ecp-bench metrics: started worker, pid \(scrape.pid), test-driver host of \(testMachines) running machines, --stats-interval-ms 1000"
                scrape.json.rows(into: &table)
                problems += scrape.problems
                if !scrape.json.complete { json.complete = false }
            }
            if rounds > 0 && json.complete {
                let idle = try idleMemory(launcher, deadline: deadline)
                json.idleMemory = idle.json
                if count == 0 { table.title = "ecp-bench metrics: idle workers without and with the endpoint" }
                idle.json.rows(into: &table)
                problems += idle.problems
                if !idle.json.complete { json.complete = false }
            }
            for problem in problems { note(problem) }
            emit(table, json: json, asJSON: output.json)
            if !json.complete { return 1 }
            return (json.scrape?.failed ?? 0) > 0 ? 3 : 0
        }
    }

    // MARK: scrape latency

    private func scrapeLatency(_ launcher: MetricsWorkers, deadline: UInt64) throws -> (json: ScrapeJSON, pid: Int32, problems: [String]) {
        let directory = try Cleanup.makeDirectory("metrics")
        let uri = try MetricsWorkers.host(machines: testMachines, in: directory)
        let started = try launcher.launch(
            uri: uri, directory: directory, label: "scrape", metrics: true, arguments: ["--stats-interval-ms", "1000"],
            deadline: deadline)
        let worker = started.worker
        let client = started.client!
        defer { client.close() }
        var json = ScrapeJSON(testMachines: testMachines, count: count)
        var problems: [String] = []

        // Ready: the first sample of the machines is in the text.
        var ready: ScrapeResponse?
        while Clock.nanos() < deadline, worker.isRunning {
            if let response = try? client.get("/metrics", timeoutSeconds: 30).response, response.status == .ok,
                response.body.readableBytesView.firstRange(of: Array("libvirt_domain_info_vstate".utf8)) != nil
            {
                ready = response
                break
            }
            Clock.sleep(ms: 20)
        }
        guard ready != nil else {
            let why = worker.isRunning ? "no sample of the machines in /metrics within --timeout-s" : "the worker exited (status \(worker.exitStatus ?? -1))"
            worker.stop(graceSeconds: 2)
            throw BenchFailure(1, "\(why)\n\(worker.benchLogTail)")
        }
        json.readyMs = Format.tenth(Clock.ms(from: worker.spawnedAt, to: Clock.nanos()))

        var latency = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000_000)
        var sizes: [Int] = []
        var last: ByteBuffer?
        for n in 1...count {
            guard Clock.nanos() < deadline else {
                problems.append("time limit reached after \(n - 1) of \(count) scrapes")
                json.complete = false
                break
            }
            guard worker.isRunning else {
                problems.append("the worker exited (status \(worker.exitStatus ?? -1)) after \(n - 1) scrapes\n\(worker.benchLogTail)")
                json.complete = false
                break
            }
            do {
                let remaining = Double(deadline - min(deadline, Clock.nanos())) / 1e9
                let (response, startedAt) = try client.get("/metrics", timeoutSeconds: max(0.001, min(30, remaining)))
                let type = response.contentType ?? ""
                guard response.status == .ok, type.hasPrefix("text/plain") else {
                    json.failed += 1
                    problems.append("scrape \(n): status \(response.status.code), content type \(type.isEmpty ? "none" : type)")
                    continue
                }
                latency.record(response.receivedAt - min(response.receivedAt, startedAt))
                sizes.append(response.body.readableBytes)
                last = response.body
                json.ok += 1
            } catch {
                json.failed += 1
                problems.append("scrape \(n): \(error)")
            }
        }
        json.connections = client.connections
        json.latencyMs = ScrapeJSON.Latency(latency)
        if let median = Format.median(sizes.map(Double.init)) {
            json.bodyBytes = ScrapeJSON.Sizes(min: sizes.min()!, median: Int(median), max: sizes.max()!)
        }
        if let last {
            json.vstateSeries = last.readableBytesView.ranges(of: Array("\nlibvirt_domain_info_vstate{".utf8)).count
        }
        json.workerRssKiB = ProcMemoryBreakdown.read(pid: worker.pid)?.rssKiB
        if problems.count > 5 {
            problems = Array(problems.prefix(5)) + ["... and \(problems.count - 5) more"]
        }
        worker.stop(graceSeconds: 15)
        return (json, worker.pid, problems)
    }

    // MARK: idle memory

    private func idleMemory(_ launcher: MetricsWorkers, deadline: UInt64) throws -> (json: IdleMemoryJSON, problems: [String]) {
        let directory = try Cleanup.makeDirectory("metrics-idle")
        let uri = try MetricsWorkers.host(machines: idleMachines, in: directory)
        var json = IdleMemoryJSON(machines: idleMachines, rounds: rounds, settleS: settleS)
        var problems: [String] = []
        rounds: for round in 1...rounds {
            // Odd rounds start without the endpoint, even rounds with it.
            for withEndpoint in (round % 2 == 1 ? [false, true] : [true, false]) {
                guard Clock.nanos() < deadline else {
                    problems.append("time limit reached in round \(round) of \(rounds)")
                    json.complete = false
                    break rounds
                }
                let started = try launcher.launch(
                    uri: uri, directory: directory, label: "idle-\(round)-\(withEndpoint ? "on" : "off")", metrics: withEndpoint,
                    arguments: [], deadline: deadline)
                defer {
                    started.client?.close()
                    started.worker.stop(graceSeconds: 15)
                }
                if let client = started.client {
                    // Served once: the state of an endpoint Prometheus scrapes.
                    let response = try? client.get("/metrics", timeoutSeconds: 30).response
                    guard response?.status == .ok else {
                        throw BenchFailure(1, "round \(round): the idle worker's endpoint did not serve /metrics\n\(started.worker.benchLogTail)")
                    }
                }
                Clock.sleep(ms: settleS * 1000)
                guard started.worker.isRunning, let memory = ProcMemoryBreakdown.read(pid: started.worker.pid) else {
                    problems.append("round \(round): the worker exited (status \(started.worker.exitStatus ?? -1)) before its memory was read\n\(started.worker.benchLogTail)")
                    json.complete = false
                    break rounds
                }
                json.runs.append(IdleMemoryJSON.Run(round: round, metrics: withEndpoint, memory: memory))
            }
        }
        json.summarize()
        return (json, problems)
    }
}

/// Starts the workers of `ecp-bench metrics`: worker id `bench`, events and control on free ports
/// of 127.0.0.1, no commands socket, and `--metrics` on a free port or `none`.
struct MetricsWorkers {
    var context: Context
    var binary: String
    var extraArguments: [String]

    /// A generated test-driver host of `machines` running machines, as a libvirt URI.
    static func host(machines: Int, in directory: URL) throws -> String {
        let node = directory.appendingPathComponent("node.xml").path
        guard FileManager.default.createFile(atPath: node, contents: Data(RestoreFixture(count: machines, running: true).nodeXML.utf8)) else {
            throw BenchFailure(2, "cannot write the test-driver node file \(node)")
        }
        return "test://" + node
    }

    /// Starts a worker and waits until its control socket answers ping and, with `metrics`, until
    /// its endpoint accepts a connection (the client returned is connected to it). A port taken
    /// between the search and the bind, for the sockets or the endpoint, means another try on
    /// other ports, up to three.
    func launch(
        uri: String, directory: URL, label: String, metrics: Bool, arguments extra: [String], deadline: UInt64
    ) throws -> (worker: SpawnedWorker, client: ScrapeClient?) {
        var lastLog = ""
        for attempt in 1...3 {
            let ports = try SpawnedWorker.freePorts(metrics ? 3 : 2)
            let control = "tcp://127.0.0.1:\(ports[1])"
            let arguments = [
                "--worker-id", "bench",
                "--libvirt-uri", uri,
                "--commands", "none",
                "--events=@tcp://127.0.0.1:\(ports[0])",
                "--control=@\(control)",
                "--state-file", directory.appendingPathComponent("state-\(label).json").path,
                "--shutdown-grace-s", "5",
                "--metrics", metrics ? "127.0.0.1:\(ports[2])" : "none",
            ] + extra + extraArguments
            let worker = try SpawnedWorker.launch(
                binary: binary, arguments: arguments,
                logPath: directory.appendingPathComponent("worker-\(label)-\(attempt).log").path)
            let probe = try Probe.run(
                context: context, control: control, events: nil, worker: worker,
                deadline: min(deadline, Clock.nanos() + 30_000_000_000))
            guard probe.pingAnsweredAt != nil else {
                if worker.failedToOpenSockets {
                    lastLog = worker.benchLogTail
                    continue
                }
                let tail = worker.benchLogTail
                let status = worker.isRunning ? "it is running but did not answer ping" : "it exited with status \(worker.exitStatus ?? -1)"
                worker.stop(graceSeconds: 2)
                throw BenchFailure(2, "the started worker is not ready: \(status)\n\(tail)")
            }
            guard metrics else { return (worker, nil) }

            // The endpoint opens just after the sockets.
            let client = ScrapeClient(host: "127.0.0.1", port: ports[2])
            let until = min(deadline, Clock.nanos() + 30_000_000_000)
            var taken = false
            while Clock.nanos() < until, worker.isRunning {
                if (try? client.connect(timeoutSeconds: 5)) != nil { return (worker, client) }
                if worker.log.contains("metrics endpoint cannot listen") {
                    taken = true
                    break
                }
                Clock.sleep(ms: 10)
            }
            client.close()
            lastLog = worker.benchLogTail
            worker.stop(graceSeconds: 5)
            if !taken { throw BenchFailure(2, "the started worker's metrics endpoint does not accept connections\n\(lastLog)") }
        }
        throw BenchFailure(2, "the started worker could not open its sockets and endpoint three times\n\(lastLog)")
    }
}

// MARK: output

struct MetricsJSON: Encodable {
    var benchmark = "metrics"
    var complete = true
    var scrape: ScrapeJSON?
    var idleMemory: IdleMemoryJSON?

    enum CodingKeys: String, CodingKey {
        case benchmark, complete, scrape
        case idleMemory = "idle_memory"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(benchmark, forKey: .benchmark)
        try c.encode(complete, forKey: .complete)
        // Absent parts are null, so that a reader finds every key.
        try c.encode(scrape, forKey: .scrape)
        try c.encode(idleMemory, forKey: .idleMemory)
    }
}

/// The scrape-latency figures.
struct ScrapeJSON: Encodable {
    struct Latency: Encodable {
        var count: UInt64
        var min: Double
        var mean: Double
        var p50: Double
        var p90: Double
        var p99: Double
        var max: Double

        /// From a histogram of nanoseconds, in ms to the µs.
        init(_ h: Histogram<UInt64>) {
            func ms(_ ns: Double) -> Double { (ns / 1000).rounded() / 1000 }
            count = h.totalCount
            guard count > 0 else {
                min = 0; mean = 0; p50 = 0; p90 = 0; p99 = 0; max = 0
                return
            }
            min = ms(Double(h.min))
            mean = ms(h.mean)
            p50 = ms(Double(h.valueAtPercentile(50)))
            p90 = ms(Double(h.valueAtPercentile(90)))
            p99 = ms(Double(h.valueAtPercentile(99)))
            max = ms(Double(h.maxRecorded))
        }
    }

    struct Sizes: Encodable {
        var min: Int
        var median: Int
        var max: Int
    }

    var testMachines: Int
    var statsIntervalMs = 1000
    var count: Int
    var complete = true
    var ok = 0
    var failed = 0
    /// HTTP connections opened in all, the waits for readiness included (1: every request on the first).
    var connections = 0
    /// From the worker's start to the first scrape with the machines' sample.
    var readyMs: Double = 0
    var latencyMs: Latency?
    var bodyBytes: Sizes?
    /// `libvirt_domain_info_vstate` series in the last body: one per machine.
    var vstateSeries: Int?
    var workerRssKiB: Int?

    enum CodingKeys: String, CodingKey {
        case testMachines = "test_machines"
        case statsIntervalMs = "stats_interval_ms"
        case count, ok, failed, connections, complete
        case readyMs = "ready_ms"
        case latencyMs = "latency_ms"
        case bodyBytes = "body_bytes"
        case vstateSeries = "vstate_series"
        case workerRssKiB = "worker_rss_kib"
    }

    func rows(into table: inout Table) {
        table.add("ready", Format.ms(readyMs) + " after the start (first sample of the machines in /metrics)")
        table.add(
            "scrapes",
            "\(ok) ok of \(count)" + (failed > 0 ? ", \(failed) failed" : "")
                + ", \(connections) connection\(connections == 1 ? " (keep-alive)" : "s")")
        if let bodyBytes {
            table.add(
                "body",
                String(format: "%.1f KB", Double(bodyBytes.median) / 1000) + " (\(bodyBytes.median) bytes median, \(bodyBytes.min) to \(bodyBytes.max))"
                    + (vstateSeries.map { ", \($0) vstate series" } ?? ""))
        }
        if let latency = latencyMs, latency.count > 0 {
            let values = [("p50", latency.p50), ("p90", latency.p90), ("p99", latency.p99), ("max", latency.max)]
            let texts = values.map { String(format: "%.2f", $0.1) }
            let width = texts.map(\.count).max() ?? 0
            for (k, (name, _)) in values.enumerated() {
                table.add("scrape \(name)", String(repeating: " ", count: width - texts[k].count) + texts[k] + " ms")
            }
        } else {
            table.add("scrape latency", "no scrape succeeded")
        }
        if let workerRssKiB { table.add("worker rss", Format.kib(workerRssKiB) + " after the scrapes") }
    }
}

/// The idle-memory figures: each run, and per figure the medians and the median paired difference.
struct IdleMemoryJSON: Encodable {
    struct Run: Encodable {
        var round: Int
        var metrics: Bool
        var memory: ProcMemoryBreakdown

        func encode(to encoder: any Encoder) throws {
            try memory.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(round, forKey: .round)
            try c.encode(metrics, forKey: .metrics)
        }

        enum CodingKeys: String, CodingKey { case round, metrics }
    }

    /// The figures of ``ProcMemoryBreakdown`` as medians (or differences of them), in KiB.
    struct Figures: Encodable {
        var rssKiB: Double
        var rssAnonKiB: Double
        var rssFileKiB: Double
        var pssKiB: Double?
        var privateDirtyKiB: Double?
        var threads: Double

        enum CodingKeys: String, CodingKey {
            case rssKiB = "rss_kib"
            case rssAnonKiB = "rss_anon_kib"
            case rssFileKiB = "rss_file_kib"
            case pssKiB = "pss_kib"
            case privateDirtyKiB = "private_dirty_kib"
            case threads
        }

        /// The median of each figure over `values` (an empty list: nil).
        init?(medianOf values: [ProcMemoryBreakdown]) {
            func m(_ f: (ProcMemoryBreakdown) -> Int?) -> Double? {
                Format.median(values.compactMap(f).map(Double.init)).map(Format.tenth)
            }
            guard let rss = m(\.rssKiB) else { return nil }
            rssKiB = rss
            rssAnonKiB = m(\.rssAnonKiB) ?? 0
            rssFileKiB = m(\.rssFileKiB) ?? 0
            pssKiB = m(\.pssKiB)
            privateDirtyKiB = m(\.privateDirtyKiB)
            threads = m(\.threads) ?? 0
        }

        /// The median of each figure's difference `with - without`, pair by pair.
        init?(medianDifferenceOf pairs: [(without: ProcMemoryBreakdown, with: ProcMemoryBreakdown)]) {
            func d(_ f: (ProcMemoryBreakdown) -> Int?) -> Double? {
                Format.median(pairs.compactMap { p in f(p.with).flatMap { w in f(p.without).map { Double(w - $0) } } }).map(Format.tenth)
            }
            guard let rss = d(\.rssKiB) else { return nil }
            rssKiB = rss
            rssAnonKiB = d(\.rssAnonKiB) ?? 0
            rssFileKiB = d(\.rssFileKiB) ?? 0
            pssKiB = d(\.pssKiB)
            privateDirtyKiB = d(\.privateDirtyKiB)
            threads = d(\.threads) ?? 0
        }
    }

    var machines: Int
    var rounds: Int
    var settleS: Double
    var complete = true
    var without: Figures?
    var with: Figures?
    /// The median of the differences (with - without), round by round.
    var delta: Figures?
    var runs: [Run] = []

    enum CodingKeys: String, CodingKey {
        case machines, rounds, complete, without, with, delta, runs
        case settleS = "settle_s"
    }

    init(machines: Int, rounds: Int, settleS: Double) {
        self.machines = machines
        self.rounds = rounds
        self.settleS = settleS
    }

    mutating func summarize() {
        without = Figures(medianOf: runs.filter { !$0.metrics }.map(\.memory))
        with = Figures(medianOf: runs.filter(\.metrics).map(\.memory))
        let pairs = Dictionary(grouping: runs, by: \.round).values.compactMap { runs -> (ProcMemoryBreakdown, ProcMemoryBreakdown)? in
            guard let off = runs.first(where: { !$0.metrics }), let on = runs.first(where: \.metrics) else { return nil }
            return (off.memory, on.memory)
        }
        delta = Figures(medianDifferenceOf: pairs.map { (without: $0.0, with: $0.1) })
    }

    func rows(into table: inout Table) {
        let pairs = Set(runs.map(\.round)).count
        table.add(
            "idle memory",
            "\(pairs) round\(pairs == 1 ? "" : "s") of --metrics none / 127.0.0.1:<port>, alternating, \(machines) running machines, \(Format.tenth(settleS)) s settle; medians")
        guard let without, let with, let delta else {
            table.add("idle memory", "not measured")
            return
        }
        func kib(_ v: Double) -> String { String(format: "%.1f MiB", v / 1024) }
        func signed(_ v: Double) -> String {
            (v < 0 ? "-" : "+") + String(format: "%.2f MiB (", abs(v) / 1024) + (v < 0 ? "-" : "+") + String(format: "%.0f KiB)", abs(v))
        }
        func row(_ label: String, _ path: KeyPath<Figures, Double>) {
            table.add(label, "\(kib(without[keyPath: path])) without, \(kib(with[keyPath: path])) with: \(signed(delta[keyPath: path]))")
        }
        func row(_ label: String, _ path: KeyPath<Figures, Double?>) {
            guard let a = without[keyPath: path], let b = with[keyPath: path], let d = delta[keyPath: path] else { return }
            table.add(label, "\(kib(a)) without, \(kib(b)) with: \(signed(d))")
        }
        row("VmRSS", \.rssKiB)
        row("RssAnon", \.rssAnonKiB)
        row("RssFile", \.rssFileKiB)
        row("Pss", \.pssKiB)
        row("Private_Dirty", \.privateDirtyKiB)
        table.add("threads", String(format: "%.0f without, %.0f with", without.threads, with.threads))
    }
}
