import ECPProtocol
import DequeModule
import Glibc
import Synchronization
import Threading

/// A job the dispatcher can run, and whether it may share a run with another.
protocol DispatchJob: AnyObject, Sendable {
    /// Whether this job, waiting right behind `head` in every one of its lanes, is answered by
    /// `head`'s run: a read of the same machine that came before that run began.
    func mayShareRun(with head: Self) -> Bool
    /// Whether the job must be admitted before it runs (a restore's or host stop's machine,
    /// which waits for its stage and a free place among the parallel ones).
    var isGated: Bool { get }
    /// Called under the dispatcher's lock for a gated job first in its lanes: true takes a place
    /// and the job runs; false leaves it waiting, holding its lanes, until `reconsider`.
    func admit() -> Bool
    /// Gives the place back once a gated job's run has ended.
    func leave()
}

extension DispatchJob {
    var isGated: Bool { false }
    func admit() -> Bool { true }
    func leave() {}
}

/// Runs jobs on a bounded pool of threads of its own (libvirt calls block, so they stay off
/// Swift's cooperative pool), one job at a time per lane (per machine), lanes in parallel.
///
/// A job holds its lanes from the moment it is taken until `release` is called for it: jobs for
/// the same machine run in arrival order, never at once. The exception is jobs that may share a
/// run: when a thread takes a job, the jobs right behind it in its lanes that may share its run
/// are handed over with it, and one run answers them all (reads that wait behind a change need
/// not each read again once it is done).
final class Dispatcher<Job: DispatchJob>: @unchecked Sendable {
    // Safety of @unchecked Sendable: the `var`s are only touched under `condition`'s lock, on
    // which the idle threads sleep.
    private let condition = Condition()
    private var ready = Deque<Job>()
    /// Each busy lane's jobs in arrival order. The head holds the lane once it is the head of
    /// every lane it names; the others wait behind it. A job that names two lanes waits in both,
    /// so it keeps its place in each.
    private var lanes: [String: Deque<Job>] = [:]
    private var lanesOf: [ObjectIdentifier: [String]] = [:]
    /// Jobs that hold their lanes (ready or running), as opposed to waiting in a lane.
    private var holders: Set<ObjectIdentifier> = []
    /// Gated jobs in `ready`: while there are none, the head of `ready` runs without asking.
    private var gatedReady = 0
    private var stopped = false
    /// Threads waiting for work, the one that went idle last at the end.
    private var idle: [Condition.Waiter] = []
    /// The thread running each job, so that a job finishing on a dispatcher thread hands the next
    /// job of its lane to that same thread: no wake-up, no context switch.
    private var runningOn: [ObjectIdentifier: pthread_t] = [:]
    private var handoff: [pthread_t: Job] = [:]
    private var execute: (@Sendable (Job, [Job]) -> Void)?
    /// The most jobs one run answers.
    private let maxSharing = 256
    private let threadCount: Int
    private let name: String

    /// - Parameters:
    ///   - threads: how many jobs may run at once.
    ///   - name: thread name prefix, for debuggers and `top -H`.
    init(threads count: Int, name: String) {
        self.threadCount = max(1, count)
        self.name = name
    }

    /// Starts the threads; `execute` runs one job with the jobs that share its run, and whoever
    /// finishes each of them calls `release` for it. Jobs submitted before wait until then.
    func start(execute: @escaping @Sendable (Job, [Job]) -> Void) {
        condition.lock()
        self.execute = execute
        condition.unlock()
        for i in 0..<threadCount {
            // Each thread keeps the dispatcher alive until `stop` lets it end.
            WorkerThread.start(name: "\(name)-\(i)", stackSize: 1 << 20) { self.loop() }
        }
    }

    /// Queues a job; it runs once it is first in every lane it names.
    func submit(_ job: Job, lanes names: [String]) {
        condition.lock()
        defer { condition.unlock() }
        enqueue(job, lanes: names)
    }

    /// Queues jobs together: each takes its place in its lanes before any of them can run, so a
    /// job submitted meanwhile by another thread queues behind all of them.
    func submit(_ batch: [(job: Job, lanes: [String])]) {
        condition.lock()
        defer { condition.unlock() }
        for (job, names) in batch { enqueue(job, lanes: names) }
    }

    /// Asks the gated jobs waiting for admission again (a stage opened, a place was freed).
    func reconsider() {
        condition.lock()
        wakeAll()
        condition.unlock()
    }

    private func enqueue(_ job: Job, lanes names: [String]) {
        var keys: [String] = []
        for name in names where !keys.contains(name) { keys.append(name) }
        if keys.isEmpty {
            makeReady(job)
            return
        }
        lanesOf[ObjectIdentifier(job)] = keys
        for key in keys { lanes[key, default: []].append(job) }
        if isFirst(job, in: keys) { start(job, handOffTo: nil) }
    }

    /// Whether the job is at the head of every one of these lanes.
    private func isFirst(_ job: Job, in keys: [String]) -> Bool {
        keys.allSatisfy { lanes[$0]?.first === job }
    }

    /// Frees the job's lanes, so the next job waiting in them can run. A job still waiting is
    /// taken out of its lanes instead (it will not run). Calling it twice does nothing.
    func release(_ job: Job) {
        condition.lock()
        defer { condition.unlock() }
        releaseLocked(job)
    }

