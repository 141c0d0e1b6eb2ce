@testable import ECPEngine
import Synchronization
import Testing
import Threading

/// The engine's ways of waiting: the scheduler of deadlines and events, and the registry through
/// which a shutdown hears of its machine's power-off.
@Suite("Waiting: scheduler and machine stops")
struct WaitingTests {
    @Test("a thread's work awaited with a time limit gives its result when it ends in time, nil only when the limit passes")
    func threadRunWithTimeout() async {
        for _ in 0..<50 {
            let value = await WorkerThread.run(name: "test-run", timeout: .seconds(10)) { 42 }
            #expect(value == 42)
            let done: Void? = await WorkerThread.run(name: "test-run", timeout: .seconds(10)) {}
            #expect(done != nil, "work that returns nothing and ends in time is not a timeout")
        }
        let gate = OneShot<Bool>()
        let late = await WorkerThread.run(name: "test-run", timeout: .milliseconds(50)) { gate.wait() }
        #expect(late == nil)
        gate.set(true)
    }

    @Test("a scheduler runs actions by due time, and those due now in the order they came")
    func schedulerOrder() {
        let scheduler = Scheduler(name: "test-sched")
        defer { scheduler.stop() }
        let order = Mutex<[String]>([])
        let done = OneShot<Void>()
        let start = monotonicNanos()
        scheduler.run(afterMilliseconds: 150) {
            order.withLock { $0.append("late") }
            done.set(())
        }
        scheduler.run(afterMilliseconds: 50) { order.withLock { $0.append("soon") } }
        for i in 0..<5 { scheduler.run { order.withLock { $0.append("now\(i)") } } }
        done.wait()
        #expect(order.withLock { $0 } == ["now0", "now1", "now2", "now3", "now4", "soon", "late"])
        #expect(millis(since: start) >= 150, "the last action waited for its due time")
    }

    @Test("a stopped scheduler drops what it has not run, and takes nothing more")
    func schedulerStop() {
        let scheduler = Scheduler(name: "test-sched")
        let ran = Atomic(false)
        scheduler.run(afterMilliseconds: 60_000) { ran.store(true, ordering: .relaxed) }
        scheduler.stop()
        scheduler.run { ran.store(true, ordering: .relaxed) }
        let flag = OneShot<Void>()
        let other = Scheduler(name: "test-sched2")
        other.run(afterMilliseconds: 50) { flag.set(()) }
        flag.wait()
        other.stop()
        let didRun = ran.load(ordering: .relaxed)
        #expect(!didRun)
    }

    @Test("a shutdown's wait ends at its machine's stop, not another's, and otherwise at its deadline")
    func machineStops() {
        let stops = MachineStops()
        let uuid = "6695EB01-F6A4-8304-79AA-97F2502E193F"
        let seen = stops.watch(uuid)
        defer { stops.unwatch(uuid) }
        // Unwatched machines' stops are not counted; the watched one is matched without case.
        stops.stopped("00000000-0000-0000-0000-000000000000")
        let start = monotonicNanos()
        #expect(stops.wait(uuid, beyond: seen, until: monotonicNanos() + 50_000_000) == seen)
        #expect(millis(since: start) >= 50, "without a stop the wait lasts until its deadline")

        let scheduler = Scheduler(name: "test-stop")
        defer { scheduler.stop() }
        scheduler.run(afterMilliseconds: 20) { stops.stopped(uuid.lowercased()) }
        let begun = monotonicNanos()
        let after = stops.wait(uuid, beyond: seen, until: monotonicNanos() + 30_000_000_000)
        #expect(after == seen + 1)
        #expect(millis(since: begun) < 10_000, "the stop ended the wait long before its deadline")
        // A stop that came before the wait is not missed.
        stops.stopped(uuid)
        #expect(stops.wait(uuid, beyond: after, until: monotonicNanos() + 30_000_000_000) == after + 1)
    }
}
