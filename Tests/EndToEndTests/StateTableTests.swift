import ECPProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("State table: restart, absent table, corrupt tables")
struct StateTableTests {
    // MARK: restart

    @Test("a restarted worker brings back exactly the machines the table says should run, and reports it machine by machine")
    func restartRestoresTheTable() throws {
        let dir = try StateTableDirectory()
        let machines = StateTableMachines.shutOff(6, prefix: "st-")
        let (run1, run2, run3, destroyed, paused, untouched) = (machines[0], machines[1], machines[2], machines[3], machines[4], machines[5])

        // First run: three started, one started then destroyed, one started then suspended, one untouched.
        do {
            let worker = try WorkerProcess.start(stateTableLaunchOptions(dir, machines: machines, sharedNodeFile: true))
            #expect(
                worker.arguments.indices.filter { worker.arguments[$0] == "--state-file" || worker.arguments[$0].hasPrefix("--state-file=") }.count == 1,
                "the worker gets one --state-file: \(worker.arguments)")
            let at = try #require(worker.arguments.firstIndex(of: "--state-file"))
            #expect(worker.arguments[at + 1] == dir.stateFile, "\(worker.arguments)")
            let client = try WorkerClient(worker)
            try client.sync()
            let steps: [(String, WorkerMachine, String)] = [
                ("start", run1, "running"), ("start", run2, "running"), ("start", run3, "running"),
                ("start", destroyed, "running"), ("destroy", destroyed, "shutoff"),
                ("start", paused, "running"), ("suspend", paused, "paused"),
            ]
            for (op, machine, state) in steps {
                let result = try client.run(op, machine: machine.name)
                try #require(result.ok == true, "\(op) \(machine.name): \(result)")
                #expect(result.changed == true && result.state == state, "\(op) \(machine.name): \(result)")
            }
            #expect(worker.stop() == 0, "a graceful stop exits 0\n\(worker.logTail())")
        }

        // The table after the graceful stop.
        let expected: [(WorkerMachine, String, String)] = [
            (run1, "running", "command"), (run2, "running", "command"), (run3, "running", "command"),
            (destroyed, "shutoff", "command"), (paused, "paused", "command"), (untouched, "shutoff", "observed"),
        ]
        func checkTable(_ when: String) throws {
            let table = try StateTableFile.read(dir.stateFile)
            #expect(table.problems.isEmpty, "\(when): \(table.problems)")
            #expect(Set(table.machines.keys) == Set(machines.map { $0.uuid.lowercased() }), "\(when): one row per machine: \(table.json)")
            for (machine, desired, from) in expected {
                let entry = table.entry(machine.uuid)
                #expect(entry?["name"]?.stringValue == machine.name, "\(when): \(machine.name): \(String(describing: entry))")
                #expect(entry?["desired"]?.stringValue == desired, "\(when): \(machine.name) should be \(desired): \(String(describing: entry))")
                #expect(entry?["desired_from"]?.stringValue == from, "\(when): \(machine.name): \(String(describing: entry))")
            }
            #expect(stateTablePermissions(dir.stateFile) == 0o600, "\(when): the state file has mode 0600")
        }
        try checkTable("after the first run")

        // Second run on a fresh libvirt (the same node file: every machine shut off, as after a host
        // reboot). The stagger spaces the restore's four starts, so its later messages reach a
        // subscriber that connects once the worker answers.
        let worker = try WorkerProcess.start(
            stateTableLaunchOptions(dir, machines: machines, sharedNodeFile: true, extraArguments: ["--restore-stagger-ms", "400"]))
        let client = try WorkerClient(worker, subscriptions: ["restore.", "result.", "ack."])
        try client.sync()
        let report = try client.stateTableReport()
        let summary = try #require(report["restore"])
        #expect(summary["type"] == "restore.summary", "\(summary)")
        #expect(summary["trigger"] == "startup", "\(summary)")
        #expect(summary["table"] == "present", "\(summary)")
        #expect(summary["state_file"]?.stringValue == dir.stateFile, "\(summary)")
        #expect(summary["error"] == nil, "\(summary)")
        #expect(summary["total"] == 6, "\(summary)")
        let expectedCounts: JSONValue = ["started": 4, "resumed": 0, "already_running": 0, "missing": 0, "skipped": 2, "failed": 0]
        #expect(summary["counts"] == expectedCounts, "\(summary)")
        let restoreID = try #require(summary["restore_id"]?.stringValue)