    private func releaseLocked(_ job: Job) {
        let id = ObjectIdentifier(job)
        guard let keys = lanesOf.removeValue(forKey: id) else { return }
        let held = holders.remove(id) != nil
        for key in keys where lanes[key] != nil {
            // In place: a lane's queue is never copied, so a release costs the same however many
            // jobs wait (a held lane's job is its head; a waiting job is searched for, rarely).
            if lanes[key]!.first === job {
                lanes[key]!.removeFirst()
            } else if let i = lanes[key]!.firstIndex(where: { $0 === job }) {
                lanes[key]!.remove(at: i)
            }
            if lanes[key]!.isEmpty { lanes.removeValue(forKey: key) }
        }
        if held, job.isGated, let i = ready.firstIndex(where: { $0 === job }) {
            // A gated job released before it was admitted: it never runs.
            ready.remove(at: i)
            gatedReady -= 1
        }
        // The jobs now first in these lanes run if they are first in all of theirs; one goes to
        // this thread when it is a dispatcher thread that ran the released job.
        let me = pthread_self()
        let inline = runningOn[id].map { pthread_equal($0, me) != 0 } ?? false
        for key in keys {
            guard let next = lanes[key]?.first, !holders.contains(ObjectIdentifier(next)) else { continue }
            if isFirst(next, in: lanesOf[ObjectIdentifier(next)] ?? []) {
                start(next, handOffTo: inline ? me : nil)
            }
        }
        if !held { wakeAll() }
    }

    /// A job that holds its lanes goes to the thread that asked for it, or to the ready queue.
    private func start(_ job: Job, handOffTo thread: pthread_t?) {
        holders.insert(ObjectIdentifier(job))
        if let thread, handoff[thread] == nil, !job.isGated {
            handoff[thread] = job
            return
        }
        makeReady(job)
    }

    private func makeReady(_ job: Job) {
        if job.isGated { gatedReady += 1 }
        ready.append(job)
        wakeOne()
    }

    /// How many threads wait for work (for tests and diagnostics).
    var idleThreads: Int {
        condition.lock()
        defer { condition.unlock() }
        return idle.count
    }

    /// Stops the threads once the queue is empty (they finish what they run).
    func stop() {
        condition.lock()
        stopped = true
        wakeAll()
        condition.unlock()
    }

    /// Removes and returns every job that has not started, freeing their lanes. Gated jobs stay:
    /// their runs end them, each with an outcome of its own, and they now reach the head of their
    /// lanes.
    func drainQueued() -> [Job] {
        condition.lock()
        defer { condition.unlock() }
        var out = ready.filter { !$0.isGated } + Array(handoff.values)
        ready.removeAll { !$0.isGated }
        handoff.removeAll()
        var seen = Set(out.map(ObjectIdentifier.init))
        for key in Array(lanes.keys) {
            for job in lanes[key] ?? [] where !holders.contains(ObjectIdentifier(job)) && !job.isGated {
                if seen.insert(ObjectIdentifier(job)).inserted { out.append(job) }
            }
        }
        // Those waiting in lanes first, so that freeing a held lane hands it to no job of theirs.
        for job in out.sorted(by: { a, b in !holders.contains(ObjectIdentifier(a)) && holders.contains(ObjectIdentifier(b)) }) {
            releaseLocked(job)
        }
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

    /// The first ready job that may run now: a gated job only once it is admitted.
    private func nextRunnable() -> Int? {
        if gatedReady == 0 { return ready.isEmpty ? nil : 0 }
        return ready.firstIndex { !$0.isGated || $0.admit() }
    }

    /// The jobs right behind `head` in every one of its lanes, in order, that may share its run;
    /// they now hold the lanes with it. Taken when the run begins, so each came before it.
    private func takeSharing(_ head: Job) -> [Job] {
        guard let keys = lanesOf[ObjectIdentifier(head)], let lane = lanes[keys[0]], lane.count > 1 else { return [] }
        var out: [Job] = []
        var position = 1
        while out.count < maxSharing, position < lane.count {
            let next = lane[position]
            guard next.mayShareRun(with: head), let nextKeys = lanesOf[ObjectIdentifier(next)],
                nextKeys.count == keys.count, Set(nextKeys) == Set(keys),
                keys.allSatisfy({ key in lanes[key].map { $0.count > position && $0[position] === next } ?? false })
            else { break }
            holders.insert(ObjectIdentifier(next))
            out.append(next)
            position += 1
        }
        return out
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
                if job.isGated { gatedReady -= 1 }
            }
            runningOn[ObjectIdentifier(job)] = me
            let sharing = takeSharing(job)
            for other in sharing { runningOn[ObjectIdentifier(other)] = me }
            let execute = self.execute
            condition.unlock()
            execute?(job, sharing)
            condition.lock()
            runningOn.removeValue(forKey: ObjectIdentifier(job))
            for other in sharing { runningOn.removeValue(forKey: ObjectIdentifier(other)) }
            if job.isGated {
                job.leave()
                wakeAll()
            }
            condition.unlock()
        }
    }
}
