import DequeModule
import Glibc

/// Runs jobs on a bounded pool of threads of its own (libvirt calls block, so they stay off
/// Swift's cooperative pool), one job at a time per lane (per machine), lanes in parallel.
///
/// A job holds its lanes from the moment it is taken until `release` is called for it: jobs for
/// the same machine run in arrival order, never at once.
final class Dispatcher<Job: AnyObject & Sendable>: @unchecked Sendable {
    private let condition = Condition()
    private var ready = Deque<Job>()
    /// A lane present here is busy; its queue holds the jobs waiting behind the running one.
    private var lanes: [String: Deque<Job>] = [:]
    private var lanesOf: [ObjectIdentifier: [String]] = [:]
    /// Jobs that hold their lanes (ready or running), as opposed to waiting in a lane.
    private var holders: Set<ObjectIdentifier> = []
    /// Jobs of a limited group: at most `groupLimit` of them run at once.
    private var limited: Set<ObjectIdentifier> = []
    private var limitedRunning = 0
    private let groupLimit: Int
    private var stopped = false
    /// Threads waiting for work, the one that went idle last at the end.
    private var idle: [Condition.Waiter] = []
    /// The thread running each job, so that a job finishing on a dispatcher thread hands the next
    /// job of its lane to that same thread: no wake-up, no context switch.
    private var runningOn: [ObjectIdentifier: pthread_t] = [:]
    private var handoff: [pthread_t: Job] = [:]
    private var execute: (@Sendable (Job) -> Void)?
    private let threadCount: Int
    private let name: String

    /// - Parameters:
    ///   - threads: how many jobs may run at once.
    ///   - name: thread name prefix, for debuggers and `top -H`.
    ///   - groupLimit: how many jobs submitted with `limited: true` may run at once.
    init(threads count: Int, name: String, groupLimit: Int = .max) {
        self.threadCount = max(1, count)
        self.name = name
        self.groupLimit = max(1, groupLimit)
    }

    /// Starts the threads; `execute` runs one job, and whoever finishes it calls `release`. Jobs
    /// submitted before wait until then.
    func start(execute: @escaping @Sendable (Job) -> Void) {
        condition.lock()
        self.execute = execute
        condition.unlock()
        for i in 0..<threadCount {
            // Each thread keeps the dispatcher alive until `stop` lets it end.
            WorkerThread.start(name: "\(name)-\(i)", stackSize: 1 << 20) { self.loop() }
        }
    }

    /// Queues a job; it runs once every lane it names is free and it reaches the front.
    func submit(_ job: Job, lanes keys: [String], limited isLimited: Bool = false) {
        condition.lock()
        defer { condition.unlock() }
        if isLimited { limited.insert(ObjectIdentifier(job)) }
        if keys.isEmpty {
            ready.append(job)
            wakeOne()
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
        start(job, handOffTo: nil)
    }

    /// Frees the job's lanes, so the next job waiting in them can run. A job still waiting in a
    /// lane is taken out of it instead (it will not run). Calling it twice does nothing.
    func release(_ job: Job) {
        condition.lock()
        defer { condition.unlock() }
        let id = ObjectIdentifier(job)
        guard let keys = lanesOf.removeValue(forKey: id) else { return }
        guard holders.remove(id) != nil else {
            for key in keys {
                if let i = lanes[key]?.firstIndex(where: { $0 === job }) { lanes[key]!.remove(at: i) }
            }
            limited.remove(id)
            wakeAll()
            return
        }
        let me = pthread_self()
        let inline = runningOn[id].map { pthread_equal($0, me) != 0 } ?? false
        for key in keys {
            guard var queue = lanes.removeValue(forKey: key) else { continue }
            // The lane is free: the first job waiting in it that can take all its lanes gets it,
            // and the rest keep waiting behind that job. Only the head is looked at, so a release
            // costs the same however many jobs wait.
            while let next = queue.popFirst() {
                let nextKeys = lanesOf[ObjectIdentifier(next)] ?? []
                if let busy = nextKeys.first(where: { lanes[$0] != nil }) {
                    // A multi-lane job whose other lane is still held waits there instead.
                    lanes[busy]!.append(next)
                    continue
                }
                for k in nextKeys { lanes[k] = [] }
                lanes[key] = queue
                start(next, handOffTo: inline ? me : nil)
                break
            }
        }
    }

    /// A job that holds its lanes goes to the thread that asked for it, or to the ready queue.
    private func start(_ job: Job, handOffTo thread: pthread_t?) {
        holders.insert(ObjectIdentifier(job))
        if let thread, handoff[thread] == nil, !limited.contains(ObjectIdentifier(job)) {
            handoff[thread] = job
            return
        }
        ready.append(job)
        wakeOne()
    }

    /// Whether no job holds or waits for any of these lanes.
    func lanesIdle(_ keys: [String]) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return keys.allSatisfy { lanes[$0] == nil }
    }

    /// Stops the threads once the queue is empty (they finish what they run).
    func stop() {
        condition.lock()
        stopped = true
        wakeAll()
        condition.unlock()
    }

    /// Removes and returns every job that has not started.
    func drainQueued() -> [Job] {
        condition.lock()
        defer { condition.unlock() }
        var out = Array(ready) + Array(handoff.values)
        ready.removeAll()
        handoff.removeAll()
        for (_, queue) in lanes { out.append(contentsOf: queue) }
        for key in lanes.keys { lanes[key] = [] }
        return out
    }

    /// Wakes the thread that went idle last: the fewest threads run, on warm caches.
    private func wakeOne() {
        idle.popLast()?.signal()
    }

    /// Wakes every idle thread, to look at the queue again.
    private func wakeAll() {
        for waiter in idle { waiter.signal() }
        idle.removeAll()
    }

    /// The first ready job that may run now: limited jobs wait while their group is full.
    private func nextRunnable() -> Int? {
        if limited.isEmpty || limitedRunning < groupLimit { return ready.isEmpty ? nil : 0 }
        return ready.firstIndex { !limited.contains(ObjectIdentifier($0)) }
    }

    private func loop() {
        let waiter = condition.makeWaiter()
        while true {
            condition.lock()
            let me = pthread_self()
            let job: Job
            if let next = handoff.removeValue(forKey: me) {
                job = next
            } else {
                var index: Int?
                while true {
                    index = nextRunnable()
                    if index != nil || stopped { break }
                    idle.append(waiter)
                    waiter.wait()
                    // Woken by a signal (which took it off the list) or spuriously.
                    if let i = idle.firstIndex(where: { $0 === waiter }) { idle.remove(at: i) }
                }
                guard let index else {
                    condition.unlock()
                    return
                }
                job = ready.remove(at: index)
            }
            runningOn[ObjectIdentifier(job)] = me
            let isLimited = limited.contains(ObjectIdentifier(job))
            if isLimited { limitedRunning += 1 }
            let execute = self.execute
            condition.unlock()
            execute?(job)
            condition.lock()
            runningOn.removeValue(forKey: ObjectIdentifier(job))
            if isLimited {
                limited.remove(ObjectIdentifier(job))
                limitedRunning -= 1
                wakeAll()
            }
            condition.unlock()
        }
    }
}
