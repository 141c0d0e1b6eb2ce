@testable import ECPEngine
import ECPProtocol
import Foundation
import Libvirt
import Logging
import Testing

/// Writes a state table by hand.
func writeTable(_ path: String, _ rows: [(uuid: String, name: String, desired: String)]) throws {
    var machines: [String: Any] = [:]
    for r in rows {
        machines[r.uuid] = ["name": r.name, "desired": r.desired, "observed": r.desired, "updated_at": "2026-11-25T20:31:07.123Z"]
    }
    let table: [String: Any] = ["version": 1, "worker": "t1", "saved_at": "2026-11-25T20:31:07.123Z", "machines": machines]
    try JSONSerialization.data(withJSONObject: table).write(to: URL(fileURLWithPath: path))
}

/// Runs a restore and waits for its summary.
func runRestore(_ engine: Engine, trigger: String = "command", table: StateTableLoad? = nil) throws -> RestoreSummaryMessage {
    let done = DispatchSemaphore(value: 0)
    let box = Box<RestoreSummaryMessage>()
    engine.restore(trigger: trigger, table: table) { summary in
        box.value = summary
        done.signal()
    }
    guard done.wait(timeout: .now() + 20) == .success, let summary = box.value else {
        throw TestFailure("restore did not finish")
    }
    return summary
}

final class Box<T>: @unchecked Sendable {
    var value: T?
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

@Suite("State restore")
struct RestoreTests {
    struct Row: Sendable, CustomTestStringConvertible {
        let desired: String
        /// libvirt run state number in the node file; nil: the machine is not defined.
        let found: Int?
        let action: String
        let after: String?
        var testDescription: String { "desired \(desired), found \(found.map(String.init) ?? "undefined") → \(action)" }
    }

    static let table: [Row] = [
        Row(desired: "running", found: 5, action: "started", after: "running"),
        Row(desired: "running", found: 6, action: "started", after: "running"),
        Row(desired: "running", found: 3, action: "resumed", after: "running"),
        Row(desired: "running", found: 1, action: "already_running", after: "running"),
        Row(desired: "paused", found: 5, action: "started", after: "paused"),
        Row(desired: "paused", found: 3, action: "skipped", after: "paused"),
        Row(desired: "paused", found: 1, action: "skipped", after: "running"),
        Row(desired: "shutoff", found: 1, action: "skipped", after: "running"),
        Row(desired: "shutoff", found: 5, action: "skipped", after: "shutoff"),
        Row(desired: "shutoff", found: 3, action: "skipped", after: "paused"),
        Row(desired: "running", found: nil, action: "missing", after: nil),
        Row(desired: "shutoff", found: nil, action: "missing", after: nil),
    ]

    @Test("the decision table, one row at a time", arguments: table)
    func decision(_ row: Row) throws {
        let node = try NodeFile(states: row.found.map { [("m1", $0)] } ?? [])
        let path = temporaryStatePath()
        let uuid = NodeFile.uuid(0)
        try writeTable(path, [(uuid, "m1", row.desired)])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path)
        let summary = try runRestore(engine, trigger: "startup", table: .present(machines: 1))
        #expect(summary.table == "present")
        #expect(summary.total == 1)
        #expect(summary.counts[row.action] == 1, "\(summary.counts)")
        let outcome = try #require(sink.wait { $0.type == "restore.outcome" })
        #expect(outcome["action"] as? String == row.action)
        #expect(outcome["desired"] as? String == row.desired)
        #expect(outcome["uuid"] as? String == uuid)
        #expect(outcome["trigger"] as? String == "startup")
        #expect(outcome.topic == "restore.t1")
        if let after = row.after {
            let state = try Connection(uri: node.uri)
            _ = state  // a new connection re-reads the node file; ask the engine instead
            engine.submit(#"{"v":1,"id":"st","op":"status","machine":"m1"}"#)
            let status = try #require(sink.result("st"))
            #expect(status["state"] as? String == after)
        } else {
            #expect(engine.store.snapshot().machines[uuid] != nil, "a missing machine's entry is kept")
        }
        let published = try #require(sink.wait { $0.type == "restore.summary" })
        #expect((published["counts"] as? [String: Int])?[row.action] == 1)
        #expect(published.topic == "restore.t1")
    }