        let startupActions: [String: (desired: String, action: String)] = [
            run1.name: ("running", "started"), run2.name: ("running", "started"), run3.name: ("running", "started"),
            paused.name: ("paused", "started"), destroyed.name: ("shutoff", "skipped"), untouched.name: ("shutoff", "skipped"),
        ]
        let outcomes = report["outcomes"]?.arrayValue ?? []
        #expect(outcomes.count == 6, "one outcome per machine of the table: \(outcomes)")
        #expect(Set(outcomes.compactMap { $0["machine"]?.stringValue }) == Set(machines.map(\.name)), "\(outcomes)")
        for outcome in outcomes {
            let name = outcome["machine"]?.stringValue ?? "?"
            let machine = machines.first { $0.name == name }
            let want = startupActions[name]
            #expect(outcome["type"] == "restore.outcome", "\(outcome)")
            #expect(outcome["restore_id"]?.stringValue == restoreID, "\(outcome)")
            #expect(outcome["trigger"] == "startup", "\(outcome)")
            #expect(outcome["uuid"]?.stringValue?.lowercased() == machine?.uuid.lowercased(), "\(outcome)")
            #expect(outcome["desired"]?.stringValue == want?.desired, "\(outcome)")
            #expect(outcome["found"] == "shutoff", "a fresh libvirt has every machine shut off: \(outcome)")
            #expect(outcome["action"]?.stringValue == want?.action, "\(outcome)")
            #expect(outcome["error"] == nil, "\(outcome)")
            #expect((outcome["duration_ms"]?.doubleValue ?? -1) >= 0, "\(outcome)")
        }

        // What libvirt says now: the three running, the paused one started but paused, the others off.
        for (machine, state) in [(run1, "running"), (run2, "running"), (run3, "running"), (paused, "paused"), (destroyed, "shutoff"), (untouched, "shutoff")] {
            let status = try client.run("status", machine: machine.name)
            #expect(status.ok == true && status.state == state, "\(machine.name) is \(state) after the restore: \(status)")
        }

        // The startup restore's messages that reached the subscriber are the ones in the report.
        let caughtSummary = try client.awaitMessage(timeout: .seconds(2)) {
            $0.type == "restore.summary" && $0["restore_id"]?.stringValue == restoreID
        }
        #expect(caughtSummary != nil, "the startup restore.summary is published on restore.\(worker.id)")
        if let caughtSummary {
            WorkerExpect.envelope(caughtSummary, worker: worker, type: "restore.summary", topic: "restore")
            #expect(caughtSummary.withoutEnvelope == summary, "the published summary is the reported one\n published: \(caughtSummary)\n reported: \(summary)")
        }
        let caughtOutcomes = client.messages { $0.type == "restore.outcome" && $0["restore_id"]?.stringValue == restoreID }
        #expect(!caughtOutcomes.isEmpty, "the staggered restore's later outcomes reach the subscriber")
        for caught in caughtOutcomes {
            WorkerExpect.envelope(caught, worker: worker, type: "restore.outcome", topic: "restore")
            let reported = outcomes.first { $0["machine"] == caught["machine"] }
            #expect(caught.withoutEnvelope == reported, "the published outcome is the reported one\n published: \(caught)\n reported: \(String(describing: reported))")
            if let caughtSummary { #expect(caught.seq! < caughtSummary.seq!, "outcomes come before their summary") }
        }

        // A restore by message: everything is where the table wants it; nothing is started or stopped.
        let exchange = try client.execute(WorkerClient.command("restore", id: "st-restore-again"), via: .commands)
        let second = exchange.result
        #expect(second.ok == true && second.changed == false, "\(second)")
        #expect(second.data?["trigger"] == "command", "\(second)")
        #expect(second.data?["table"] == "present", "\(second)")
        #expect(second.data?["total"] == 6, "\(second)")
        let secondCounts: JSONValue = ["started": 0, "resumed": 0, "already_running": 3, "missing": 0, "skipped": 3, "failed": 0]
        #expect(second.data?["counts"] == secondCounts, "\(second)")
        let secondID = try #require(second.data?["restore_id"]?.stringValue)
        #expect(secondID != restoreID)
        let secondSummary = try client.waitFor("the second restore.summary") {
            $0.type == "restore.summary" && $0["restore_id"]?.stringValue == secondID
        }
        WorkerExpect.envelope(secondSummary, worker: worker, type: "restore.summary", topic: "restore")
        #expect(secondSummary.withoutEnvelope == second.data, "the published summary is the result's data")
        let published = client.messages { $0.type == "restore.outcome" && $0["restore_id"]?.stringValue == secondID }
        #expect(published.count == 6, "one published outcome per machine: \(published)")
        let secondActions: [String: (desired: String, found: String, action: String)] = [
            run1.name: ("running", "running", "already_running"), run2.name: ("running", "running", "already_running"),
            run3.name: ("running", "running", "already_running"), paused.name: ("paused", "paused", "skipped"),
            destroyed.name: ("shutoff", "shutoff", "skipped"), untouched.name: ("shutoff", "shutoff", "skipped"),
        ]
        for outcome in published {
            WorkerExpect.envelope(outcome, worker: worker, type: "restore.outcome", topic: "restore")
            let name = outcome["machine"]?.stringValue ?? "?"
            let want = secondActions[name]
            #expect(want != nil, "an outcome for a machine of the table: \(outcome)")
            #expect(outcome["trigger"] == "command", "\(outcome)")
            #expect(outcome["uuid"]?.stringValue?.lowercased() == machines.first { $0.name == name }?.uuid.lowercased(), "\(outcome)")
            #expect(outcome["desired"]?.stringValue == want?.desired, "\(outcome)")
            #expect(outcome["found"]?.stringValue == want?.found, "\(outcome)")
            #expect(outcome["action"]?.stringValue == want?.action, "\(outcome)")
            #expect(outcome.seq! < secondSummary.seq!, "outcomes come before their summary")
        }
        #expect(Set(published.compactMap { $0["machine"]?.stringValue }) == Set(machines.map(\.name)))

        // A restore changes no desired state: after this run's graceful stop the table says the same.
        #expect(worker.stop() == 0, "a graceful stop exits 0\n\(worker.logTail())")
        try checkTable("after the second run")
    }

