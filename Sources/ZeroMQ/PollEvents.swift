import CZeroMQ

/// Events ``poll(_:timeoutMs:)`` reports for one item (`ZMQ_POLLIN`, `ZMQ_POLLOUT`,
/// `ZMQ_POLLERR`).
public struct PollEvents: OptionSet, Sendable, Hashable, CustomStringConvertible {
    /// The `zmq_pollitem_t.revents` bits.
    public var rawValue: Int16

    /// Creates events from `zmq_pollitem_t` bits.
    public init(rawValue: Int16) {
        self.rawValue = rawValue
    }

    /// A message can be received without blocking (for a descriptor: it is readable).
    public static let readable = PollEvents(rawValue: Int16(ZMQ_POLLIN))
    /// A message can be sent without blocking (for a descriptor: it is writable).
    public static let writable = PollEvents(rawValue: Int16(ZMQ_POLLOUT))
    /// An error condition on a raw descriptor (sockets never report it).
    public static let error = PollEvents(rawValue: Int16(ZMQ_POLLERR))

    /// `"[readable, writable]"` form.
    public var description: String {
        var names: [String] = []
        if contains(.readable) { names.append("readable") }
        if contains(.writable) { names.append("writable") }
        if contains(.error) { names.append("error") }
        return "[" + names.joined(separator: ", ") + "]"
    }
}
