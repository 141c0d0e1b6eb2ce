import ECPProtocol
import Foundation
import Synchronization
import Testing

@testable import ECPEngine

/// A job for the dispatcher alone: its number and the lanes it holds.
private final class TestJob: DispatchJob {
    let n: Int
    let lanes: [String]
    /// Jobs of one non-nil group that wait next to each other share a run.
    let group: String?
    init(_ n: Int, _ lanes: [String], group: String? = nil) {
        self.n = n
        self.lanes = lanes
        self.group = group
    }

    func mayShareRun(with head: TestJob) -> Bool { group != nil && group == head.group }
}

/// What the jobs saw while they ran.
private final class Record: Sendable {
    struct State {
        var order: [Int] = []
        var running: [String: Int] = [:]
        var overlaps = 0
        var threads: Set<UInt> = []
    }
    let state = Mutex(State())
    let done = DispatchSemaphore(value: 0)
}

/// Waits until `condition` holds, for at most `seconds`.
private func eventually(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        if Date() > deadline { return false }
        sched_yield()
    }
    return true
}

@Suite("Dispatcher")
struct DispatcherTests {
    private static func start(threads: Int, record: Record) -> Dispatcher<TestJob> {
        let dispatcher = Dispatcher<TestJob>(threads: threads, name: "test-exec")
        dispatcher.start { [dispatcher] job, _ in
            record.state.withLock { s in
                for lane in job.lanes {
                    s.running[lane, default: 0] += 1
                    if s.running[lane]! > 1 { s.overlaps += 1 }
                }
                s.threads.insert(UInt(bitPattern: Int(bitPattern: UInt(pthread_self()))))
            }
            usleep(UInt32(job.n % 3) * 100)
            record.state.withLock { s in
                for lane in job.lanes { s.running[lane]! -= 1 }
                s.order.append(job.n)
            }
            dispatcher.release(job)
            record.done.signal()
        }
        return dispatcher
    }

