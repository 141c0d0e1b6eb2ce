import ECPConsole
import ECPProtocol
import Foundation
import Testing
import WorkerLauncher
import ZeroMQ

/// The console's model fed by real workers on libvirt's test driver, through the console's own
/// connection threads.
@Suite("following workers")
struct FollowingTests {
    static let machines = [
        TestDriverMachine(name: "web1", uuid: "7f3c0000-0000-4000-8000-000000000001", running: false),
        TestDriverMachine(name: "db1", uuid: "7f3c0000-0000-4000-8000-000000000002", running: true, memoryKiB: 131_072),
        TestDriverMachine(name: "cache1", uuid: "7f3c0000-0000-4000-8000-000000000003", runState: .paused),
    ]

    /// A state and links following `workers`, stopped at the end of `body`.
    static func following<T>(_ workers: [TestWorker], _ body: (ConsoleState, [WorkerLink]) throws -> T) throws -> T {
        let specs = try workers.map { try $0.spec }
        let state = ConsoleState(workers: specs)
        let context = try Context()
        var timing = LinkTiming()
        timing.tickMs = 20
        let links = try specs.map { try WorkerLink(spec: $0, state: state, context: context, logger: quietLogger, timing: timing) }
        for link in links { link.start() }
        defer { for link in links { link.stop() } }
        return try body(state, links)
    }

    static func synced(_ state: ConsoleState, _ id: String) -> Bool {
        guard let h = host(state, id) else { return false }
        return h["synced"]?.boolValue == true && h["status"]?.stringValue == "up"
    }

    @Test("machines, states and memory come from the worker; changes by any client show")
    func machinesAndChanges() async throws {
        try await offPool { try Self.machinesAndChangesBody() }
    }

