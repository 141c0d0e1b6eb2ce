/// A value one thread hands over once, and that other threads block for: how a thread tells
/// whoever started it that it is ready (or could not start), or that it has ended.
public final class OneShot<Value: Sendable>: @unchecked Sendable {
    // Safety of @unchecked Sendable: `value` is only touched under `condition`'s lock.
    private let condition = Condition()
    private var value: Value?
    private var isSet = false

    public init() {}

    /// Hands the value over; later calls are ignored.
    public func set(_ value: Value) {
        condition.lock()
        defer { condition.unlock() }
        guard !isSet else { return }
        self.value = value
        isSet = true
        condition.broadcast()
    }

    /// Blocks until the value is handed over, and returns it.
    public func wait() -> Value {
        condition.lock()
        defer { condition.unlock() }
        while !isSet { condition.wait() }
        return value!
    }
}
