import ECPProtocol
import ECPWorker
import Testing

@Suite("Worker configuration")
struct WorkerConfigurationTests {
    @Test("the defaults are valid, and a shutdown is repeated every 5 s by default")
    func defaults() {
        let c = WorkerConfiguration(workerID: "w1")
        #expect(c.validate() == nil)
        #expect(c.shutdownRetryMs == 5_000)
    }

    @Test(
        "--shutdown-retry-ms: 0 (send once) or 100 ms to 10 min",
        arguments: [(0, true), (100, true), (10_000, true), (600_000, true), (99, false), (-1, false), (600_001, false)])
    func shutdownRetry(value: Int, valid: Bool) {
        var c = WorkerConfiguration(workerID: "w1")
        c.shutdownRetryMs = value
        let problem = c.validate()
        #expect((problem == nil) == valid, "\(value): \(problem ?? "valid")")
        if let problem { #expect(problem.hasPrefix("--shutdown-retry-ms: "), "\(problem)") }
    }

    @Test(
        "--stats-interval-ms: 0 (off) or 1 s to 1 h, 15 s by default",
        arguments: [(0, true), (1000, true), (15_000, true), (3_600_000, true), (999, false), (-1, false), (3_600_001, false)])
    func statsInterval(value: Int, valid: Bool) {
        #expect(WorkerConfiguration(workerID: "w1").statsIntervalMs == 15_000)
        var c = WorkerConfiguration(workerID: "w1")
        c.statsIntervalMs = value
        let problem = c.validate()
        #expect((problem == nil) == valid, "\(value): \(problem ?? "valid")")
        if let problem { #expect(problem.hasPrefix("--stats-interval-ms: "), "\(problem)") }
    }

    @Test(
        "--dedupe-bytes: 64 KiB to 64 GiB, 64 MiB by default",
        arguments: [(65_536, true), (64 << 20, true), (64 << 30, true), (0, false), (-1, false), (65_535, false), ((64 << 30) + 1, false), (Int.max, false)])
    func dedupeBytes(value: Int, valid: Bool) {
        #expect(WorkerConfiguration(workerID: "w1").dedupeBytes == 64 << 20)
        var c = WorkerConfiguration(workerID: "w1")
        c.dedupeBytes = value
        let problem = c.validate()
        #expect((problem == nil) == valid, "\(value): \(problem ?? "valid")")
        if let problem { #expect(problem.hasPrefix("--dedupe-bytes: "), "\(problem)") }
    }
}
