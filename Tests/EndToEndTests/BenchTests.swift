import ECPProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ecp-bench end to end: each subcommand starts its own worker (libvirt test driver, free
/// ports), runs a small load, and prints one JSON object whose figures must add up.
@Suite("ecp-bench", .serialized)
struct BenchTests {
    @Test("throughput --spawn: every command answered and ok, percentiles in order, memory read")
    func throughput() throws {
        let run = try BenchRun.run(["throughput", "--spawn", "--count", "2000", "--json"])
        #expect(run.status == 0, "\(run)")
        let json = try run.json()
        #expect(json["benchmark"]?.stringValue == "throughput", "\(run)")
        #expect(json["spawned"]?.boolValue == true)
        #expect(json["complete"]?.boolValue == true, "\(run)")
        #expect(json["count"]?.intValue == 2000)
        #expect(json["sent"]?.intValue == 2000)
        #expect(json["answered"]?.intValue == 2000)
        #expect(json["ok"]?.intValue == 2000, "\(run)")
        #expect(json["failed"]?.intValue == 0, "\(run)")
        #expect(json["window"]?.intValue == 64)
        #expect((json["commands_per_s"]?.doubleValue ?? 0) > 0)
        #expect((json["elapsed_s"]?.doubleValue ?? 0) > 0)

        // The default mix, status=8,suspend=1,resume=1: suspend and resume alternate on the
        // machine, so each of them changes its state.
        let ops = json["ops"]
        #expect(ops?["status"]?["sent"]?.intValue == 1600)
        #expect(ops?["suspend"]?["sent"]?.intValue == 200)
        #expect(ops?["resume"]?["sent"]?.intValue == 200)
        #expect(ops?["suspend"]?["unchanged"]?.intValue == 0, "\(run)")
        #expect(ops?["resume"]?["unchanged"]?.intValue == 0, "\(run)")

        let latency = try #require(json["latency_us"])
        #expect(latency["count"]?.intValue == 2000)
        let order = ["min", "p50", "p90", "p99", "p99_9", "max"].map { latency[$0]?.doubleValue ?? -1 }
        #expect(order.allSatisfy { $0 > 0 }, "\(latency)")
        #expect(order == order.sorted(), "percentiles out of order: \(latency)")

        let rss = try #require(json["rss_kib"], "\(run)")
        #expect((rss["before"]?.intValue ?? 0) > 1024, "\(rss)")
        #expect((rss["after"]?.intValue ?? 0) > 1024, "\(rss)")
    }

    @Test("restore --machines 50: all 50 started, every outcome accounted for")
    func restore() throws {
        let run = try BenchRun.run(["restore", "--machines", "50", "--json"])
        #expect(run.status == 0, "\(run)")
        let json = try run.json()
        #expect(json["benchmark"]?.stringValue == "restore")
        #expect(json["complete"]?.boolValue == true, "\(run)")
        #expect(json["machines"]?.intValue == 50)
        #expect(json["total"]?.intValue == 50, "\(run)")
        #expect(json["counts"]?["started"]?.intValue == 50, "\(run)")
        #expect(json["outcomes_expected"]?.intValue == 50)
        #expect(json["outcomes_reported"]?.intValue == 50, "\(run)")
        let received = json["outcomes_received"]?.intValue ?? -1
        #expect(received >= 0 && received <= 50, "\(run)")
        let workerMs = json["worker_ms"]?.doubleValue ?? 0
        #expect(workerMs > 0, "\(run)")
        // The wall time is there when the summary came on the events socket, and then it holds
        // the worker's own figure.
        if let wall = json["wall_ms"]?.doubleValue {
            #expect(json["summary_source"]?.stringValue == "events")
            #expect(wall >= workerMs, "\(run)")
        } else {
            #expect(json["summary_source"]?.stringValue == "report", "\(run)")
        }
    }

    @Test("startup --runs 2: both runs answer, figures in order")
    func startup() throws {
        let run = try BenchRun.run(["startup", "--runs", "2", "--json"])
        #expect(run.status == 0, "\(run)")
        let json = try run.json()
        #expect(json["benchmark"]?.stringValue == "startup")
        #expect(json["runs"]?.intValue == 2)
        #expect(json["failed_runs"]?.intValue == 0, "\(run)")
        for name in ["to_ping_ms", "to_first_event_ms", "idle_rss_kib"] {
            let spread = try #require(json[name], "\(name) missing: \(run)")
            #expect(spread["values"]?.arrayValue?.count == 2, "\(name): \(spread)")
            let (low, mid, high) = (spread["min"]?.doubleValue ?? -1, spread["median"]?.doubleValue ?? -1, spread["max"]?.doubleValue ?? -1)
            #expect(low > 0 && low <= mid && mid <= high, "\(name): \(spread)")
        }
        #expect((json["idle_rss_kib"]?["median"]?.doubleValue ?? 0) > 1024)
        let types = json["first_event_types"]?.objectValue ?? [:]
        #expect(types.values.compactMap(\.intValue).reduce(0, +) == 2, "\(run)")
    }

    @Test("metrics --test-machines 20: every scrape 200 on one connection, a vstate series per machine, both idle workers measured")
    func metrics() throws {
        let run = try BenchRun.run(
            ["metrics", "--test-machines", "20", "--count", "5", "--rounds", "1", "--settle-s", "0", "--json"])
        #expect(run.status == 0, "\(run)")
        let json = try run.json()
        #expect(json["benchmark"]?.stringValue == "metrics", "\(run)")
        #expect(json["complete"]?.boolValue == true, "\(run)")

        let scrape = try #require(json["scrape"]?.objectValue, "\(run)")
        #expect(scrape["test_machines"]?.intValue == 20)
        #expect(scrape["count"]?.intValue == 5)
        #expect(scrape["ok"]?.intValue == 5, "\(run)")
        #expect(scrape["failed"]?.intValue == 0, "\(run)")
        #expect(scrape["connections"]?.intValue == 1, "keep-alive: \(run)")
        #expect(scrape["vstate_series"]?.intValue == 20, "\(run)")
        #expect((scrape["ready_ms"]?.doubleValue ?? 0) > 0, "\(run)")
        #expect((scrape["worker_rss_kib"]?.intValue ?? 0) > 1024, "\(run)")
        let bytes = try #require(scrape["body_bytes"], "\(run)")
        #expect((bytes["min"]?.intValue ?? 0) > 0, "\(bytes)")
        let latency = try #require(scrape["latency_ms"], "\(run)")
        #expect(latency["count"]?.intValue == 5)
        let order = ["min", "p50", "p90", "p99", "max"].map { latency[$0]?.doubleValue ?? -1 }
        #expect(order.allSatisfy { $0 > 0 }, "\(latency)")
        #expect(order == order.sorted(), "percentiles out of order: \(latency)")

        let idle = try #require(json["idle_memory"]?.objectValue, "\(run)")
        #expect(idle["complete"]?.boolValue == true, "\(run)")
        #expect(idle["runs"]?.arrayValue?.count == 2, "\(run)")
        for side in ["without", "with"] {
            let figures = try #require(idle[side], "\(side): \(run)")
            #expect((figures["rss_kib"]?.doubleValue ?? 0) > 1024, "\(side): \(figures)")
            #expect((figures["rss_anon_kib"]?.doubleValue ?? 0) > 0, "\(side): \(figures)")
            #expect((figures["rss_file_kib"]?.doubleValue ?? 0) > 0, "\(side): \(figures)")
            #expect((figures["threads"]?.doubleValue ?? 0) > 0, "\(side): \(figures)")
        }
        let delta = try #require(idle["delta"], "\(run)")
        #expect(delta["rss_kib"]?.doubleValue != nil, "\(delta)")
    }

    @Test("soak --seconds 3: every attack runs, the normal client is served, the report gives figures and PASS")
    func soak() throws {
        let run = try BenchRun.run(["soak", "--seconds", "3", "--baseline-s", "1", "--max-p99-ms", "1000"])
        #expect(run.status == 0, "\(run)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        func row(_ label: String) -> String? {
            lines.first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(label + "  ") }
        }
        #expect(lines.first?.hasPrefix("ecp-bench soak: started worker, pid ") == true, "\(run)")
        for label in ["baseline", "0-3 s", "under attack"] {
            let text = try #require(row(label), "no \(label) row: \(run)")
            #expect(text.contains("p50 ") && text.contains("p99 ") && text.contains("max "), "\(text)")
        }
        for label in ["rss start", "rss peak", "rss end"] {
            #expect(row(label)?.contains(" MiB (") == true, "\(label): \(run)")
        }
        #expect(row("normal client")?.contains(" 0 unanswered") == true, "\(run)")
        let attacks = lines.filter { $0.trimmingCharacters(in: .whitespaces).hasPrefix("attack  ") }
        #expect(attacks.count == 10, "\(run)")
        #expect(attacks.allSatisfy { !$0.contains(" 0 sent") }, "\(run)")
        #expect(row("verdict")?.hasSuffix("PASS") == true, "\(run)")
        #expect(run.stderr.contains("soak: baseline"), "\(run)")
    }

    @Test("a bad mix is refused before anything starts")
    func badMix() throws {
        let run = try BenchRun.run(["throughput", "--spawn", "--mix", "start=1"])
        #expect(run.status == 64, "\(run)")
        #expect(run.stderr.contains("op start cannot be in a mix"), "\(run)")
    }
}