    @Test("jobs of one lane run one at a time, in the order they came, however many wait")
    func oneLaneInOrder() {
        let record = Record()
        let dispatcher = Self.start(threads: 4, record: record)
        defer { dispatcher.stop() }
        let count = 500
        for n in 0..<count { dispatcher.submit(TestJob(n, ["m1"]), lanes: ["m1"]) }
        for _ in 0..<count { #expect(record.done.wait(timeout: .now() + 10) == .success) }
        let s = record.state.withLock { $0 }
        #expect(s.order == Array(0..<count))
        #expect(s.overlaps == 0)
    }

    @Test("a job holding two lanes waits for both, and the jobs of each lane keep their order")
    func twoLanes() {
        let record = Record()
        let dispatcher = Self.start(threads: 4, record: record)
        defer { dispatcher.stop() }
        var jobs: [TestJob] = []
        for n in 0..<300 {
            let lanes: [String] = n % 7 == 0 ? ["name", "uuid"] : (n % 2 == 0 ? ["name"] : ["uuid"])
            jobs.append(TestJob(n, lanes))
        }
        for job in jobs { dispatcher.submit(job, lanes: job.lanes) }
        for _ in jobs { #expect(record.done.wait(timeout: .now() + 10) == .success) }
        let s = record.state.withLock { $0 }
        #expect(s.overlaps == 0)
        for lane in ["name", "uuid"] {
            let expected = jobs.filter { $0.lanes.contains(lane) }.map(\.n)
            #expect(s.order.filter { n in jobs[n].lanes.contains(lane) } == expected, "order in lane \(lane)")
        }
    }

    @Test("jobs that come one by one to an idle pool all run on the thread that went idle last")
    func idlePoolWakesTheLastIdleThread() {
        let record = Record()
        let threads = 6
        let dispatcher = Self.start(threads: threads, record: record)
        defer { dispatcher.stop() }
        for n in 0..<40 {
            #expect(eventually { dispatcher.idleThreads == threads }, "every thread idle before job \(n)")
            dispatcher.submit(TestJob(n * 3, ["m\(n)"]), lanes: ["m\(n)"])
            #expect(record.done.wait(timeout: .now() + 10) == .success)
        }
        #expect(record.state.withLock { $0.threads.count } == 1)
    }
}

@Suite("Dispatcher: jobs taken out")
struct DispatcherReleaseTests {
    @Test("a waiting job that is released leaves its place; the jobs behind it run, in order")
    func waitingJobReleased() {
        let order = Mutex<[Int]>([])
        let gate = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let dispatcher = Dispatcher<TestJob>(threads: 2, name: "test-exec")
        dispatcher.start { [dispatcher] job, _ in
            if job.n == 0 { gate.wait() }
            order.withLock { $0.append(job.n) }
            dispatcher.release(job)
            done.signal()
        }
        defer { dispatcher.stop() }
        let jobs = (0..<5).map { TestJob($0, $0 == 2 ? ["a", "b"] : ["a"]) }
        for job in jobs { dispatcher.submit(job, lanes: job.lanes) }
        // Job 2 waits behind job 0 (which holds lane a until the gate opens): take it out.
        dispatcher.release(jobs[2])
        gate.signal()
        for _ in 0..<4 { #expect(done.wait(timeout: .now() + 10) == .success) }
        #expect(order.withLock { $0 } == [0, 1, 3, 4])
        // Both lanes are free again: a job that names them runs.
        let last = TestJob(9, ["a", "b"])
        dispatcher.submit(last, lanes: last.lanes)
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(order.withLock { $0 } == [0, 1, 3, 4, 9])
    }
}

@Suite("Dispatcher: shared runs")
struct DispatcherSharingTests {
    /// Behind a change that holds the lane, reads and changes queue; each run of reads that wait
    /// next to each other is one run, and a change between them keeps its place.
    @Test("reads waiting next to each other behind a change share one run; a change between them splits them")
    func readsShareARun() {
        let runs = Mutex<[[Int]]>([])
        let gate = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let dispatcher = Dispatcher<TestJob>(threads: 4, name: "test-exec")
        dispatcher.start { [dispatcher] job, sharing in
            if job.n == 0 { gate.wait() }
            runs.withLock { $0.append([job.n] + sharing.map(\.n)) }
            for j in CollectionOfOne(job) + sharing {
                dispatcher.release(j)
                done.signal()
            }
        }
        defer { dispatcher.stop() }
        // 0 a change; 1-4 reads; 5 a change; 6-7 reads; 8 a read of another group; 9 a read
        // that also names lane b, so it is not right behind 8 in the same lanes.
        let jobs = [
            TestJob(0, ["a"]),
            TestJob(1, ["a"], group: "r"), TestJob(2, ["a"], group: "r"), TestJob(3, ["a"], group: "r"),
            TestJob(4, ["a"], group: "r"),
            TestJob(5, ["a"]),
            TestJob(6, ["a"], group: "r"), TestJob(7, ["a"], group: "r"),
            TestJob(8, ["a"], group: "s"),
            TestJob(9, ["a", "b"], group: "s"),
        ]
        for job in jobs { dispatcher.submit(job, lanes: job.lanes) }
        gate.signal()
        for _ in jobs { #expect(done.wait(timeout: .now() + 10) == .success) }
        #expect(runs.withLock { $0 } == [[0], [1, 2, 3, 4], [5], [6, 7], [8], [9]])
    }

    @Test("a read that arrives while a run of reads is under way waits for the next run")
    func lateReadWaits() {
        let runs = Mutex<[[Int]]>([])
        let running = DispatchSemaphore(value: 0)
        let gate = DispatchSemaphore(value: 0)
        let done = DispatchSemaphore(value: 0)
        let dispatcher = Dispatcher<TestJob>(threads: 2, name: "test-exec")
        dispatcher.start { [dispatcher] job, sharing in
            if job.n == 0 {
                running.signal()
                gate.wait()
            }
            runs.withLock { $0.append([job.n] + sharing.map(\.n)) }
            for j in CollectionOfOne(job) + sharing {
                dispatcher.release(j)
                done.signal()
            }
        }
        defer { dispatcher.stop() }
        let first = TestJob(0, ["a"], group: "r")
        dispatcher.submit(first, lanes: first.lanes)
        #expect(running.wait(timeout: .now() + 10) == .success)
        let late = [TestJob(1, ["a"], group: "r"), TestJob(2, ["a"], group: "r")]
        for job in late { dispatcher.submit(job, lanes: job.lanes) }
        gate.signal()
        for _ in 0..<3 { #expect(done.wait(timeout: .now() + 10) == .success) }
        #expect(runs.withLock { $0 } == [[0], [1, 2]])
    }
}

/// A job admitted by a stage gate, as a restore's or host stop's machine is.
private final class GatedJob: DispatchJob {
    let n: Int
    let lanes: [String]
    let gate: StageGate?
    let stage: Int
    init(_ n: Int, _ lanes: [String], gate: StageGate? = nil, stage: Int = 0) {
        self.n = n
        self.lanes = lanes
        self.gate = gate
        self.stage = stage
    }

    func mayShareRun(with head: GatedJob) -> Bool { false }
    var isGated: Bool { gate != nil }
    func admit() -> Bool { gate?.admit(stage: stage) ?? true }
    func leave() { gate?.leave() }
}

@Suite("Dispatcher: gated jobs")
struct DispatcherGateTests {
    @Test("gated jobs hold their lanes before their stage opens, run stage by stage, at most `parallel` at once; other jobs pass by")
    func stagesAndParallel() {
        let gate = StageGate(parallel: 2)
        struct Seen { var order: [Int] = []; var running = 0; var most = 0 }
        let seen = Mutex(Seen())
        let done = DispatchSemaphore(value: 0)
        let dispatcher = Dispatcher<GatedJob>(threads: 6, name: "test-exec")
        dispatcher.start { [dispatcher] job, _ in
            seen.withLock { s in
                s.running += 1
                s.most = max(s.most, s.running)
            }
            usleep(20_000)
            seen.withLock { s in
                s.running -= 1
                s.order.append(job.n)
            }
            dispatcher.release(job)
            done.signal()
        }
        defer { dispatcher.stop() }
        // Stage 0: jobs 0-3 on lanes m0-m3; stage 1: jobs 10-11 on m10, m11.
        var gated = (0..<4).map { (GatedJob($0, ["m\($0)"], gate: gate, stage: 0)) }
        gated += [GatedJob(10, ["m10"], gate: gate, stage: 1), GatedJob(11, ["m11"], gate: gate, stage: 1)]
        dispatcher.submit(gated.map { ($0, $0.lanes) })
        // An ungated job on another lane runs at once; one on a gated machine's lane waits for it.
        let free = GatedJob(100, ["other"])
        let behind = GatedJob(101, ["m10"])
        dispatcher.submit(free, lanes: free.lanes)
        dispatcher.submit(behind, lanes: behind.lanes)
        #expect(done.wait(timeout: .now() + 10) == .success)
        #expect(seen.withLock { $0.order } == [100], "nothing gated runs before its stage opens")

        gate.open(through: 0)
        dispatcher.reconsider()
        for _ in 0..<4 { #expect(done.wait(timeout: .now() + 10) == .success) }
        #expect(Set(seen.withLock { $0.order }.dropFirst()) == [0, 1, 2, 3])
        #expect(seen.withLock { $0.most } <= 2, "at most two at once")
        #expect(done.wait(timeout: .now() + 0.1) == .timedOut, "stage 1 waits, and the job behind m10 with it")

        gate.open(through: 1)
        dispatcher.reconsider()
        for _ in 0..<3 { #expect(done.wait(timeout: .now() + 10) == .success) }
        let order = seen.withLock { $0.order }
        #expect(Set(order.suffix(3)) == [10, 11, 101], "\(order)")
        #expect(order.firstIndex(of: 10)! < order.firstIndex(of: 101)!, "the command on m10 came after its machine's gated job: \(order)")
    }

    @Test("a gated job released before it is admitted never runs, and frees its lane")
    func releasedBeforeAdmission() {
        let gate = StageGate(parallel: 1)
        let order = Mutex<[Int]>([])
        let done = DispatchSemaphore(value: 0)
        let dispatcher = Dispatcher<GatedJob>(threads: 2, name: "test-exec")
        dispatcher.start { [dispatcher] job, _ in
            order.withLock { $0.append(job.n) }
            dispatcher.release(job)
            done.signal()
        }
        defer { dispatcher.stop() }
        let waiting = GatedJob(1, ["m"], gate: gate, stage: 5)
        let behind = GatedJob(2, ["m"])
        dispatcher.submit(waiting, lanes: waiting.lanes)
        dispatcher.submit(behind, lanes: behind.lanes)
        dispatcher.release(waiting)
        #expect(done.wait(timeout: .now() + 10) == .success)
        gate.open(through: .max)
        dispatcher.reconsider()
        #expect(done.wait(timeout: .now() + 0.2) == .timedOut)
        #expect(order.withLock { $0 } == [2])
    }
}