    static let corrupt: [(String, Data)] = [
        ("empty", Data()),
        ("truncated", Data(#"{"version":1,"worker":"t1","saved_at":"x","machines":{"6695eb01-f6a4-8304-79aa-"#.utf8)),
        ("not JSON", Data("hello\u{0}\u{1}".utf8)),
        ("wrong version", Data(#"{"version":2,"worker":"t1","saved_at":"x","machines":{}}"#.utf8)),
        ("machines is an array", Data(#"{"version":1,"worker":"t1","saved_at":"x","machines":[]}"#.utf8)),
        ("desired is a number", Data(#"{"version":1,"worker":"t1","saved_at":"x","machines":{"6695eb01-f6a4-8304-79aa-97f2502e1900":{"name":"a","desired":5,"observed":"running","updated_at":"x"}}}"#.utf8)),
        ("unknown state", Data(#"{"version":1,"worker":"t1","saved_at":"x","machines":{"6695eb01-f6a4-8304-79aa-97f2502e1900":{"name":"a","desired":"flying","observed":"running","updated_at":"x"}}}"#.utf8)),
        ("key is not a UUID", Data(#"{"version":1,"worker":"t1","saved_at":"x","machines":{"web1":{"name":"a","desired":"running","observed":"running","updated_at":"x"}}}"#.utf8)),
        ("a JSON array", Data("[]".utf8)),
    ]

    @Test("a corrupt table is moved aside, never overwritten, and the summary names it", arguments: corrupt.map(\.0))
    func corruptTable(_ variant: String) throws {
        let content = Self.corrupt.first { $0.0 == variant }!.1
        let node = try NodeFile([("m1", false)])
        let path = temporaryStatePath()
        try content.write(to: URL(fileURLWithPath: path))
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path)
        let summary = try runRestore(engine, trigger: "startup", table: {
            // makeEngine already loaded it; load again is not possible (it moved), so re-derive.
            let moved = try? FileManager.default.contentsOfDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path)
                .first { $0.contains(".corrupt-") }
            return .corrupt(movedTo: moved ?? "", reason: "test")
        }())
        #expect(summary.table == "corrupt")
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
        let aside = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".corrupt-") }
        #expect(aside.count == 1, "moved aside under a name that says so")
        let kept = try Data(contentsOf: dir.appendingPathComponent(aside[0]))
        #expect(kept == content, "the corrupt file is kept as it was")
        #expect(summary.total == 0)
        // The worker runs on: a command works and writes a fresh table.
        engine.submit(#"{"v":1,"id":"s","op":"start","machine":"m1"}"#)
        #expect(try #require(sink.result("s"))["ok"] as? Bool == true)
        let fresh = try StateTable.parse(Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(fresh.machines[NodeFile.uuid(0)]?.desired == "running")
        #expect(try Data(contentsOf: dir.appendingPathComponent(aside[0])) == content, "never overwritten")
    }

    @Test("loading reports corrupt with the file it moved, and a second corrupt file gets its own name")
    func loadCorrupt() throws {
        let path = temporaryStatePath()
        var logger = Logging.Logger(label: "t")
        logger.logLevel = .critical
        try Data("{".utf8).write(to: URL(fileURLWithPath: path))
        let first = StateStore(path: path, workerID: "t1", logger: logger).load()
        try Data("[".utf8).write(to: URL(fileURLWithPath: path))
        let second = StateStore(path: path, workerID: "t1", logger: logger).load()
        guard case .corrupt(let a, let reasonA) = first, case .corrupt(let b, _) = second else {
            Issue.record("not corrupt: \(first) \(second)")
            return
        }
        #expect(a != b)
        #expect(a.contains(".corrupt-") && b.contains(".corrupt-"))
        #expect(try Data(contentsOf: URL(fileURLWithPath: a)) == Data("{".utf8))
        #expect(try Data(contentsOf: URL(fileURLWithPath: b)) == Data("[".utf8))
        #expect(reasonA.contains("JSON"))
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("an absent table is reported absent, and the first change creates it with mode 0600")
    func absentTable() throws {
        let node = try NodeFile([("m1", false)])
        let path = temporaryStatePath()
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path)
        let summary = try runRestore(engine, trigger: "startup", table: .absent)
        #expect(summary.table == "absent")
        #expect(summary.total == 0)
        #expect(!FileManager.default.fileExists(atPath: path))
        engine.submit(#"{"v":1,"id":"a1","op":"start","machine":"m1"}"#)
        _ = try #require(sink.result("a1"))
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let table = try StateTable.parse(Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(table.machines[NodeFile.uuid(0)]?.desired == "running")
        #expect(table.machines[NodeFile.uuid(0)]?.desiredFrom == "command")
    }

    @Test("a state-changing result is published only once its change is on disk")
    func durableBeforeResult() throws {
        let node = try NodeFile((0..<20).map { ("d\($0)", false) })
        let path = temporaryStatePath()
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, maxParallel: 8, stateFile: path)
        for i in 0..<20 { engine.submit(#"{"v":1,"id":"c\#(i)","op":"start","machine":"d\#(i)"}"#) }
        for i in 0..<20 {
            _ = try #require(sink.result("c\(i)"))
            // The result is out: the file must already say so.
            let table = try StateTable.parse(Data(contentsOf: URL(fileURLWithPath: path)))
            #expect(table.machines[NodeFile.uuid(i)]?.desired == "running", "c\(i)")
        }
        #expect(engine.store.writeCount < 20, "changes that arrive together are committed together (\(engine.store.writeCount) writes)")
    }

    @Test("two restores at once: the second joins the first and both get its summary")
    func joined() throws {
        let node = try NodeFile((0..<6).map { ("j\($0)", false) })
        let path = temporaryStatePath()
        try writeTable(path, (0..<6).map { (NodeFile.uuid($0), "j\($0)", "running") })
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path, restore: .init(parallel: 2, staggerMs: 50))
        engine.submit(#"{"v":1,"id":"r1","op":"restore"}"#)
        engine.submit(#"{"v":1,"id":"r2","op":"restore"}"#)
        let a = try #require(sink.result("r1"))
        let b = try #require(sink.result("r2"))
        let sa = try #require(a["data"] as? [String: Any])
        let sb = try #require(b["data"] as? [String: Any])
        #expect(sa["restore_id"] as? String == sb["restore_id"] as? String)
        #expect((sa["counts"] as? [String: Int])?["started"] == 6)
        #expect(sink.all { $0.type == "restore.summary" }.count == 1)
        #expect(sink.all { $0.type == "restore.outcome" }.count == 6, "each machine restored once")
    }

    @Test("a command for a machine being restored waits for its restore")
    func commandWaitsForRestore() throws {
        let node = try NodeFile([("w0", false), ("w1", false)])
        let path = temporaryStatePath()
        try writeTable(path, [(NodeFile.uuid(0), "w0", "running"), (NodeFile.uuid(1), "w1", "running")])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path, restore: .init(parallel: 1, staggerMs: 300))
        engine.submit(#"{"v":1,"id":"r","op":"restore"}"#)
        // Wait until the restore has reached w0, then ask for w1, whose start is staggered.
        _ = try #require(sink.wait { $0.type == "restore.outcome" && $0["machine"] as? String == "w0" })
        engine.submit(#"{"v":1,"id":"s1","op":"status","machine":"w1"}"#)
        let status = try #require(sink.result("s1"))
        let outcome = try #require(sink.wait { $0.type == "restore.outcome" && $0["machine"] as? String == "w1" })
        #expect((outcome["seq"] as! Int) < (status["seq"] as! Int), "the status ran after w1's restore")
        #expect(status["state"] as? String == "running")
    }

    @Test("restore by message while commands flow on other machines")
    func restoreWhileCommandsFlow() throws {
        let node = try NodeFile((0..<8).map { ("f\($0)", false) } + [("busy", true)])
        let path = temporaryStatePath()
        try writeTable(path, (0..<8).map { (NodeFile.uuid($0), "f\($0)", "running") })
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path, restore: .init(parallel: 2))
        engine.submit(#"{"v":1,"id":"rr","op":"restore"}"#)
        for i in 0..<100 {
            engine.submit(#"{"v":1,"id":"b\#(i)","op":"\#(i % 2 == 0 ? "suspend" : "resume")","machine":"busy"}"#)
        }
        let r = try #require(sink.result("rr"))
        #expect(((r["data"] as? [String: Any])?["counts"] as? [String: Int])?["started"] == 8)
        for i in 0..<100 {
            let b = try #require(sink.result("b\(i)"))
            #expect(b["ok"] as? Bool == true)
            #expect(b["changed"] as? Bool == true)
        }
    }

    @Test("report gives the last summary, its outcomes and the table")
    func report() throws {
        let node = try NodeFile([("p1", false)])
        let path = temporaryStatePath()
        try writeTable(path, [(NodeFile.uuid(0), "p1", "running"), ("6695eb01-f6a4-8304-79aa-ffffffffffff", "gone", "running")])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path)
        _ = try runRestore(engine, trigger: "startup", table: .present(machines: 2))
        engine.submit(#"{"v":1,"id":"rep","op":"report"}"#)
        let r = try #require(sink.result("rep"))
        let data = try #require(r["data"] as? [String: Any])
        let summary = try #require(data["restore"] as? [String: Any])
        #expect((summary["counts"] as? [String: Int])?["missing"] == 1)
        #expect((summary["counts"] as? [String: Int])?["started"] == 1)
        let outcomes = try #require(data["outcomes"] as? [[String: Any]])
        #expect(Set(outcomes.compactMap { $0["action"] as? String }) == ["started", "missing"])
        let machines = try #require(data["machines"] as? [String: Any])
        #expect(machines.count == 2, "the missing machine's entry stays")
    }

    @Test("at graceful shutdown, machines no command touched take their current state as desired")
    func shutdownRecordsObserved() async throws {
        let node = try NodeFile([("u1", true), ("u2", false), ("t", false)])
        let path = temporaryStatePath()
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: path)
        engine.submit(#"{"v":1,"id":"t1","op":"destroy","machine":"t"}"#)
        _ = try #require(sink.result("t1"))
        engine.stopIntake()
        await engine.drain(graceSeconds: 5)
        let table = try StateTable.parse(Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(table.machines[NodeFile.uuid(0)]?.desired == "running")
        #expect(table.machines[NodeFile.uuid(1)]?.desired == "shutoff")
        #expect(table.machines[NodeFile.uuid(2)]?.desired == "shutoff")
        #expect(table.machines[NodeFile.uuid(2)]?.desiredFrom == "command")
    }
}