    static func machinesAndChangesBody() throws {
        let worker = try TestWorker(id: "follow-a", machines: machines)
        try worker.start()
        defer { worker.stop() }
        try following([worker]) { state, _ in
            #expect(eventually { synced(state, "follow-a") }, "caught up and up: \(String(describing: host(state, "follow-a")))")
            #expect(machineState(state, host: "follow-a", "web1") == "shutoff")
            #expect(machineState(state, host: "follow-a", "db1") == "running")
            #expect(machineState(state, host: "follow-a", "cache1") == "paused")
            let db1 = host(state, "follow-a")?["machines"]?.arrayValue?.first { $0["name"] == "db1" }
            #expect(db1?["memory_kib"]?.intValue == 131_072, "\(String(describing: db1))")
            #expect(db1?["uuid"]?.stringValue == "7f3c0000-0000-4000-8000-000000000002")

            // Another client's commands: machine events and results move the model.
            #expect(try worker.command("start", machine: "web1")["ok"] == .bool(true))
            #expect(eventually { machineState(state, host: "follow-a", "web1") == "running" })
            #expect(try worker.command("resume", machine: "cache1")["ok"] == .bool(true))
            #expect(eventually { machineState(state, host: "follow-a", "cache1") == "running" })
            #expect(try worker.command("undefine", machine: "cache1")["ok"] == .bool(true))
            #expect(eventually { machineState(state, host: "follow-a", "cache1") == "undefined" })

            // A failure of another client's command is in the error list, with its record.
            let failure = try worker.command("suspend", machine: "nosuch")
            let summary = try #require(failure["error"]?["summary"]?.stringValue)
            #expect(eventually {
                snapshot(state)["errors"]?.arrayValue?.contains { $0["summary"]?.stringValue == summary } == true
            })
            let entry = snapshot(state)["errors"]?.arrayValue?.first { $0["summary"]?.stringValue == summary }
            #expect(entry?["record"]?["code_name"] == "VIR_ERR_NO_DOMAIN")
            #expect(entry?["host"] == "follow-a")
            // The startup restore is there, from `report`.
            #expect(host(state, "follow-a")?["restore"]?["summary"]?["trigger"] == "startup")
            #expect(host(state, "follow-a")?["lost"]?.intValue == 0)
        }
    }

    @Test("errors published before the console started come from the worker's replay")
    func errorsFromReplay() async throws {
        try await offPool { try Self.errorsFromReplayBody() }
    }

    static func errorsFromReplayBody() throws {
        let worker = try TestWorker(id: "follow-b", machines: machines)
        try worker.start()
        defer { worker.stop() }
        var summaries: [String] = []
        for name in ["gone1", "gone2", "gone3"] {
            summaries.append(try #require(try worker.command("start", machine: name)["error"]?["summary"]?.stringValue))
        }
        try following([worker]) { state, _ in
            #expect(eventually { synced(state, "follow-b") })
            let listed = snapshot(state)["errors"]?.arrayValue?.compactMap { $0["summary"]?.stringValue } ?? []
            #expect(listed == summaries, "in order, each once: \(listed)")
        }
    }

    @Test("a worker that stops is down after three heartbeats; its next run is caught up")
    func restart() async throws {
        try await offPool { try Self.restartBody() }
    }

    static func restartBody() throws {
        let worker = try TestWorker(id: "follow-c", machines: machines)
        try worker.start()
        defer { worker.stop() }
        try following([worker]) { state, _ in
            #expect(eventually { synced(state, "follow-c") })
            let firstRun = try #require(host(state, "follow-c")?["run"]?.stringValue)
            #expect(try worker.command("destroy", machine: "db1")["ok"] == .bool(true))
            #expect(eventually { machineState(state, host: "follow-c", "db1") == "shutoff" })
            worker.kill()
            #expect(eventually(.seconds(5)) { host(state, "follow-c")?["status"] == "down" })
            #expect(host(state, "follow-c")?["reason"]?.stringValue?.contains("no heartbeat") == true)
            try worker.start()
            let failure = try worker.command("start", machine: "after-restart")
            let newRun = try #require(failure["run"]?.stringValue)
            #expect(newRun != firstRun)
            #expect(eventually { synced(state, "follow-c") && host(state, "follow-c")?["run"]?.stringValue == newRun })
            // The new run's machines: db1 is back as the node file has it, and the restore ran.
            #expect(eventually { machineState(state, host: "follow-c", "db1") == "running" })
            let summary = failure["error"]?["summary"]?.stringValue
            #expect(eventually {
                snapshot(state)["errors"]?.arrayValue?.contains { $0["summary"]?.stringValue == summary && $0["run"]?.stringValue == newRun } == true
            })
        }
    }

    @Test("a worker that says it stops is down at once")
    func gracefulStop() async throws {
        try await offPool { try Self.gracefulStopBody() }
    }

    static func gracefulStopBody() throws {
        let worker = try TestWorker(id: "follow-d", machines: machines)
        try worker.start()
        try following([worker]) { state, _ in
            #expect(eventually { synced(state, "follow-d") })
            worker.stop()
            #expect(eventually(.seconds(5)) { host(state, "follow-d")?["status"] == "down" })
            #expect(host(state, "follow-d")?["reason"]?.stringValue?.contains("stopping") == true)
        }
    }

    @Test("a gap in the stream is filled from replay")
    func gapFilled() async throws {
        try await offPool { try Self.gapFilledBody() }
    }

    static func gapFilledBody() throws {
        // A worker whose events socket keeps one message per subscriber: a burst overflows it.
        let worker = try TestWorker(id: "follow-e", machines: machines, extra: ["--events-hwm", "1"])
        try worker.start()
        defer { worker.stop() }
        try following([worker]) { state, _ in
            #expect(eventually { synced(state, "follow-e") })
            // Many changes at once: the console's subscriber cannot take them all from a queue of 1.
            let context = try Context()
            let socket = try context.makeSocket(.dealer)
            defer { socket.close() }
            try socket.setLinger(milliseconds: 0)
            try socket.connect(worker.controlAddress)
            for i in 0..<200 {
                let op = i % 2 == 0 ? "suspend" : "resume"
                _ = try socket.send([Data(), Data("{\"v\":1,\"id\":\"g-\(i)\",\"op\":\"\(op)\",\"machine\":\"db1\"}".utf8)])
            }
            var replies = 0
            while replies < 200, try poll([.socket(socket)], timeoutMs: 10_000)[0].contains(.readable) {
                while (try socket.receive(dontWait: true)) != nil { replies += 1 }
            }
            #expect(replies == 200)
            let last = try worker.command("status", machine: "db1")
            let seq = try #require(last["seq"]?.intValue)
            #expect(eventually { (host(state, "follow-e")?["seq"]?.intValue ?? 0) >= seq })
            #expect(machineState(state, host: "follow-e", "db1") == "running")
            #expect(host(state, "follow-e")?["lost"]?.intValue == 0, "every message was recovered")
            #expect((host(state, "follow-e")?["gaps_filled"]?.intValue ?? 0) >= 1, "the burst made a gap, and it was filled")
        }
    }
}
