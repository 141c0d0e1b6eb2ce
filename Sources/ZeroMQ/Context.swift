import CZeroMQ
import Synchronization

/// A libzmq context: the I/O threads and the `inproc://` namespace that sockets share.
///
/// Make one per process (or one per test). A context is thread-safe, as libzmq contexts are, so
/// it can be shared between threads and tasks; the sockets it makes cannot (see ``Socket``).
///
/// Every ``Socket`` keeps its context alive, so the context is terminated (`zmq_ctx_term`) when
/// the context and all of its sockets are gone. Termination waits for each socket's linger
/// period: set a short linger (``Socket/setLinger(milliseconds:)``) on sockets that may hold
/// unsent messages.
public final class Context: @unchecked Sendable {
    // Safety of @unchecked Sendable: `handle` is immutable and libzmq's context functions
    // (zmq_socket, zmq_ctx_shutdown, zmq_ctx_get/set) are thread-safe.

    /// The `void *` libzmq context.
    let handle: UnsafeMutableRawPointer
    private let terminated = TerminationFlag()

    private final class TerminationFlag: Sendable {
        private let done = Mutex(false)
        /// True for the first caller only.
        func claim() -> Bool {
            done.withLock { done in
                if done { return false }
                done = true
                return true
            }
        }
    }

    /// Creates a context with `ioThreads` background I/O threads (`ZMQ_IO_THREADS`).
    ///
    /// - Throws: ``ZMQError`` when libzmq cannot create the context or refuses the thread count.
    public init(ioThreads: Int = 1) throws {
        guard let handle = zmq_ctx_new() else {
            throw ZMQError.last("zmq_ctx_new")
        }
        if ioThreads != 1 {
            guard let value = Int32(exactly: ioThreads),
                zmq_ctx_set(handle, ZMQ_IO_THREADS, value) == 0
            else {
                let error = ZMQError(operation: "zmq_ctx_set(ZMQ_IO_THREADS)", errno: EINVAL)
                zmq_ctx_term(handle)
                throw error
            }
        }
        self.handle = handle
    }

    /// Makes a socket of the given type in this context.
    ///
    /// The socket belongs to the calling thread from now on (see ``Socket``).
    ///
    /// - Throws: ``ZMQError`` (`zmq_socket`), for example `ETERM` after ``shutdown()`` or
    ///   `EMFILE` when the context's socket limit is reached.
    public func makeSocket(_ type: SocketType) throws -> Socket {
        guard let socket = zmq_socket(handle, type.rawValue) else {
            throw ZMQError.last("zmq_socket")
        }
        return Socket(handle: socket, type: type, context: self)
    }

    /// Shuts the context down (`zmq_ctx_shutdown`): every blocking call on its sockets returns
    /// `ETERM` (as a thrown ``ZMQError`` with ``ZMQError/isTerminated``), and new sockets cannot be
    /// made. Sockets must still be closed by their owning threads. Safe from any thread, and
    /// more than once.
    public func shutdown() {
        _ = zmq_ctx_shutdown(handle)
    }

    /// Terminates the context now (`zmq_ctx_term`): waits until every socket's queued messages
    /// are sent or its linger period ends. Every socket of the context must be closed first, or
    /// this blocks. Later calls, and `deinit`, do nothing.
    public func terminate() {
        guard terminated.claim() else { return }
        while zmq_ctx_term(handle) != 0 && czmq_errno() == EINTR {}
    }

    deinit {
        // Waits for sockets' linger periods; all sockets are closed, since each one retains
        // its context.
        terminate()
    }
}
