import DequeModule
import Foundation

/// Runs jobs on a bounded pool of threads of its own (libvirt calls block, so they stay off
/// Swift's cooperative pool), one job at a time per lane (per machine), lanes in parallel.
///
/// A job holds its lanes from the moment it is taken until `release` is called for it: jobs for
/// the same machine run in arrival order, never at once.
final class Dispatcher<Job: AnyObject & Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var ready = Deque<Job>()
    /// A lane present here is busy; its queue holds the jobs waiting behind the running one.
    private var lanes: [String: Deque<Job>] = [:]
    private var lanesOf: [ObjectIdentifier: [String]] = [:]
    private var stopped = false
    private var idleThreads = 0
    private var running = 0
    private var threads: [Thread] = []
    private let execute: @Sendable (Job) -> Void

    /// - Parameters:
    ///   - threads: how many jobs may run at once.
    ///   - name: thread name prefix, for debuggers and `top -H`.
    ///   - execute: runs one job; whoever finishes it calls `release`.
    init(threads count: Int, name: String, execute: @escaping @Sendable (Job) -> Void) {
        self.execute = execute
        for i in 0..<max(1, count) {
            let thread = Thread { [unowned self] in self.loop() }
            thread.name = "\(name)-\(i)"
            thread.stackSize = 1 << 20
            threads.append(thread)
            thread.start()
        }
    }

    /// Queues a job; it runs once every lane it names is free and it reaches the front.
    func submit(_ job: Job, lanes keys: [String]) {
        condition.lock()
        defer { condition.unlock() }
        if keys.isEmpty {
            ready.append(job)
            condition.signal()
            return
        }
        lanesOf[ObjectIdentifier(job)] = keys
        // Multi-lane jobs wait in the first busy lane; when that frees they re-check the others.
        enqueue(job, keys: keys)
    }

    private func enqueue(_ job: Job, keys: [String]) {
        if let busy = keys.first(where: { lanes[$0] != nil }) {
            lanes[busy]!.append(job)
            return
        }
        for key in keys { lanes[key] = [] }
        ready.append(job)
        condition.signal()
    }

    /// Frees the job's lanes, so the next job waiting in them can run.
    func release(_ job: Job) {
        condition.lock()
        defer { condition.unlock() }
        guard let keys = lanesOf.removeValue(forKey: ObjectIdentifier(job)) else { return }
        var waiting: [Job] = []
        for key in keys {
            if let queue = lanes.removeValue(forKey: key) { waiting.append(contentsOf: queue) }
        }
        // Waiting jobs go back in their original order; each re-takes its lanes or waits again.
        for next in waiting {
            enqueue(next, keys: lanesOf[ObjectIdentifier(next)] ?? [])
        }
    }

    /// Jobs queued or running.
    var backlog: Int {
        condition.lock()
        defer { condition.unlock() }
        return ready.count + running + lanes.values.reduce(0) { $0 + $1.count }
    }

    /// Stops the threads once the queue is empty (they finish what they run).
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// Removes and returns every job that has not started.
    func drainQueued() -> [Job] {
        condition.lock()
        defer { condition.unlock() }
        var out = Array(ready)
        ready.removeAll()
        for (_, queue) in lanes { out.append(contentsOf: queue) }
        for key in lanes.keys { lanes[key] = [] }
        return out
    }

    private func loop() {
        while true {
            condition.lock()
            while ready.isEmpty && !stopped {
                condition.wait()
            }
            if ready.isEmpty && stopped {
                condition.unlock()
                return
            }
            let job = ready.removeFirst()
            running += 1
            condition.unlock()
            execute(job)
            condition.lock()
            running -= 1
            condition.unlock()
        }
    }
}
