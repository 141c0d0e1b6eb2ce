import Foundation
import Testing

@Suite("The end-to-end harness itself")
struct WorkerHarnessTests {
    @Test("a test body runs on a thread of its own, off the cooperative pool", arguments: 0..<3)
    func bodyOnItsOwnThread(n: Int) async throws {
        let name = try await WorkerTestThread.run("harness-probe-\(n)") { WorkerTestThread.currentName }
        #expect(name == "harness-probe-\(n)")
        #expect(WorkerTestThread.currentName == nil, "the test itself is back on the pool")
    }

    @Test("the worker binary is found and a worker starts, answers and stops with status 0")
    func workerStartsAndStops() async throws {
        try await WorkerTestThread.run { try workerStartsAndStopsBody() }
    }

    private func workerStartsAndStopsBody() throws {
        let binary = try WorkerProcess.binaryURL()
        #expect(FileManager.default.isExecutableFile(atPath: binary.path), "\(binary.path)")
        let worker = try WorkerProcess.start()
        #expect(worker.isRunning)
        let client = try WorkerClient(worker)
        try client.sync()
        let ping = try client.run("ping")
        #expect(ping.ok == true, "\(ping)")
        #expect(worker.stop() == 0, "\(worker.logTail())")
        #expect(!worker.isRunning)
    }
}
