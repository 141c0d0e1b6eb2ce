@testable import ECPEngine
import ECPProtocol
import Foundation
import Testing

/// Writes a state table whose rows may carry a policy (JSON object text).
func writeTable(_ path: String, rows: [(uuid: String, name: String, desired: String, policy: String?)]) throws {
    let machines = rows.map { r in
        let policy = r.policy.map { #","policy":\#($0)"# } ?? ""
        return #""\#(r.uuid)":{"name":"\#(r.name)","desired":"\#(r.desired)","observed":"\#(r.desired)","updated_at":"2026-11-25T20:31:07.123Z"\#(policy)}"#
    }
    let text = #"{"version":1,"worker":"t1","saved_at":"2026-11-25T20:31:07.123Z","machines":{\#(machines.joined(separator: ","))}}"#
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
}

@Suite("Restore policy: set_policy, order, up delays")
struct RestorePolicyTests {
    @Test("set_policy merges, null clears, the policy is on disk before its result, and report shows every member")
    func setPolicy() throws {
        let node = try NodeFile([("m1", false)])
        let path = temporaryStatePath()
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path)
        let uuid = NodeFile.uuid(0)

        engine.submit(#"{"v":1,"id":"p1","op":"set_policy","machine":"m1","args":{"order":10,"up_delay_ms":5000,"retries":3,"host_stop":"managedsave"}}"#)
        let first = try #require(sink.result("p1"))
        #expect(first["ok"] as? Bool == true)
        #expect(first["changed"] as? Bool == true)
        #expect(first["state"] as? String == "shutoff")
        let policy = try #require((first["data"] as? [String: Any])?["policy"] as? [String: Any])
        #expect(policy["order"] as? Int == 10 && policy["up_delay_ms"] as? Int == 5000)
        #expect(policy["retries"] as? Int == 3 && policy["host_stop"] as? String == "managedsave")
        var table = try StateTable.parse(Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(table.machines[uuid]?.policy == RestorePolicy(order: 10, upDelayMs: 5000, retries: 3, hostStop: .managedsave))
        #expect(table.machines[uuid]?.desired == "shutoff", "a machine new to the table takes its observed state as desired")

        engine.submit(#"{"v":1,"id":"p2","op":"set_policy","machine":"\#(uuid)","args":{"retries":null,"order":2}}"#)
        let second = try #require((sink.result("p2")?["data"] as? [String: Any])?["policy"] as? [String: Any])
        #expect(second["order"] as? Int == 2 && second["up_delay_ms"] as? Int == 5000)
        #expect(second["retries"] as? Int == RestoreSettings.defaultRetries, "cleared: back to --restore-retries")
        #expect(second["host_stop"] as? String == "managedsave")
        table = try StateTable.parse(Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(table.machines[uuid]?.policy == RestorePolicy(order: 2, upDelayMs: 5000, hostStop: .managedsave))

        engine.submit(#"{"v":1,"id":"p3","op":"set_policy","machine":"m1"}"#)
        #expect(sink.result("p3")?["changed"] as? Bool == false)

        engine.submit(#"{"v":1,"id":"p4","op":"set_policy","machine":"m1","args":{"order":null,"up_delay_ms":null,"host_stop":null}}"#)
        let cleared = try #require((sink.result("p4")?["data"] as? [String: Any])?["policy"] as? [String: Any])
        #expect(cleared["order"] is NSNull, "no order is written as null")
        #expect(cleared["host_stop"] as? String == "shutdown" && cleared["up_delay_ms"] as? Int == 0)
        table = try StateTable.parse(Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(table.machines[uuid]?.policy == nil, "an all-default policy leaves the row")

        engine.submit(#"{"v":1,"id":"p5","op":"set_policy","machine":"m1","args":{"order":7}}"#)
        _ = try #require(sink.result("p5"))
        engine.submit(#"{"v":1,"id":"r","op":"report"}"#)
        let report = try #require(sink.result("r")?["data"] as? [String: Any])
        let row = try #require((report["machines"] as? [String: Any])?[uuid] as? [String: Any])
        let shown = try #require(row["policy"] as? [String: Any])
        #expect(shown["order"] as? Int == 7 && shown["retries"] as? Int == 2 && shown["host_stop"] as? String == "shutdown")
        #expect(shown["up_delay_ms"] as? Int == 0)

        engine.submit(#"{"v":1,"id":"p6","op":"set_policy","machine":"nope","args":{"order":1}}"#)
        let missing = try #require(sink.result("p6"))
        #expect(missing["ok"] as? Bool == false)
        #expect((missing["error"] as? [String: Any])?["code_name"] as? String == "VIR_ERR_NO_DOMAIN")
        #expect(engine.store.snapshot().machines.count == 1, "a failed set_policy adds nothing")
    }

    static let badArguments: [(args: String, field: String)] = [
        (#"{"order":1001}"#, "args.order"),
        (#"{"order":-1}"#, "args.order"),
        (#"{"order":"1"}"#, "args.order"),
        (#"{"order":1.5}"#, "args.order"),
        (#"{"up_delay_ms":600001}"#, "args.up_delay_ms"),
        (#"{"retries":11}"#, "args.retries"),
        (#"{"retries":true}"#, "args.retries"),
        (#"{"host_stop":"sleep"}"#, "args.host_stop"),
        (#"{"host_stop":3}"#, "args.host_stop"),
        (#"{"order":99999999999999999999999}"#, "args.order"),
    ]

    @Test("set_policy's bad arguments are refused, naming the field, and change nothing", arguments: badArguments.indices)
    func badPolicy(_ i: Int) throws {
        let (args, field) = Self.badArguments[i]
        let node = try NodeFile([("m1", false)])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)
        engine.submit(#"{"v":1,"id":"b","op":"set_policy","machine":"m1","args":\#(args)}"#)
        let refused = try #require(sink.wait { $0.type == "request_error" })
        #expect(refused["reason"] as? String == "invalid_field")
        #expect(refused["field"] as? String == field)
        #expect((refused["detail"] as? String)?.contains(String(field.dropFirst(5))) == true)
        #expect(engine.store.snapshot().machines.isEmpty)
    }

    static let badHostStop: [(args: String, field: String)] = [
        (#"{"mode":"none"}"#, "args.mode"),
        (#"{"mode":"suspend"}"#, "args.mode"),
        (#"{"timeout_ms":-1}"#, "args.timeout_ms"),
        (#"{"timeout_ms":"5s"}"#, "args.timeout_ms"),
        (#"{"parallel":0}"#, "args.parallel"),
        (#"{"parallel":257}"#, "args.parallel"),
    ]

    @Test("host_stop's bad arguments are refused before anything stops", arguments: badHostStop.indices)
    func badHostStopArguments(_ i: Int) throws {
        let (args, field) = Self.badHostStop[i]
        let node = try NodeFile([("m1", true)])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)
        engine.submit(#"{"v":1,"id":"h","op":"host_stop","args":\#(args)}"#)
        let refused = try #require(sink.wait { $0.type == "request_error" })
        #expect(refused["field"] as? String == field)
        engine.submit(#"{"v":1,"id":"s","op":"status","machine":"m1"}"#)
        #expect(sink.result("s")?["state"] as? String == "running")
    }

    @Test("restore goes by order, lowest first, machines without one last, each order after the largest up delay of what the one before started")
    func orderAndDelays() throws {
        let node = try NodeFile([("a", false), ("b", false), ("c", false), ("d", false), ("e", true)])
        let path = temporaryStatePath()
        try writeTable(path, rows: [
            (NodeFile.uuid(0), "a", "running", #"{"order":1,"up_delay_ms":600}"#),
            (NodeFile.uuid(1), "b", "running", #"{"order":1,"up_delay_ms":100}"#),
            (NodeFile.uuid(2), "c", "running", #"{"order":2}"#),
            (NodeFile.uuid(3), "d", "running", nil),
            // Already running: it starts nothing, so its up delay is not waited for.
            (NodeFile.uuid(4), "e", "running", #"{"order":2,"up_delay_ms":5000}"#),
        ])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path, restore: .init(parallel: 4))
        let began = Date()
        let summary = try runRestore(engine, trigger: "startup", table: .present(machines: 5))
        #expect(summary.counts["started"] == 4 && summary.counts["already_running"] == 1)
        #expect(Date().timeIntervalSince(began) < 4, "e's 5 s up delay is not waited for: it started nothing")
        let outcomes = sink.all { $0.type == "restore.outcome" }
        let byName = Dictionary(uniqueKeysWithValues: outcomes.map { ($0["machine"] as! String, $0) })
        let names = outcomes.map { $0["machine"] as! String }
        #expect(Set(names.prefix(2)) == ["a", "b"], "order 1 first: \(names)")
        #expect(Set(names[2...3]) == ["c", "e"] && names.last == "d", "then order 2, then no order: \(names)")
        let firstDone = max(byName["a"]!.at, byName["b"]!.at)
        let cStarted = byName["c"]!.at.addingTimeInterval(-(byName["c"]!["duration_ms"] as! Double) / 1000)
        #expect(cStarted.timeIntervalSince(firstDone) >= 0.58, "order 2 began \(cStarted.timeIntervalSince(firstDone)) s after order 1 ended; a's up delay is 600 ms")
        #expect(byName["a"]!["order"] as? Int == 1 && byName["c"]!["order"] as? Int == 2)
        #expect(byName["d"]!["order"] is NSNull)
        #expect(outcomes.allSatisfy { $0["attempts"] as? Int == 1 })
    }

    @Test("a command for a machine whose order has not come waits for its restore")
    func commandWaitsForItsTurn() throws {
        let node = try NodeFile([("first", false), ("later", false)])
        let path = temporaryStatePath()
        try writeTable(path, rows: [
            (NodeFile.uuid(0), "first", "running", #"{"order":1,"up_delay_ms":500}"#),
            (NodeFile.uuid(1), "later", "running", #"{"order":2}"#),
        ])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path)
        let done = DispatchSemaphore(value: 0)
        engine.restore(trigger: "command", table: .present(machines: 2)) { _ in done.signal() }
        // Order 1 is done: the restore holds every machine, and order 2 waits out the up delay.
        _ = try #require(sink.wait { $0.type == "restore.outcome" && $0["machine"] as? String == "first" })
        engine.submit(#"{"v":1,"id":"s","op":"status","machine":"later"}"#)
        let status = try #require(sink.result("s"))
        #expect(status["state"] as? String == "running", "answered after its restore started it")
        let later = try #require(sink.wait { $0.type == "restore.outcome" && $0["machine"] as? String == "later" })
        #expect(later.at <= status.at)
        #expect(done.wait(timeout: .now() + 10) == .success)
    }

    @Test("each machine's time limit counts from its admission: machines one at a time with staggered starts all start")
    func timeLimitFromAdmission() throws {
        let node = try NodeFile([("t0", false), ("t1", false), ("t2", false)])
        let path = temporaryStatePath()
        try writeTable(path, rows: (0..<3).map { (NodeFile.uuid($0), "t\($0)", "running", nil) })
        let sink = MemorySink()
        // One at a time (two threads: one stays for commands), 300 ms between starts, 500 ms each:
        // the third is admitted 300 ms and starts 600 ms after the stage opened.
        let engine = makeEngine(
            uri: node.uri, sink: sink, maxParallel: 2, stateFile: path,
            restore: .init(parallel: 4, staggerMs: 300, machineTimeoutMs: 500))
        let summary = try runRestore(engine)
        #expect(summary.counts["started"] == 3, "\(summary.counts)")
    }

    @Test("two rows with one name in different orders: the earlier order's machine is not held up by the later one's")
    func sharedNameStages() throws {
        let node = try NodeFile([("dup", false)])
        let path = temporaryStatePath()
        // A stale row (not defined: its name now belongs to uuid(0)) whose key sorts first.
        try writeTable(path, rows: [
            ("00000000-0000-4000-8000-000000000001", "dup", "running", #"{"order":5}"#),
            (NodeFile.uuid(0), "dup", "running", #"{"order":1}"#),
        ])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path)
        let summary = try runRestore(engine)
        #expect(summary.counts["started"] == 1 && summary.counts["missing"] == 1, "\(summary.counts)")
        #expect(summary.durationMs < 5_000, "no machine waited for a time limit: \(summary.durationMs) ms")
    }

    @Test("a graceful stop during a restore keeps the desired states of the machines it has not reached")
    func stopDuringRestoreKeepsDesired() throws {
        let node = try NodeFile([("early", false), ("late", false)])
        let path = temporaryStatePath()
        try writeTable(path, rows: [
            (NodeFile.uuid(0), "early", "running", #"{"order":1,"up_delay_ms":3000}"#),
            (NodeFile.uuid(1), "late", "running", #"{"order":2}"#),
        ])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path)
        let done = DispatchSemaphore(value: 0)
        engine.restore(trigger: "startup", table: .present(machines: 2)) { _ in done.signal() }
        _ = try #require(sink.wait { $0.type == "restore.outcome" && $0["machine"] as? String == "early" })
        // What the worker's graceful stop records, while `late` waits for its order.
        engine.store.recordShutdown(observations: [(NodeFile.uuid(0), "early", "running"), (NodeFile.uuid(1), "late", "shutoff")])
        engine.store.flush()
        let table = try StateTable.parse(Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(table.machines[NodeFile.uuid(1)]?.desired == "running", "late's desired state stands")
        #expect(done.wait(timeout: .now() + 10) == .success)
    }
}

@Suite("Host stop on the test driver")
struct HostStopTests {
    /// s1..s4 running, s5 off; policies as a host would have them.
    func host() throws -> (NodeFile, String) {
        let node = try NodeFile([("s1", true), ("s2", true), ("s3", true), ("s4", true), ("s5", false)])
        let path = temporaryStatePath()
        try writeTable(path, rows: [
            (NodeFile.uuid(0), "s1", "running", #"{"order":1,"host_stop":"shutdown"}"#),
            (NodeFile.uuid(1), "s2", "running", #"{"order":2,"host_stop":"managedsave"}"#),
            (NodeFile.uuid(2), "s3", "running", #"{"host_stop":"destroy"}"#),
            (NodeFile.uuid(3), "s4", "running", #"{"order":3,"host_stop":"none"}"#),
        ])
        return (node, path)
    }

    @Test("host_stop stops in reverse order as each policy says, keeps what ran as desired, and the next restore brings it back")
    func hostStopThenRestore() throws {
        let (node, path) = try host()
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path)
        // s5 is off and no command touched it: it must stay off after the reboot.
        engine.submit(#"{"v":1,"id":"h","op":"host_stop","args":{"timeout_ms":2000}}"#)
        let result = try #require(sink.result("h", timeout: 20))
        #expect(result["ok"] as? Bool == true, "\(result)")
        let data = try #require(result["data"] as? [String: Any])
        #expect(data["type"] as? String == "host_stop.summary" && data["total"] as? Int == 5)
        let counts = try #require(data["counts"] as? [String: Int])
        #expect(counts == ["shut_down": 1, "saved": 1, "destroyed": 1, "left_running": 1, "already_off": 1, "forced": 0, "failed": 0])
        #expect((data["outcomes"] as? [Any])?.count == 5)

        let outcomes = sink.all { $0.type == "host_stop.outcome" }
        let names = outcomes.map { $0["machine"] as! String }
        #expect(Set(names.prefix(2)) == ["s3", "s5"] && Array(names.suffix(3)) == ["s4", "s2", "s1"], "reverse order: \(names)")
        let action = Dictionary(uniqueKeysWithValues: outcomes.map { ($0["machine"] as! String, $0["action"] as! String) })
        #expect(action == ["s1": "shut_down", "s2": "saved", "s3": "destroyed", "s4": "left_running", "s5": "already_off"])
        #expect(outcomes.allSatisfy { $0.topic == "restore.t1" })
        let summary = try #require(sink.wait { $0.type == "host_stop.summary" })
        #expect(summary.topic == "restore.t1")

        var table = try StateTable.parse(Data(contentsOf: URL(fileURLWithPath: path)))
        for i in 0..<4 { #expect(table.machines[NodeFile.uuid(i)]?.desired == "running", "s\(i + 1)") }
        #expect(table.machines[NodeFile.uuid(4)]?.desired == "shutoff")
        #expect(table.machines[NodeFile.uuid(0)]?.observed == "shutoff")

        // The worker's graceful stop after a host stop sees the machines off: desired stands.
        engine.store.recordShutdown(observations: (0..<3).map { (NodeFile.uuid($0), "s\($0 + 1)", "shutoff") })
        engine.store.flush()
        table = try StateTable.parse(Data(contentsOf: URL(fileURLWithPath: path)))
        for i in 0..<3 { #expect(table.machines[NodeFile.uuid(i)]?.desired == "running", "pinned: s\(i + 1)") }

        let restored = try runRestore(engine)
        #expect(restored.counts["started"] == 3 && restored.counts["already_running"] == 1 && restored.counts["skipped"] == 1)
        let s2 = try #require(sink.wait { $0.type == "restore.outcome" && $0["machine"] as? String == "s2" })
        #expect(s2["action"] as? String == "started")
        #expect(s2["from_save"] as? Bool == true, "s2 resumed from its managed save")
        let s1 = try #require(sink.wait { $0.type == "restore.outcome" && $0["machine"] as? String == "s1" })
        #expect(s1["from_save"] == nil)
    }

    @Test("a mode in the command applies to every machine but those whose policy leaves them running")
    func modeOverride() throws {
        let (node, path) = try host()
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path)
        engine.submit(#"{"v":1,"id":"h","op":"host_stop","args":{"mode":"destroy","parallel":1}}"#)
        let data = try #require(sink.result("h", timeout: 20)?["data"] as? [String: Any])
        let counts = try #require(data["counts"] as? [String: Int])
        #expect(counts["destroyed"] == 3 && counts["left_running"] == 1 && counts["already_off"] == 1)
        let modes = sink.all { $0.type == "host_stop.outcome" }.map { $0["mode"] as? String }
        #expect(modes.filter { $0 == "none" }.count == 1 && modes.filter { $0 == "destroy" }.count == 4)
    }
}
