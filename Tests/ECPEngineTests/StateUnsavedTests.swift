@testable import ECPEngine
import ECPProtocol
import Foundation
import Testing

/// The state file's directory made unwritable for everyone, root included: a regular file takes
/// its place (the directory itself is kept aside, and put back by `restore`).
struct UnwritableStateDirectory {
    let directory: URL
    let aside: URL

    init(statePath: String) throws {
        directory = URL(fileURLWithPath: statePath).deletingLastPathComponent()
        aside = directory.deletingLastPathComponent().appendingPathComponent(directory.lastPathComponent + ".aside")
        try FileManager.default.moveItem(at: directory, to: aside)
        try Data("not a directory\n".utf8).write(to: directory)
    }

    func restore() throws {
        try FileManager.default.removeItem(at: directory)
        try FileManager.default.moveItem(at: aside, to: directory)
    }
}

@Suite("Engine: a state table that cannot be written")
struct StateUnsavedTests {
    @Test("a change that cannot be saved is answered saved: false, heartbeats say unsaved until a retry writes it")
    func unsavedThenSaved() throws {
        let node = try NodeFile([("web1", true)])
        let sink = MemorySink()
        let log = CapturedLog()
        let statePath = temporaryStatePath()
        let engine = makeEngine(uri: node.uri, sink: sink, stateFile: statePath, logger: log.logger)

        engine.submit(#"{"v":1,"id":"s1","op":"suspend","machine":"web1"}"#)
        let saved = try #require(sink.result("s1"))
        #expect(saved["ok"] as? Bool == true && saved["changed"] as? Bool == true)
        #expect(saved["saved"] == nil, "a change that was saved carries no saved field")
        // A heartbeat is sent before `heartbeat` returns: the last one is the one just made.
        engine.heartbeat(intervalMs: 100)
        let before = try #require(sink.all { $0.type == "heartbeat" }.last)
        #expect(before["state_table"] as? String == "saved")
        #expect(before["unsaved_since"] == nil)

        let broken = try UnwritableStateDirectory(statePath: statePath)
        var restored = false
        defer { if !restored { try? broken.restore() } }

        engine.submit(#"{"v":1,"id":"r1","op":"resume","machine":"web1"}"#)
        let unsaved = try #require(sink.result("r1"))
        #expect(unsaved["ok"] as? Bool == true, "the result still says what happened: \(unsaved)")
        #expect(unsaved["changed"] as? Bool == true)
        #expect(unsaved["state"] as? String == "running")
        #expect(unsaved["saved"] as? Bool == false)
        #expect(engine.store.snapshot().machines[NodeFile.uuid(0)]?.desired == "running", "the change is kept in memory")

        engine.heartbeat(intervalMs: 100)
        let during = try #require(sink.all { $0.type == "heartbeat" }.last)
        #expect(during["state_table"] as? String == "unsaved")
        let since = try #require(during["unsaved_since"] as? String)
        #expect(since.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/) != nil, "a timestamp like ts: \(since)")
        let unsavedLine = try #require(log.records.first { $0.message.hasPrefix("state table unsaved") })
        #expect(unsavedLine.level == .error)
        #expect(unsavedLine.metadata["state.unsaved_since"]?.description == since)
        #expect(unsavedLine.metadata["state.file"]?.description == statePath)

        try broken.restore()
        restored = true
        // The next batch the writer takes is its retry; flush returns once it is done.
        engine.store.flush()
        engine.heartbeat(intervalMs: 100)
        let after = try #require(sink.all { $0.type == "heartbeat" }.last)
        #expect(after["state_table"] as? String == "saved")
        #expect(after["unsaved_since"] == nil)

        let file = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: statePath))) as? [String: Any]
        let entry = (file?["machines"] as? [String: Any])?[NodeFile.uuid(0)] as? [String: Any]
        #expect(entry?["desired"] as? String == "running", "the file holds the change: \(String(describing: file))")
        let savedLine = try #require(log.records.first { $0.message == "state table saved again" })
        #expect(savedLine.metadata["state.unsaved_since"]?.description == since)
        #expect(log.records.filter { $0.message.hasPrefix("state table unsaved") }.count == 1, "one line when it became unsaved, not one per retry")
    }
}
