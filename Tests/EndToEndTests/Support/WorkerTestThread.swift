import Foundation

/// A task executor backed by one dedicated thread.
///
/// The end-to-end tests block in `zmq_poll` while they wait for a worker. Run on Swift's
/// cooperative thread pool (as wide as the machine has cores), that would starve every other test
/// of the process. ``run(_:_:)`` runs a test body on a thread of its own instead, still inside the
/// test's task, so `#expect` and `#require` report to the right test; and since all of the body
/// runs on that one thread, each ZeroMQ socket it makes is used and closed by one thread only.
final class WorkerTestThread: TaskExecutor, @unchecked Sendable {
    // Safety of @unchecked Sendable: `jobs` and `stopped` are guarded by `condition`.

    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopped = false

    private init(name: String) {
        let thread = Thread { [self] in loop(name: name) }
        thread.name = name
        thread.stackSize = 4 << 20
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// The name of the ``WorkerTestThread`` the caller runs on, or nil on any other thread.
    static var currentName: String? {
        Thread.current.threadDictionary[threadKey] as? String
    }

    private static let threadKey = "ecp.e2e.WorkerTestThread"

    private func loop(name: String) {
        Thread.current.threadDictionary[Self.threadKey] = name
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job.runSynchronously(on: asUnownedTaskExecutor())
        }
    }

    /// Lets the thread end once its queue is empty.
    private func finish() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    /// Runs `body` on a fresh dedicated thread, within the calling task, and returns its result.
    /// At most ``WorkerTestGate/shared``'s limit of bodies run at once; the others wait without
    /// holding a thread.
    static func run<T: Sendable>(
        _ name: String = "e2e-test", _ body: () throws -> T
    ) async throws -> T {
        await WorkerTestGate.shared.enter()
        let executor = WorkerTestThread(name: name)
        defer { executor.finish() }
        do {
            let result = try await withTaskExecutorPreference(executor) {
                try await onPreferredExecutor(body)
            }
            await WorkerTestGate.shared.leave()
            return result
        } catch {
            await WorkerTestGate.shared.leave()
            throw error
        }
    }
}

/// Runs `body` where a nonisolated async function runs: on the task's preferred executor. (A
/// closure handed straight to `withTaskExecutorPreference` that never suspends stays on the
/// thread it was called on; entering a nonisolated async function is what moves the task.)
private nonisolated func onPreferredExecutor<T>(_ body: () throws -> T) async throws -> T {
    try body()
}

/// Bounds how many end-to-end test bodies (each with its worker processes) run at once, so a
/// parallel test run does not start hundreds of workers together. The limit is
/// `ECP_E2E_PARALLEL`, or one more than the number of cores (at least 3, at most 8).
actor WorkerTestGate {
    static let shared = WorkerTestGate(limit: {
        if let text = ProcessInfo.processInfo.environment["ECP_E2E_PARALLEL"], let n = Int(text), n > 0 { return n }
        return min(8, max(3, ProcessInfo.processInfo.activeProcessorCount + 1))
    }())

    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) {
        free = limit
    }

    /// Waits for a free place.
    func enter() async {
        if free > 0 {
            free -= 1
            return
        }
        await withCheckedContinuation { waiting.append($0) }
    }

    /// Gives the place to the next waiter, or frees it.
    func leave() {
        if waiting.isEmpty {
            free += 1
        } else {
            waiting.removeFirst().resume()
        }
    }
}
