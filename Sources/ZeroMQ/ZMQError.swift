import CZeroMQ
import Glibc

/// An error reported by libzmq (or by a system call this module makes on its behalf).
///
/// It carries the name of the failing call, the `errno` value and the text libzmq gives for it
/// (`zmq_strerror`), so a log line says what failed and why without any further lookup.
///
/// ```swift
/// do { try socket.bind("tcp://127.0.0.1:5556") }
/// catch let error as ZMQError where error.errno == EADDRINUSE { ... }
/// ```
public struct ZMQError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The failing operation, for example `"zmq_bind"` or `"zmq_setsockopt(ZMQ_LINGER)"`.
    public var operation: String
    /// The `errno` value libzmq reported (system values such as `EADDRINUSE`, or libzmq's own
    /// such as `ETERM`).
    public var errno: Int32
    /// The human-readable text for ``errno``, as `zmq_strerror` gives it.
    public var message: String

    /// Creates an error for `operation` with the given `errno`; ``message`` is looked up with
    /// `zmq_strerror`.
    public init(operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
        self.message = String(cString: zmq_strerror(errno))
    }

    /// Creates an error with an explicit message.
    public init(operation: String, errno: Int32, message: String) {
        self.operation = operation
        self.errno = errno
        self.message = message
    }

    /// One line: `"zmq_bind failed: Address already in use (errno 98)"`.
    public var description: String {
        "\(operation) failed: \(message) (errno \(errno))"
    }

    /// `true` when the call would have blocked, or its send/receive timeout ran out (`EAGAIN`).
    public var isAgain: Bool { errno == EAGAIN }

    /// `true` when the context was shut down or terminated (`ETERM`): the socket should be
    /// closed and its thread should finish.
    public var isTerminated: Bool { errno == ETERM }

    /// `true` when a signal interrupted the call (`EINTR`).
    public var isInterrupted: Bool { errno == EINTR }

    /// `true` when a ROUTER with `ZMQ_ROUTER_MANDATORY` had no peer of the given identity
    /// (`EHOSTUNREACH`).
    public var isHostUnreachable: Bool { errno == EHOSTUNREACH }

    /// The error libzmq just reported on this thread, for `operation`.
    static func last(_ operation: String) -> ZMQError {
        ZMQError(operation: operation, errno: czmq_errno())
    }

    /// The error the C library just reported on this thread through the system `errno`
    /// (for calls outside libzmq, such as `eventfd`).
    static func lastSystem(_ operation: String) -> ZMQError {
        ZMQError(operation: operation, errno: systemErrno())
    }
}

/// The system `errno` of the calling thread (outside the type, whose `errno` property would
/// shadow it).
private func systemErrno() -> Int32 { errno }
