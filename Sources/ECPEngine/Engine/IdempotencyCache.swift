import DequeModule
import ECPProtocol
import Threading
import FoundationEssentials

/// Remembers recent command ids and their results (the encoded bytes, a few hundred each), so a
/// command sent twice runs once.
///
/// An id is kept while it is among the last `capacity` ids, and beyond that while it is younger
/// than `window`, but never past `hardLimit` entries, so memory stays bounded under a flood.
final class IdempotencyCache<Waiter: Sendable>: @unchecked Sendable {
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

    private let lock = Lock()
    private var entries: [String: Entry] = [:]
    private var order = Deque<(id: String, at: UInt64)>()
    let capacity: Int
    let window: UInt64
    let hardLimit: Int

    /// - Parameters:
    ///   - capacity: ids always kept (the last `capacity`).
    ///   - windowSeconds: younger ids are kept beyond `capacity`...
    ///   - hardLimit: ...up to this many in all (default twice `capacity`), so memory stays bounded.
    init(capacity: Int = 10_000, windowSeconds: Double = 600, hardLimit: Int? = nil) {
        self.capacity = capacity
        self.window = UInt64(windowSeconds * 1e9)
        self.hardLimit = max(hardLimit ?? 2 * capacity, capacity)
    }

    /// Looks an id up and, when new, records it as running. (Each dictionary operation here and
    /// below hashes the id once: the common case, a new id, costs one hash.)
    func begin(_ id: String, waiter: Waiter) -> Lookup {
        lock.lock()
        defer { lock.unlock() }
        guard let previous = entries.updateValue(.running([]), forKey: id) else {
            order.append((id, monotonicNanos()))
            evict()
            return .new
        }
        switch previous {
        case .running(var waiters):
            waiters.append(waiter)
            entries[id] = .running(waiters)
            return .running
        case .done(let result):
            entries[id] = previous
            return .done(result)
        }
    }

    /// Records the result and returns the duplicates that waited for it.
    func complete(_ id: String, result: [UInt8]) -> [Waiter] {
        // Kept in a buffer of its own size: the writer's buffer has room to spare, and thousands
        // of results are kept.
        let result = result.withUnsafeBufferPointer { [UInt8]($0) }
        lock.lock()
        defer { lock.unlock() }
        switch entries.updateValue(.done(result), forKey: id) {
        case .running(let waiters):
            return waiters
        case .done(let first):
            // Completed twice: the first result stays.
            entries[id] = .done(first)
            return []
        case .none:
            // Forgotten meanwhile: it stays forgotten.
            entries.removeValue(forKey: id)
            return []
        }
    }

    /// Forgets an id (a command that was never run, e.g. refused at shutdown).
    func forget(_ id: String) -> [Waiter] {
        lock.lock()
        defer { lock.unlock() }
        if case .running(let waiters) = entries.removeValue(forKey: id) { return waiters }
        return []
    }

    var count: Int {
        lock.lock()
        defer { lock.unlock() }
        return entries.count
    }

    private func evict() {
        let now = monotonicNanos()
        var budget = order.count
        while let oldest = order.first, order.count > capacity, budget > 0 {
            budget -= 1
            if order.count <= hardLimit && now &- oldest.at < window { break }
            order.removeFirst()
            // Only finished entries go; a running one is kept until it completes.
            if case .running(let waiters) = entries.removeValue(forKey: oldest.id) {
                entries[oldest.id] = .running(waiters)
                order.append((oldest.id, now))
            }
        }
    }
}