    // MARK: absent table

    @Test(
        "a state file that does not exist yet is normal: the table is absent, and the first change creates it with mode 0600",
        arguments: ["state.json", "new/deeper/state.json"])
    func absentTable(relativePath: String) throws {
        let dir = try StateTableDirectory(relativeStatePath: relativePath)
        #expect(!FileManager.default.fileExists(atPath: dir.stateFile))
        let machines = StateTableMachines.shutOff(2, prefix: "abs-")
        let worker = try WorkerProcess.start(stateTableLaunchOptions(dir, machines: machines))
        let client = try WorkerClient(worker)
        try client.sync()
        let report = try client.stateTableReport()
        let summary = try #require(report["restore"])
        #expect(summary["table"] == "absent", "\(summary)")
        #expect(summary["trigger"] == "startup", "\(summary)")
        #expect(summary["total"] == 0, "\(summary)")
        #expect(summary["error"] == nil, "an absent table is no error: \(summary)")
        #expect(summary["state_file"]?.stringValue == dir.stateFile, "\(summary)")
        #expect(report["outcomes"] == [], "\(report)")
        let errors = worker.logRecords.filter { $0["level"] == "error" }
        #expect(errors.isEmpty, "no error is logged for an absent table: \(errors)")
        if relativePath.contains("/") {
            #expect(stateTablePermissions(dir.stateDirectory) == 0o700, "the worker creates the state file's directory with mode 0700")
        }

        let result = try client.run("start", machine: machines[0].name)
        try #require(result.ok == true, "\(result)")
        // The result is published only once the change is on disk.
        #expect(FileManager.default.fileExists(atPath: dir.stateFile), "the first change creates the state file")
        #expect(stateTablePermissions(dir.stateFile) == 0o600, "the state file has mode 0600")
        let table = try StateTableFile.read(dir.stateFile)
        #expect(table.problems.isEmpty, "\(table.problems)")
        #expect(table.desired(machines[0].uuid) == "running", "\(table.json)")
        #expect(table.entry(machines[0].uuid)?["name"]?.stringValue == machines[0].name, "\(table.json)")
        #expect(table.entry(machines[0].uuid)?["desired_from"] == "command", "\(table.json)")
        #expect(worker.stop() == 0)
    }

    // MARK: corrupt tables

