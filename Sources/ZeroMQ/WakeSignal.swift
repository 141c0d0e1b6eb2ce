import CZeroMQ
import Glibc

/// A wake-up signal that any thread can raise and that ``poll(_:timeoutMs:)`` can wait on,
/// through ``PollItem/fileDescriptor(_:readable:)`` (a Linux `eventfd`).
///
/// The polling thread includes ``fileDescriptor`` in its poll; another thread calls ``raise()``
/// after queueing work; the polling thread wakes, calls ``drain()`` and takes the work. Raises
/// that happen before the drain are merged into one wake-up, so the work queue, not the number
/// of wake-ups, says how much there is to do.
public final class WakeSignal: @unchecked Sendable {
    // Safety of @unchecked Sendable: `fileDescriptor` is immutable, and concurrent read/write
    // on an eventfd is safe.

    /// The `eventfd` (non-blocking, close-on-exec): readable while the signal is raised.
    public let fileDescriptor: Int32

    /// Creates the signal, lowered.
    ///
    /// - Throws: ``ZMQError`` (`eventfd`) when the system cannot create the descriptor.
    public init() throws {
        let fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard fd >= 0 else {
            throw ZMQError.lastSystem("eventfd")
        }
        self.fileDescriptor = fd
    }

    /// Raises the signal: the descriptor becomes readable and a poll waiting on it returns.
    /// Cheap (one `write`), never blocks, callable from any thread.
    public func raise() {
        var one: UInt64 = 1
        while write(fileDescriptor, &one, MemoryLayout<UInt64>.size) < 0 {
            // EAGAIN means the counter is at its maximum: the signal is raised anyway.
            guard errno == EINTR else { return }
        }
    }

    /// Lowers the signal; call it from the polling thread after a wake-up, before taking the
    /// queued work (so a raise that comes during the work wakes the next poll).
    public func drain() {
        var value: UInt64 = 0
        while true {
            let count = read(fileDescriptor, &value, MemoryLayout<UInt64>.size)
            if count > 0 { continue }  // read until EAGAIN: the counter is zero
            if count < 0 && errno == EINTR { continue }
            return
        }
    }

    deinit {
        close(fileDescriptor)
    }
}
