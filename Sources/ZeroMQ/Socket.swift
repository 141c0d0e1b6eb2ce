import CZeroMQ

/// A libzmq socket.
///
/// libzmq sockets are not thread-safe: a socket must be used and closed by one thread (or one
/// serial executor) at a time. `Socket` is therefore deliberately not `Sendable`, so the
/// compiler in strict concurrency mode refuses to let it cross to another thread or task.
/// Hand messages between threads through `inproc://` sockets or queues instead.
///
/// The socket is closed by ``close()`` or, at the latest, when the object is released; closing
/// honours the linger period (``setLinger(milliseconds:)``). A socket keeps its ``Context``
/// alive.
///
/// ```swift
/// let context = try Context()
/// let events = try context.makeSocket(.pub)
/// try events.setLinger(milliseconds: 100)
/// try events.bind("tcp://127.0.0.1:5556")
/// try events.send([Data("heartbeat.host1".utf8), Data("{}".utf8)])
/// ```
public final class Socket {
    /// The pattern of this socket.
    public let type: SocketType

    /// The context the socket was made in; kept alive as long as the socket exists, so that
    /// `zmq_ctx_term` never waits on a socket that nobody can close.
    public let context: Context

    /// The libzmq `void *` socket; `nil` once closed.
    private var _handle: UnsafeMutableRawPointer?

    init(handle: UnsafeMutableRawPointer, type: SocketType, context: Context) {
        self._handle = handle
        self.type = type
        self.context = context
    }

    deinit {
        if let handle = _handle {
            zmq_close(handle)
        }
    }

    /// The open libzmq socket, or `ENOTSOCK` once the socket is closed.
    func handle(for operation: @autoclosure () -> String) throws -> UnsafeMutableRawPointer {
        guard let handle = _handle else {
            throw ZMQError(operation: operation(), errno: ENOTSOCK)
        }
        return handle
    }

    /// `true` once ``close()`` has been called.
    public var isClosed: Bool { _handle == nil }

    /// Closes the socket (`zmq_close`). Pending outgoing messages are kept for the linger
    /// period. Calling it again does nothing; any other call on a closed socket throws
    /// `ENOTSOCK`.
    public func close() {
        if let handle = _handle {
            _handle = nil
            zmq_close(handle)
        }
    }

    /// Binds the socket to a local address (`zmq_bind`), for example `"tcp://127.0.0.1:5556"`,
    /// `"tcp://127.0.0.1:*"` (any free port, see ``lastEndpoint``) or `"inproc://name"`.
    ///
    /// - Throws: ``ZMQError`` (`zmq_bind`), for example `EADDRINUSE`, `EINVAL` or
    ///   `EPROTONOSUPPORT`.
    public func bind(_ address: String) throws {
        let handle = try handle(for: "zmq_bind")
        guard zmq_bind(handle, address) == 0 else {
            throw ZMQError.last("zmq_bind")
        }
    }

    /// Connects the socket to an address (`zmq_connect`). The connection is made, and remade
    /// after failures, in the background; the call only checks the address.
    ///
    /// - Throws: ``ZMQError`` (`zmq_connect`), for example `EINVAL` or `EPROTONOSUPPORT`.
    public func connect(_ address: String) throws {
        let handle = try handle(for: "zmq_connect")
        guard zmq_connect(handle, address) == 0 else {
            throw ZMQError.last("zmq_connect")
        }
    }

    /// Stops listening on an address bound earlier (`zmq_unbind`).
    public func unbind(_ address: String) throws {
        let handle = try handle(for: "zmq_unbind")
        guard zmq_unbind(handle, address) == 0 else {
            throw ZMQError.last("zmq_unbind")
        }
    }

    /// Disconnects from an address connected earlier (`zmq_disconnect`).
    public func disconnect(_ address: String) throws {
        let handle = try handle(for: "zmq_disconnect")
        guard zmq_disconnect(handle, address) == 0 else {
            throw ZMQError.last("zmq_disconnect")
        }
    }

    /// Binds or connects, as the endpoint's ``Endpoint/direction`` says.
    public func attach(_ endpoint: Endpoint) throws {
        switch endpoint.direction {
        case .bind: try bind(endpoint.address)
        case .connect: try connect(endpoint.address)
        }
    }
}

/// `Socket` must stay on its owning thread (libzmq's socket-per-thread rule).
@available(*, unavailable)
extension Socket: Sendable {}
