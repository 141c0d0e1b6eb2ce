import ECPProtocol
import Foundation
import Testing

/// A temporary directory for a state table that outlives one worker run.
final class WorkerStateDirectory: Sendable {
    let url: URL
    var stateFile: String { url.appendingPathComponent("state.json").path }

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("ecp-worker-e2e-state-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }
}

@Suite("State restore across worker runs")
struct WorkerRestoreTests {
    /// Asks for `report` until the startup restore has finished, and returns the report's data.
    static func reportAfterStartupRestore(_ client: WorkerClient) throws -> JSONValue {
        let until = ContinuousClock.now + .seconds(10)
        while true {
            let report = try client.run("report")
            if let data = report.data, let restore = data["restore"], restore != .null { return data }
            if ContinuousClock.now >= until {
                throw WorkerHarnessError(description: "no restore summary in report: \(report)\n\(client.diagnostics())")
            }
            try client.collect(for: .milliseconds(50))
        }
    }

    @Test("machines are brought back to the states commands asked for, at the next start and on restore")
    func restoreAcrossRuns() async throws {
        try await WorkerTestThread.run { try restoreAcrossRunsBody() }
    }

    private func restoreAcrossRunsBody() throws {
        let state = try WorkerStateDirectory()
        var options = WorkerLaunchOptions()
        options.stateFilePath = state.stateFile

        // First run: web1 started, web2 started paused, db1 destroyed; cache1 untouched (running).
        do {
            let worker = try WorkerProcess.start(options)
            let client = try WorkerClient(worker)
            for (op, machine, args) in [("start", "web1", nil), ("start", "web2", ["paused": true] as JSONValue?), ("destroy", "db1", nil)] {
                let r = try client.run(op, machine: machine, args: args)
                try #require(r.ok == true, "\(r)")
            }
            #expect(worker.stop() == 0)
        }

        // Second run, on a fresh node file: web1 and web2 shut off, db1 and cache1 running.
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()
        let report = try Self.reportAfterStartupRestore(client)
        let summary = report["restore"]!
        #expect(summary["trigger"] == "startup", "\(summary)")
        #expect(summary["table"] == "present", "\(summary)")
        #expect(summary["total"] == 4, "\(summary)")
        #expect(summary["counts"]?["started"] == 2, "\(summary)")
        #expect(summary["counts"]?["already_running"] == 1, "\(summary)")
        #expect(summary["counts"]?["skipped"] == 1, "\(summary)")
        #expect(summary["counts"]?["failed"] == 0 && summary["counts"]?["missing"] == 0, "\(summary)")
        let actions = Dictionary(uniqueKeysWithValues: (report["outcomes"]?.arrayValue ?? []).compactMap { o -> (String, String)? in
            guard let m = o["machine"]?.stringValue, let a = o["action"]?.stringValue else { return nil }
            return (m, a)
        })
        #expect(actions == ["web1": "started", "web2": "started", "db1": "skipped", "cache1": "already_running"], "\(report)")
        try WorkerOperationCase.expectState(client, "web1", "running")
        try WorkerOperationCase.expectState(client, "web2", "paused")
        try WorkerOperationCase.expectState(client, "db1", "running")  // restore never stops a machine
        try WorkerOperationCase.expectState(client, "cache1", "running")

        // A restore on command: outcomes and summary are published on restore.<id>.
        let x = try client.execute(WorkerClient.command("restore", id: "restore-now"), via: .commands)
        #expect(x.result.ok == true, "\(x.result)")
        #expect(x.result.data?["trigger"] == "command", "\(x.result)")
        #expect(x.result.data?["counts"]?["started"] == 0, "everything is where it should be: \(x.result)")
        let restoreID = try #require(x.result.data?["restore_id"]?.stringValue)
        let outcomes = client.messages { $0.type == "restore.outcome" && $0["restore_id"]?.stringValue == restoreID }
        #expect(outcomes.count == 4, "\(outcomes)")
        for o in outcomes { WorkerExpect.envelope(o, worker: worker, type: "restore.outcome", topic: "restore") }
        let published = try client.waitFor("the restore.summary") { $0.type == "restore.summary" && $0["restore_id"]?.stringValue == restoreID }
        WorkerExpect.envelope(published, worker: worker, type: "restore.summary", topic: "restore")
        let outcomesFirst = outcomes.allSatisfy { $0.seq! < published.seq! }
        #expect(outcomesFirst, "outcomes come before their summary")
        #expect(worker.stop() == 0)
    }

    @Test("a corrupt state table is kept aside, reported, and not overwritten")
    func corruptTable() async throws {
        try await WorkerTestThread.run { try corruptTableBody() }
    }

    private func corruptTableBody() throws {
        let state = try WorkerStateDirectory()
        let garbage = Data("{\"version\": 1, \"machines\": {".utf8)
        try garbage.write(to: URL(fileURLWithPath: state.stateFile))
        var options = WorkerLaunchOptions()
        options.stateFilePath = state.stateFile
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()
        let report = try Self.reportAfterStartupRestore(client)
        let summary = report["restore"]!
        #expect(summary["table"] == "corrupt", "\(summary)")
        #expect(summary["total"] == 0, "\(summary)")
        // Besides the table the directory may hold the worker's own hidden files (a lock).
        let kept = try FileManager.default.contentsOfDirectory(atPath: state.url.path)
            .filter { $0 != "state.json" && !$0.hasPrefix(".") }
        #expect(kept.count == 1, "the unreadable file is kept under a new name: \(kept)")
        if let name = kept.first {
            let content = try Data(contentsOf: state.url.appendingPathComponent(name))
            #expect(content == garbage, "kept as it was")
            let error = summary["error"]
            let message = error?["message"]?.stringValue ?? error?.stringValue ?? ""
            #expect(message.contains(name), "an error names the kept file: \(summary)")
            #expect(error?.objectValue != nil, "the summary's error is an error record (schemas/restore_summary.json: result.json#/$defs/error): \(summary)")
        }
        #expect(worker.stop() == 0)
    }
}
