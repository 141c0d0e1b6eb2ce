import Glibc

/// A thread of its own that runs actions when they fall due, one at a time, in the order of their
/// due times (and of scheduling, among equal ones): per-command deadlines, or events that must
/// keep their order. It sleeps on a condition until the earliest due time or a new action.
///
/// Actions should be short: a slow one delays every action after it.
public final class Scheduler: @unchecked Sendable {
    // Safety of @unchecked Sendable: `heap`, `sequence`, `started` and `stopped` are only touched
    // under `condition`'s lock.
    private let name: String
    private let condition = Condition()
    /// A binary min-heap on (due, sequence).
    private var heap: [Entry] = []
    private var sequence: UInt64 = 0
    private var started = false
    private var stopped = false

    private struct Entry {
        let due: UInt64
        let sequence: UInt64
        let action: @Sendable () -> Void

        func precedes(_ other: Entry) -> Bool {
            (due, sequence) < (other.due, other.sequence)
        }
    }

    /// - Parameter name: the thread's name, which starts with the first action.
    public init(name: String) {
        self.name = name
    }

    /// Runs `action` once every action scheduled before it with an earlier or equal due time has run.
    public func run(_ action: @escaping @Sendable () -> Void) {
        schedule(at: 0, action)
    }

    /// Runs `action` `milliseconds` from now (or later, behind earlier actions).
    public func run(afterMilliseconds milliseconds: Int, _ action: @escaping @Sendable () -> Void) {
        schedule(at: monotonicNanos() + UInt64(max(0, milliseconds)) * 1_000_000, action)
    }

    /// Ends the thread; actions not yet run are dropped.
    public func stop() {
        condition.lock()
        stopped = true
        heap.removeAll()
        condition.signal()
        condition.unlock()
    }

    private func schedule(at due: UInt64, _ action: @escaping @Sendable () -> Void) {
        condition.lock()
        defer { condition.unlock() }
        if stopped { return }
        sequence += 1
        push(Entry(due: due, sequence: sequence, action: action))
        if !started {
            started = true
            WorkerThread.start(name: name) { self.loop() }
        }
        // Only one thread waits here; it looks again at the earliest due time.
        condition.signal()
    }

    private func loop() {
        condition.lock()
        while !stopped {
            guard let first = heap.first else {
                condition.wait()
                continue
            }
            let now = monotonicNanos()
            if first.due > now {
                condition.wait(seconds: Double(first.due - now) / 1e9)
                continue
            }
            let action = popFirst().action
            condition.unlock()
            action()
            condition.lock()
        }
        condition.unlock()
    }

    private func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private func popFirst() -> Entry {
        let first = heap[0]
        let last = heap.removeLast()
        guard !heap.isEmpty else { return first }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].precedes(heap[smallest]) { smallest = left }
            if right < heap.count && heap[right].precedes(heap[smallest]) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return first
    }
}
