import ECPProtocol
import Foundation
import Testing
import ZeroMQ

/// The state table says which machines should run: only the worker's user may read or change it,
/// whatever the umask the worker was started with.
@Suite("Security: the state file's permissions")
struct SecurityStateFileTests {
    @Test("the state file is created with mode 0600 and its new directory with 0700, even under umask 000")
    func stateFileMode() async throws {
        try await WorkerTestThread.run("sec-state-mode") { try stateFileModeBody() }
    }

    private func stateFileModeBody() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("ecp-sec-state-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: base) }
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        let directory = base.appendingPathComponent("state").path
        let stateFile = directory + "/table.json"

        let worker = try WorkerProcess.start(.security(arguments: ["--state-file", stateFile], umask: 0))
        let control = try SecurityPeer(.dealer, connect: worker.controlAddress)
        #expect(FileManager.default.fileExists(atPath: stateFile) == false, "no table before the first change")

        for (n, op) in ["start", "suspend"].enumerated() {
            try control.send(WorkerClient.command(op, id: "state-\(n)", machine: "web1"), worker: worker.id)
            let reply = try #require(try control.first { $0.id == "state-\(n)" }, "\(worker.logTail())")
            #expect(reply.ok == true && reply.changed == true, "\(reply)")
            // A result that reports a change goes out once the table is on disk.
            let mode = try #require(SecurityFiles.mode(stateFile), "the state file exists after \(op)")
            #expect(mode == 0o600, "the state file's mode after \(op) is 0\(String(mode, radix: 8)), not 0600")
        }
        let directoryMode = try #require(SecurityFiles.mode(directory))
        #expect(directoryMode == 0o700, "the state directory's mode is 0\(String(directoryMode, radix: 8)), not 0700")
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            let mode = SecurityFiles.mode(directory + "/" + name) ?? 0
            #expect(mode & 0o077 == 0, "\(name) in the state directory has mode 0\(String(mode, radix: 8))")
        }
        #expect(worker.stop() == 0, "\(worker.logTail())")
        let after = try #require(SecurityFiles.mode(stateFile))
        #expect(after == 0o600, "after the graceful stop's last write: 0\(String(after, radix: 8))")
    }
}
