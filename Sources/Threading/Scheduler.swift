import Glibc

/// A thread of its own that runs actions when they fall due, one at a time, in the order of their
/// due times (and of scheduling, among equal ones): per-command deadlines, or events that must
/// keep their order. It sleeps on a condition until the earliest due time or a new action.
///
/// Actions should be short: a slow one delays every action after it.
///
/// A scheduled action can be cancelled by its token: a deadline whose command finished long
/// before it must not keep what its action captured until it falls due (a day, for some).
public final class Scheduler: @unchecked Sendable {
    // Safety of @unchecked Sendable: `heap`, `actions`, `sequence`, `started` and `stopped` are
    // only touched under `condition`'s lock.
    private let name: String
    private let condition = Condition()
    /// A binary min-heap on (due, sequence). A cancelled entry stays in it, 16 bytes, until it
    /// falls due or the heap is compacted; its action is released at once.
    private var heap: [Entry] = []
    /// The actions not yet run nor cancelled, by their entry's sequence.
    private var actions: [UInt64: @Sendable () -> Void] = [:]
    private var sequence: UInt64 = 0
    private var started = false
    private var stopped = false

    /// Names one scheduled action, to cancel it.
    public struct Token: Sendable, Hashable {
        fileprivate let sequence: UInt64
    }

    private struct Entry {
        let due: UInt64
        let sequence: UInt64

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

    /// Runs `action` `milliseconds` from now (or later, behind earlier actions), unless cancelled
    /// with the token returned.
    @discardableResult
    public func run(afterMilliseconds milliseconds: Int, _ action: @escaping @Sendable () -> Void) -> Token {
        schedule(at: monotonicNanos() + UInt64(max(0, milliseconds)) * 1_000_000, action)
    }

    /// Drops an action not yet run, and what it captured; one already run or running is left be.
    public func cancel(_ token: Token) {
        condition.lock()
        defer { condition.unlock() }
        guard actions.removeValue(forKey: token.sequence) != nil else { return }
        // Cancelled entries would otherwise pile up in the heap until their due times.
        if heap.count > 64 && heap.count > 2 * actions.count { compact() }
    }

    /// Actions scheduled and neither run nor cancelled.
    public var pendingCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return actions.count
    }

    /// Ends the thread; actions not yet run are dropped.
    public func stop() {
        condition.lock()
        stopped = true
        heap.removeAll()
        actions.removeAll()
        condition.signal()
        condition.unlock()
    }

    @discardableResult
    private func schedule(at due: UInt64, _ action: @escaping @Sendable () -> Void) -> Token {
        condition.lock()
        defer { condition.unlock() }
        sequence += 1
        let token = Token(sequence: sequence)
        if stopped { return token }
        push(Entry(due: due, sequence: sequence))
        actions[sequence] = action
        if !started {
            started = true
            WorkerThread.start(name: name) { self.loop() }
        }
        // Only one thread waits here; it looks again at the earliest due time.
        condition.signal()
        return token
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
            guard let action = actions.removeValue(forKey: popFirst().sequence) else { continue }
            condition.unlock()
            action()
            condition.lock()
        }
        condition.unlock()
    }

    /// Rebuilds the heap from the entries still to run.
    private func compact() {
        let live = heap.filter { actions[$0.sequence] != nil }
        heap.removeAll(keepingCapacity: false)
        heap.reserveCapacity(live.count)
        for entry in live { push(entry) }
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
