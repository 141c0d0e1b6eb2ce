import ECPProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Worker signals and a log reader that goes away")
struct WorkerSignalTests {
    static let ignored: [(String, Int32)] = [
        ("SIGHUP", SIGHUP), ("SIGUSR1", SIGUSR1), ("SIGUSR2", SIGUSR2), ("SIGALRM", SIGALRM), ("SIGPIPE", SIGPIPE),
    ]

    @Test("SIGHUP is logged, SIGUSR1, SIGUSR2, SIGALRM and SIGPIPE change nothing; SIGTERM still stops it gracefully")
    func signalsThatDoNotStop() async throws {
        try await WorkerTestThread.run { try signalsThatDoNotStopBody() }
    }

    private func signalsThatDoNotStopBody() throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        for (name, number) in Self.ignored {
            // A signal whose action ends the process has done so when kill() returns: the ping
            // after it finds a worker that is still there, or none.
            worker.signal(number)
            let r = try client.run("ping")
            #expect(r.ok == true, "ping after \(name): \(r)\n\(worker.logTail())")
            #expect(worker.isRunning, "after \(name)\n\(worker.logTail())")
        }
        let logged = worker.waitForLog {
            $0.contains(#""msg":"signal received; nothing to reopen""#) && $0.contains(#""signal.name":"SIGHUP""#)
        }
        #expect(logged, "SIGHUP is logged\n\(worker.logTail())")
        worker.signal(SIGTERM)
        #expect(worker.waitForExit() == 0, "\(worker.logTail())")
        #expect(worker.terminatedBySignal == false)
        let stopping = try client.waitFor("worker.stopping", timeout: .seconds(3)) { $0.type == "worker.stopping" }
        WorkerExpect.envelope(stopping, worker: worker, type: "worker.stopping", topic: "worker")
    }

    @Test("with its standard error a pipe nobody reads any more, the worker keeps answering and stops cleanly")
    func closedLogReader() async throws {
        try await WorkerTestThread.run { try closedLogReaderBody() }
    }

    private func closedLogReaderBody() throws {
        var options = WorkerLaunchOptions()
        options.standardErrorPipe = true
        options.logLevel = "debug"
        let worker = try WorkerProcess.start(options)
        let reader = try #require(worker.standardErrorReader)
        // The log did flow through the pipe (startup and the readiness pings are logged) ...
        let first = reader.availableData
        #expect(String(decoding: first, as: UTF8.self).contains(#""level":"#), "\(first.count) bytes")
        // ... and from now on every line the worker writes meets a pipe without a reader.
        try reader.close()
        let client = try WorkerClient(worker)
        try client.sync()
        for i in 0..<20 {
            let r = try client.run("status", machine: "web1")
            #expect(r.ok == true, "status \(i): \(r)")
        }
        let started = try client.run("start", machine: "web1")
        #expect(started.ok == true, "\(started)")
        let failed = try client.run("start", machine: "nosuch")
        #expect(failed.ok == false, "a failure is logged at error level, and answered: \(failed)")
        #expect(worker.isRunning)
        worker.signal(SIGTERM)
        #expect(worker.waitForExit() == 0, "exit status \(worker.terminationStatus.map(String.init) ?? "none")")
        #expect(worker.terminatedBySignal == false)
        _ = try client.waitFor("worker.stopping", timeout: .seconds(3)) { $0.type == "worker.stopping" }
    }
}