/// ecp-bench on the real hypervisor: guests of the bench's own on `qemu:///system`, measured and
/// then removed. Part of the hypervisor tier (see HypervisorTests.swift): skipped when the daemon
/// does not answer, unless the tier is required.
@Suite(
    "ecp-bench on qemu:///system", .serialized,
    .enabled(if: HypervisorHost.tierEnabled, "qemu:///system does not answer; the reason is printed"))
struct BenchHypervisorTests {
    /// The names of every domain of the host.
    static func domains() throws -> [String] {
        let virsh = try #require(HypervisorHost.executable("virsh"))
        let out = try HypervisorHost.run(virsh, ["-c", HypervisorHost.uri, "list", "--all", "--name"], timeout: .seconds(30))
        guard out.ok else { throw HypervisorError(description: "virsh list failed: \(out.text)") }
        return out.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    @Test("latency and restore with --uri qemu:///system --guests 2: figures printed, the bench's guests gone afterwards, the host's others untouched")
    func realHost() throws {
        try HypervisorHost.require()
        let lock = try HypervisorTierLock()
        defer { withExtendedLifetime(lock) {} }
        let others = try Self.domains().filter { !$0.hasPrefix("ecp-bench-") }.sorted()

        let latency = try BenchRun.run(
            ["latency", "--spawn", "--uri", HypervisorHost.uri, "--guests", "2", "--count", "200", "--mix", "status=1"])
        #expect(latency.status == 0, "\(latency)")
        let lines = latency.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        func row(_ label: String) -> String? { lines.first { $0.hasPrefix(label + "  ") } }
        let title = try #require(lines.first, "\(latency)")
        #expect(title.contains("machines ecp-bench-") && title.hasSuffix("-2"), "\(latency)")
        let host = try #require(row("host"), "\(latency)")
        #expect(host.contains(HypervisorHost.uri) && host.contains("QEMU") && host.contains("2 guests of the bench"), "\(host)")
        #expect(row("commands")?.hasSuffix("200 answered of 200") == true, "\(latency)")
        #expect(row("failed")?.hasSuffix(" 0") == true, "\(latency)")
        for p in ["p50", "p99", "max"] {
            #expect(row("latency \(p)")?.hasSuffix(" µs") == true, "\(latency)")
        }
        #expect(try Self.domains().filter { $0.hasPrefix("ecp-bench-") }.isEmpty, "guests left after latency")

        let restore = try BenchRun.run(["restore", "--uri", HypervisorHost.uri, "--guests", "2", "--rounds", "1", "--json"], limit: .seconds(240))
        #expect(restore.status == 0, "\(restore)")
        let json = try restore.json()
        #expect(json["benchmark"]?.stringValue == "restore")
        #expect(json["complete"]?.boolValue == true, "\(restore)")
        #expect(json["host"]?["uri"]?.stringValue == HypervisorHost.uri, "\(restore)")
        #expect(json["host"]?["guests"]?.intValue == 2, "\(restore)")
        #expect(json["host"]?["hypervisor"]?.stringValue == "QEMU", "\(restore)")
        let runs = try #require(json["runs"]?.arrayValue, "\(restore)")
        #expect(runs.count == 2, "\(restore)")
        #expect(runs.allSatisfy { $0["counts"]?["started"]?.intValue == 2 }, "\(restore)")
        #expect(runs.contains { $0["restore_parallel"]?.intValue == 1 }, "\(restore)")
        for mode in ["parallel", "sequential"] {
            #expect((json[mode]?["worker_ms_median"]?.doubleValue ?? 0) > 0, "\(mode): \(restore)")
        }
        #expect((json["ratio_worker"]?.doubleValue ?? 0) > 0, "\(restore)")

        let after = try Self.domains()
        #expect(after.filter { $0.hasPrefix("ecp-bench-") }.isEmpty, "guests left: \(after)")
        #expect(after.filter { !$0.hasPrefix("ecp-bench-") }.sorted() == others, "the host's other domains changed: \(after)")
    }
}

/// One run of the ecp-bench executable, its output in files (no pipe to fill), with a time limit.
private struct BenchRun: CustomStringConvertible {
    var arguments: [String]
    var status: Int32
    var stdout: String
    var stderr: String

