import ECPProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("State table: a table that cannot be written")
struct StateTableUnsavedTests {
    @Test("while the state directory is unwritable, results say saved: false and heartbeats unsaved; once it is back, saved, and the file holds the change")
    func unsavedUntilTheDirectoryIsBack() async throws {
        try await WorkerTestThread.run("st-unsaved") { try unsavedBody() }
    }

    private func unsavedBody() throws {
        // The state file one level down, so that its directory can be swapped while the test's
        // directory (removed at the end) stays.
        let dir = try StateTableDirectory(relativeStatePath: "db/state.json")
        let machines = StateTableMachines.shutOff(1, prefix: "uns-")
        let machine = machines[0]
        var options = try stateTableLaunchOptions(dir, machines: machines)
        // The shortest interval the worker takes: retries come at least this often too.
        options.heartbeatMs = 100
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()

        let started = try client.run("start", machine: machine.name)
        try #require(started.ok == true && started.changed == true, "\(started)")
        #expect(started["saved"] == nil, "a change that was saved carries no saved field: \(started)")
        #expect(try StateTableFile.read(dir.stateFile).desired(machine.uuid) == "running")

        // A regular file where the directory was: no write into it succeeds, even as root.
        let stateDirectory = URL(fileURLWithPath: dir.stateDirectory)
        let aside = dir.url.appendingPathComponent("db.aside")
        try FileManager.default.moveItem(at: stateDirectory, to: aside)
        try Data("not a directory\n".utf8).write(to: stateDirectory)

        let brokenAt = ContinuousClock.now
        let suspended = try client.run("suspend", machine: machine.name)
        #expect(suspended.ok == true, "the result still says what happened: \(suspended)")
        #expect(suspended.changed == true && suspended.state == "paused", "\(suspended)")
        #expect(suspended["saved"] == .bool(false), "\(suspended)")

        let unsaved = try client.waitFor("a heartbeat saying unsaved") {
            $0.type == "heartbeat" && $0.receivedAt > brokenAt && $0["state_table"] == "unsaved"
        }
        let since = try #require(unsaved["unsaved_since"]?.stringValue, "\(unsaved)")
        #expect(WorkerExpect.isTimestamp(since), "unsaved_since is a timestamp like ts: \(since)")
        // Later heartbeats keep the same instant: it is when the table became unsaved.
        let next = try client.waitFor("a second unsaved heartbeat") {
            $0.type == "heartbeat" && ($0.seq ?? 0) > (unsaved.seq ?? 0)
        }
        if next["state_table"] == "unsaved" {
            #expect(next["unsaved_since"]?.stringValue == since, "\(next)")
        }

        try FileManager.default.removeItem(at: stateDirectory)
        try FileManager.default.moveItem(at: aside, to: stateDirectory)
        let restoredAt = ContinuousClock.now
        // A heartbeat made after the directory came back may still precede the retry: the one
        // awaited is the first that says saved.
        let saved = try client.waitFor("a heartbeat saying saved again") {
            $0.type == "heartbeat" && $0.receivedAt > restoredAt && $0["state_table"] == "saved"
        }
        #expect(saved["unsaved_since"] == nil, "\(saved)")
        let table = try StateTableFile.read(dir.stateFile)
        #expect(table.problems.isEmpty, "\(table.problems)")
        #expect(table.desired(machine.uuid) == "paused", "the file holds the change made while it was unsaved: \(table.json)")

        #expect(worker.stop() == 0, "a graceful stop exits 0\n\(worker.logTail())")
        let lines = worker.log.split(separator: "\n").compactMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
        let became = lines.filter { $0["msg"]?.stringValue?.hasPrefix("state table unsaved") == true }
        #expect(became.count == 1, "one line when the table became unsaved, not one per retry\n\(worker.logTail())")
        #expect(became.first?["state.unsaved_since"]?.stringValue == since, "\(String(describing: became.first))")
        #expect(became.first?["state.file"]?.stringValue == dir.stateFile, "\(String(describing: became.first))")
        let again = lines.first { $0["msg"]?.stringValue == "state table saved again" }
        #expect(again?["state.unsaved_since"]?.stringValue == since, "\(String(describing: again))\n\(worker.logTail())")
    }

    @Test(
        "a full disk (a 64 KiB tmpfs): resume and set_policy say saved: false, heartbeats unsaved; once space is back, the file holds both",
        .enabled(if: getuid() == 0, "mounting a tmpfs needs root"))
    func fullDisk() async throws {
        try await WorkerTestThread.run("st-full") { try fullDiskBody() }
    }

    private func fullDiskBody() throws {
        let dir = try StateTableDirectory(relativeStatePath: "db/state.json")
        try FileManager.default.createDirectory(atPath: dir.stateDirectory, withIntermediateDirectories: true)
        try #require(mount("tmpfs", dir.stateDirectory, "tmpfs", 0, "size=64k,mode=0700") == 0, "mount: errno \(errno)")
        defer { umount2(dir.stateDirectory, Int32(MNT_DETACH)) }
        let machines = StateTableMachines.shutOff(1, prefix: "full-")
        let machine = machines[0]
        var options = try stateTableLaunchOptions(dir, machines: machines)
        options.heartbeatMs = 100
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()
        let started = try client.run("start", machine: machine.name)
        try #require(started.ok == true && started["saved"] == nil, "\(started)")
        let suspended = try client.run("suspend", machine: machine.name)
        try #require(suspended.ok == true && suspended["saved"] == nil, "\(suspended)")

        // Fill the file system to the last block.
        let filler = dir.stateDirectory + "/filler"
        let fd = open(filler, O_WRONLY | O_CREAT, 0o600)
        try #require(fd >= 0)
        let block = [UInt8](repeating: 0x55, count: 4096)
        while write(fd, block, block.count) > 0 {}
        #expect(errno == ENOSPC, "filled until ENOSPC, errno \(errno)")
        close(fd)

        let fullAt = ContinuousClock.now
        let resumed = try client.run("resume", machine: machine.name)
        #expect(resumed.ok == true && resumed.changed == true && resumed.state == "running", "\(resumed)")
        #expect(resumed["saved"] == .bool(false), "a full disk is said, not hidden: \(resumed)")
        let policy = try client.run("set_policy", machine: machine.name, args: ["order": 5])
        #expect(policy.ok == true && policy["saved"] == .bool(false), "\(policy)")
        _ = try client.waitFor("a heartbeat saying unsaved") {
            $0.type == "heartbeat" && $0.receivedAt > fullAt && $0["state_table"] == "unsaved"
        }
        #expect(try StateTableFile.read(dir.stateFile).desired(machine.uuid) == "paused", "the file still holds the old table whole")

        try FileManager.default.removeItem(atPath: filler)
        let freedAt = ContinuousClock.now
        _ = try client.waitFor("a heartbeat saying saved again") {
            $0.type == "heartbeat" && $0.receivedAt > freedAt && $0["state_table"] == "saved"
        }
        let table = try StateTableFile.read(dir.stateFile)
        #expect(table.problems.isEmpty, "\(table.problems)")
        #expect(table.desired(machine.uuid) == "running", "\(table.json)")
        #expect(table.json["machines"]?[machine.uuid]?["policy"]?["order"] == 5, "\(table.json)")
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }
}
