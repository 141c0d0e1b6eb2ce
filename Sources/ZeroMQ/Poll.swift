import CZeroMQ

/// One thing for ``poll(_:timeoutMs:)`` to watch: a ``Socket`` or a raw file descriptor (such
/// as a ``WakeSignal``'s).
///
/// Not `Sendable`: it holds a socket, which belongs to its thread.
public struct PollItem {
    /// What is watched.
    enum Target {
        case socket(Socket)
        case fileDescriptor(Int32)
    }

    /// What is watched.
    let target: Target
    /// The events asked for.
    let events: PollEvents

    /// Watches a socket for incoming messages (`readable`) and/or room to send (`writable`).
    public static func socket(_ socket: Socket, readable: Bool = true, writable: Bool = false)
        -> PollItem
    {
        var events: PollEvents = []
        if readable { events.insert(.readable) }
        if writable { events.insert(.writable) }
        return PollItem(target: .socket(socket), events: events)
    }

    /// Watches a raw file descriptor, for example ``WakeSignal/fileDescriptor``.
    public static func fileDescriptor(_ fd: Int32, readable: Bool = true) -> PollItem {
        PollItem(target: .fileDescriptor(fd), events: readable ? .readable : [])
    }
}

/// `PollItem` holds a ``Socket`` and must stay on the socket's thread.
@available(*, unavailable)
extension PollItem: Sendable {}

/// Waits until at least one item has one of its events, or the timeout runs out (`zmq_poll`).
///
/// Every socket in `items` must belong to the calling thread.
///
/// - Parameters:
///   - items: What to watch.
///   - timeoutMs: Milliseconds to wait: -1 forever, 0 return at once.
/// - Returns: One ``PollEvents`` per item, in the same order; all empty when the timeout ran
///   out or a signal interrupted the wait (`EINTR`, not an error).
/// - Throws: ``ZMQError`` (`zmq_poll`): `ETERM` after ``Context/shutdown()`` of a socket's
///   context, `ENOTSOCK` for a closed socket.
public func poll(_ items: [PollItem], timeoutMs: Int) throws -> [PollEvents] {
    var pollItems: [zmq_pollitem_t] = []
    pollItems.reserveCapacity(items.count)
    for item in items {
        switch item.target {
        case .socket(let socket):
            let handle = try socket.handle(for: "zmq_poll")
            pollItems.append(
                zmq_pollitem_t(socket: handle, fd: -1, events: item.events.rawValue, revents: 0))
        case .fileDescriptor(let fd):
            pollItems.append(
                zmq_pollitem_t(socket: nil, fd: fd, events: item.events.rawValue, revents: 0))
        }
    }
    // The sockets must stay open for the duration of the call.
    let rc = withExtendedLifetime(items) {
        zmq_poll(&pollItems, Int32(pollItems.count), timeoutMs)
    }
    if rc < 0 {
        let code = czmq_errno()
        if code == EINTR {
            return Array(repeating: [], count: items.count)
        }
        throw ZMQError(operation: "zmq_poll", errno: code)
    }
    return pollItems.map { PollEvents(rawValue: $0.revents) }
}