    var description: String {
        "ecp-bench \(arguments.joined(separator: " ")): status \(status)\n--- stdout ---\n\(stdout)--- stderr ---\n\(stderr)"
    }

    /// The one JSON object of standard output.
    func json() throws -> JSONValue {
        let value = try JSONDecoder().decode(JSONValue.self, from: Data(stdout.utf8))
        guard value.objectValue != nil else { throw BenchHarnessError("stdout is not a JSON object: \(self)") }
        return value
    }

    static func run(_ arguments: [String], limit: Duration = .seconds(120)) throws -> BenchRun {
        let binaries = try BenchBinaries.find()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ecp-bench-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let out = directory.appendingPathComponent("stdout")
        let err = directory.appendingPathComponent("stderr")
        for file in [out, err] {
            guard FileManager.default.createFile(atPath: file.path, contents: nil) else {
                throw BenchHarnessError("cannot create \(file.path)")
            }
        }

        let process = Process()
        process.executableURL = binaries.bench
        var all = arguments
        // restore and startup, and --spawn, start a worker: the one found for this test run.
        if let worker = binaries.worker, !arguments.contains("--worker") {
            all += ["--worker", worker.path]
        }
        process.arguments = all
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ECP_") }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        let deadline = ContinuousClock.now + limit
        while process.isRunning && ContinuousClock.now < deadline {
            usleep(20_000)
        }
        if process.isRunning {
            // SIGTERM: the bench stops the workers it started, then exits.
            process.terminate()
            process.waitUntilExit()
        }
        return BenchRun(
            arguments: arguments, status: process.terminationStatus,
            stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }
}

/// Where the built ecp-bench and ecp-worker are: `ECP_BENCH_BIN`, else beside `ECP_WORKER_BIN`,
/// else where ``BuiltExecutable`` finds it. Without `ECP_WORKER_BIN` the bench takes the worker
/// built beside it.
private enum BenchBinaries {
    static func find() throws -> (bench: URL, worker: URL?) {
        let environment = ProcessInfo.processInfo.environment
        let worker = environment["ECP_WORKER_BIN"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
        if environment["ECP_BENCH_BIN"]?.isEmpty != false,
            let beside = worker?.deletingLastPathComponent().appendingPathComponent("ecp-bench"),
            BuiltExecutable.isExecutableFile(beside.path) {
            return (beside, worker)
        }
        return (try BuiltExecutable.url("ecp-bench", variable: "ECP_BENCH_BIN"), worker)
    }
}

private struct BenchHarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