    @Test("an unreadable table is moved aside unchanged, reported, logged, and never overwritten", arguments: StateTableCorruption.all)
    func corruptTable(_ corruption: StateTableCorruption) throws {
        let dir = try StateTableDirectory()
        let machines = StateTableMachines.shutOff(2, prefix: "cor-")

        /// Writes the corrupt bytes, starts a worker on them, checks what it did; returns the
        /// name the file was moved to.
        func corruptStart(_ attempt: Int) throws -> String {
            try corruption.bytes.write(to: URL(fileURLWithPath: dir.stateFile))
            let worker = try WorkerProcess.start(stateTableLaunchOptions(dir, machines: machines))
            defer { #expect(worker.stop() == 0, "start \(attempt): a graceful stop exits 0\n\(worker.logTail())") }
            let client = try WorkerClient(worker)
            try client.sync()
            let report = try client.stateTableReport()
            let summary = try #require(report["restore"])
            #expect(summary["table"] == "corrupt", "start \(attempt): \(summary)")
            #expect(summary["total"] == 0, "start \(attempt): the worker runs from an empty table: \(summary)")
            #expect(report["machines"] == [:], "start \(attempt): \(report)")
            let moved = try #require(summary["error"]?["file"]?.stringValue, "start \(attempt): the summary's error names the moved file: \(summary)")
            #expect(moved != dir.stateFile, "start \(attempt): the file is moved to a new name: \(moved)")
            #expect(URL(fileURLWithPath: moved).deletingLastPathComponent().path == dir.stateDirectory, "start \(attempt): kept beside the table: \(moved)")
            let errorText = summary["error"]?.stringValue ?? summary["error"]?["message"]?.stringValue ?? ""
            #expect(errorText.contains(moved), "start \(attempt): the summary's error names the file: \(summary)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: moved)) == corruption.bytes, "start \(attempt): the moved file holds exactly the original bytes")
            #expect(
                (try? Data(contentsOf: URL(fileURLWithPath: dir.stateFile))) != corruption.bytes,
                "start \(attempt): the corrupt content is no longer at \(dir.stateFile)")

            // The log has an error line naming the moved file.
            let named = worker.logRecords.filter { record in
                record["level"] == "error" && (record.objectValue ?? [:]).values.contains { $0.stringValue?.contains(moved) == true }
            }
            #expect(!named.isEmpty, "start \(attempt): an error line names \(moved)\n\(worker.logTail())")

            // The worker serves: a command runs, and its change lands in a fresh, valid table.
            let result = try client.run("start", machine: machines[attempt % 2].name)
            #expect(result.ok == true, "start \(attempt): \(result)")
            let table = try StateTableFile.read(dir.stateFile)
            #expect(table.problems.isEmpty, "start \(attempt): \(table.problems)")
            #expect(table.desired(machines[attempt % 2].uuid) == "running", "start \(attempt): \(table.json)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: moved)) == corruption.bytes, "start \(attempt): writing the new table leaves the moved file alone")
            return URL(fileURLWithPath: moved).lastPathComponent
        }

        let first = try corruptStart(1)
        let second = try corruptStart(2)
        #expect(first != second, "a second corrupt table gets another name: \(first), \(second)")
        let firstBytes = try Data(contentsOf: dir.url.appendingPathComponent(first))
        #expect(firstBytes == corruption.bytes, "the first moved file is unchanged")
        let entries = try dir.entries()
        #expect(Set(try dir.corruptFiles()) == [first, second], "\(entries)")
    }
}

/// An unreadable state table.
struct StateTableCorruption: Sendable, CustomTestStringConvertible {
    var name: String
    var bytes: Data

    var testDescription: String { name }

    static let uuid = "5a7e7ab1-0000-4000-8000-000000000001"
    static let good = """
        {"version": 1, "worker": "w1", "saved_at": "2026-11-25T20:31:07.123Z",
         "machines": {"\(uuid)": {"name": "cor-0", "desired": "running", "observed": "running",
           "updated_at": "2026-11-25T20:31:07.120Z", "desired_from": "command"}}}

        """

    static let all: [StateTableCorruption] = [
        .init(name: "empty file", bytes: Data()),
        .init(name: "truncated JSON", bytes: Data(good.utf8.prefix(good.utf8.count / 2))),
        .init(name: "not JSON", bytes: Data("desired=running\nmachines: web1, web2\n".utf8)),
        .init(name: "binary garbage", bytes: {
            var rng = StateTableRandom(seed: 0x5747_4154_4531)
            return Data([0x00, 0xFF, 0x7B, 0x89, 0x50, 0x4E, 0x47] + (0..<500).map { _ in UInt8.random(in: 0...255, using: &rng) })
        }()),
        .init(name: "version 2", bytes: Data(good.replacingOccurrences(of: "\"version\": 1", with: "\"version\": 2").utf8)),
        .init(name: "machines an array", bytes: Data("""
            {"version": 1, "worker": "w1", "saved_at": "2026-11-25T20:31:07.123Z",
             "machines": [{"uuid": "\(uuid)", "name": "cor-0", "desired": "running", "observed": "running", "updated_at": "2026-11-25T20:31:07.120Z"}]}

            """.utf8)),
        .init(name: "desired a number", bytes: Data(good.replacingOccurrences(of: "\"desired\": \"running\"", with: "\"desired\": 1").utf8)),
        .init(name: "entry missing name", bytes: Data(good.replacingOccurrences(of: "\"name\": \"cor-0\", ", with: "").utf8)),
    ]
}
