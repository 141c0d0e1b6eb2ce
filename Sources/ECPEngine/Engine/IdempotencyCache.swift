import DequeModule
import ECPProtocol
import Threading
import FoundationEssentials
import Synchronization

/// Remembers recent command ids and their results (the encoded bytes, a few hundred each), so a
/// command sent twice runs once.
///
/// An id is kept while it is among the last `capacity` ids, and beyond that while it is younger
/// than `window`, but never past `hardLimit` entries, so memory stays bounded under a flood. The
/// results kept also stay within `maxBytes` in all: a few large results (a `list` of thousands of
/// machines) would otherwise hold many times what the counts suggest. Running entries, which hold
/// no result yet, are never evicted.
final class IdempotencyCache<Waiter: Sendable>: Sendable {
    enum Lookup {
        /// First time: run it.
        case new
        /// Running now: the waiter was added and gets the result when it ends.
        case running
        /// Done: here is the first execution's result, as published.
        case done([UInt8])
    }

    private enum Entry {
        case running([Waiter])
        case done([UInt8])
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var order = Deque<(id: String, at: UInt64)>()
        /// The sum of the finished entries' results' sizes.
        var bytes = 0
    }

    private let state = Mutex(State())
    let capacity: Int
    let window: UInt64
    let hardLimit: Int
    let maxBytes: Int

    /// - Parameters:
    ///   - capacity: ids always kept (the last `capacity`).
    ///   - windowSeconds: younger ids are kept beyond `capacity`...
    ///   - hardLimit: ...up to this many in all (default twice `capacity`), so memory stays bounded.
    ///   - maxBytes: the results kept weigh this much at most, whatever the counts allow; the
    ///     oldest finished ones go first. A result larger than this on its own is not kept.
    init(capacity: Int = 10_000, windowSeconds: Double = 600, hardLimit: Int? = nil, maxBytes: Int = 64 << 20) {
        self.capacity = capacity
        self.window = UInt64(windowSeconds * 1e9)
        self.hardLimit = max(hardLimit ?? 2 * capacity, capacity)
        self.maxBytes = maxBytes
    }

    /// Looks an id up and, when new, records it as running. (Each dictionary operation here and
    /// below hashes the id once: the common case, a new id, costs one hash.)
    func begin(_ id: String, waiter: Waiter) -> Lookup {
        state.withLock { state in
            guard let previous = state.entries.updateValue(.running([]), forKey: id) else {
                state.order.append((id, monotonicNanos()))
                evict(&state)
                return .new
            }
            switch previous {
            case .running(var waiters):
                waiters.append(waiter)
                state.entries[id] = .running(waiters)
                return .running
            case .done(let result):
                state.entries[id] = previous
                return .done(result)
            }
        }
    }

    /// Records the result and returns the duplicates that waited for it.
    func complete(_ id: String, result: [UInt8]) -> [Waiter] {
        // Kept in a buffer of its own size: the writer's buffer has room to spare, and thousands
        // of results are kept.
        let result = result.withUnsafeBufferPointer { [UInt8]($0) }
        return state.withLock { state in
            switch state.entries.updateValue(.done(result), forKey: id) {
            case .running(let waiters):
                state.bytes += result.count
                evictBytes(&state)
                return waiters
            case .done(let first):
                // Completed twice: the first result stays.
                state.entries[id] = .done(first)
                return []
            case .none:
                // Forgotten meanwhile: it stays forgotten.
                state.entries.removeValue(forKey: id)
                return []
            }
        }
    }

    /// Forgets an id (a command that was never run, e.g. refused at shutdown).
    func forget(_ id: String) -> [Waiter] {
        state.withLock { state in
            if case .running(let waiters) = state.entries.removeValue(forKey: id) { return waiters }
            return []
        }
    }

    var count: Int {
        state.withLock { $0.entries.count }
    }

    /// The sum of the kept results' sizes.
    var bytes: Int {
        state.withLock { $0.bytes }
    }

    /// Evicts the oldest finished entries while the results kept weigh more than `maxBytes`.
    private func evictBytes(_ state: inout State) {
        let now = monotonicNanos()
        var budget = state.order.count
        while state.bytes > maxBytes, budget > 0, let oldest = state.order.popFirst() {
            budget -= 1
            switch state.entries.removeValue(forKey: oldest.id) {
            case .done(let result):
                state.bytes -= result.count
            case .running(let waiters):
                state.entries[oldest.id] = .running(waiters)
                state.order.append((oldest.id, now))
            case .none:
                break
            }
        }
    }

    private func evict(_ state: inout State) {
        let now = monotonicNanos()
        var budget = state.order.count
        while let oldest = state.order.first, state.order.count > capacity, budget > 0 {
            budget -= 1
            if state.order.count <= hardLimit && now &- oldest.at < window { break }
            state.order.removeFirst()
            // Only finished entries go; a running one is kept until it completes.
            switch state.entries.removeValue(forKey: oldest.id) {
            case .running(let waiters):
                state.entries[oldest.id] = .running(waiters)
                state.order.append((oldest.id, now))
            case .done(let result):
                state.bytes -= result.count
            case .none:
                break
            }
        }
    }
}
