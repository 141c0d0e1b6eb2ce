import Threading

/// Machines a `shutdown` is waiting on, and their power-off events: the engine's lifecycle
/// handler reports each stop here, and a waiting shutdown sleeps until one comes for its machine
/// instead of re-reading the machine's state in a loop.
final class MachineStops: @unchecked Sendable {
    // Safety of @unchecked Sendable: `watches` is only touched under `condition`'s lock.
    private let condition = Condition()
    /// By lowercased UUID: how many shutdowns wait on the machine, and how many stop events came
    /// since the first of them began. Only watched machines are counted.
    private var watches: [String: (waiters: Int, stops: Int)] = [:]

    /// Starts watching a machine; returns the stop count to pass to the first `wait`. Every
    /// `watch` is paired with an `unwatch`.
    func watch(_ uuid: String) -> Int {
        let key = uuid.lowercased()
        condition.lock()
        defer { condition.unlock() }
        var watch = watches[key] ?? (0, 0)
        watch.waiters += 1
        watches[key] = watch
        return watch.stops
    }

    func unwatch(_ uuid: String) {
        let key = uuid.lowercased()
        condition.lock()
        defer { condition.unlock() }
        guard var watch = watches[key] else { return }
        watch.waiters -= 1
        watches[key] = watch.waiters > 0 ? watch : nil
    }

    /// A machine powered off (from libvirt's event thread).
    func stopped(_ uuid: String) {
        let key = uuid.lowercased()
        condition.lock()
        defer { condition.unlock() }
        guard watches[key] != nil else { return }
        watches[key]!.stops += 1
        condition.broadcast()
    }

    /// Sleeps until a stop event beyond `seen` comes for the watched machine, or until the
    /// monotonic instant `deadline`. Returns the stop count now, to pass to the next wait; it is
    /// larger than `seen` when a stop came.
    func wait(_ uuid: String, beyond seen: Int, until deadline: UInt64) -> Int {
        let key = uuid.lowercased()
        condition.lock()
        defer { condition.unlock() }
        while true {
            let stops = watches[key]?.stops ?? seen
            if stops > seen { return stops }
            let now = monotonicNanos()
            if now >= deadline { return stops }
            condition.wait(seconds: Double(deadline - now) / 1e9)
        }
    }
}
