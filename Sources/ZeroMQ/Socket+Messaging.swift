import CZeroMQ
import FoundationEssentials

extension Socket {
    /// Sends a whole multipart message: `ZMQ_SNDMORE` on every frame but the last.
    ///
    /// Frames may be of any size, including 0 bytes. libzmq delivers a multipart message
    /// atomically: the peer gets all frames or none.
    ///
    /// - Parameters:
    ///   - frames: The frames, at least one.
    ///   - dontWait: Do not block when the message cannot be queued now (`ZMQ_DONTWAIT`).
    /// - Returns: `false` when nothing was sent because libzmq said `EAGAIN` for the first frame:
    ///   with `dontWait`, the high-water mark is reached or there is no peer to send to; without
    ///   it, the send timeout (``setSendTimeout(milliseconds:)``) ran out. `true` otherwise.
    /// - Throws: ``ZMQError`` (`zmq_msg_send`): `EHOSTUNREACH` from a ROUTER with
    ///   ``setRouterMandatory(_:)`` when the identity is unknown, `EFSM` when a REQ/REP socket is
    ///   in the wrong state, `ETERM` after ``Context/shutdown()``, `EINVAL` for an empty `frames`.
    @discardableResult
    public func send(_ frames: [Data], dontWait: Bool = false) throws -> Bool {
        guard let first = frames.first else {
            throw ZMQError(operation: "zmq_msg_send", errno: EINVAL, message: "no frames to send")
        }
        let handle = try handle(for: "zmq_msg_send")
        let last = frames.count - 1
        guard try Self.sendFrame(first, on: handle, more: last > 0, dontWait: dontWait) else {
            return false
        }
        // Once the first frame is queued libzmq accepts the rest of the message without
        // blocking, so the remaining frames are sent without ZMQ_DONTWAIT: a message is never
        // left half-sent because of dontWait.
        for index in frames.indices.dropFirst() {
            guard try Self.sendFrame(frames[index], on: handle, more: index < last, dontWait: false)
            else {
                throw ZMQError(
                    operation: "zmq_msg_send", errno: EAGAIN,
                    message: "send timed out within a multipart message")
            }
        }
        return true
    }

    /// Sends one frame; `more: true` says further frames of the same message follow
    /// (`ZMQ_SNDMORE`), and the message is complete with the first frame sent with `more: false`.
    ///
    /// - Returns: `false` when libzmq said `EAGAIN` (see the multipart `send(_:dontWait:)`).
    /// - Throws: ``ZMQError`` (`zmq_msg_send`), as the multipart `send(_:dontWait:)`.
    @discardableResult
    public func send(_ frame: Data, more: Bool = false, dontWait: Bool = false) throws -> Bool {
        let handle = try handle(for: "zmq_msg_send")
        return try Self.sendFrame(frame, on: handle, more: more, dontWait: dontWait)
    }

    /// Sends one frame from memory the caller keeps (`zmq_send` copies it): for a sender that
    /// writes each message into one reusable buffer. `more` and the result are as in
    /// ``send(_:more:dontWait:)``.
    @discardableResult
    public func send(bytes: UnsafeRawBufferPointer, more: Bool = false, dontWait: Bool = false) throws -> Bool {
        let handle = try handle(for: "zmq_send")
        let flags = (more ? ZMQ_SNDMORE : 0) | (dontWait ? ZMQ_DONTWAIT : 0)
        while zmq_send(handle, bytes.baseAddress, bytes.count, flags) < 0 {
            let code = czmq_errno()
            if code == EINTR { continue }
            if code == EAGAIN { return false }
            throw ZMQError(operation: "zmq_send", errno: code)
        }
        return true
    }

    /// Receives a whole multipart message with `zmq_msg_recv`, frame after frame while
    /// `ZMQ_RCVMORE` says more follow. There is no fixed buffer: frames of any size, including
    /// 0 bytes, arrive whole.
    ///
    /// - Parameter dontWait: Return at once when no message is waiting (`ZMQ_DONTWAIT`).
    /// - Returns: The frames, or `nil` when `dontWait` is set and no message is waiting, or the
    ///   receive timeout (``setReceiveTimeout(milliseconds:)``) ran out.
    /// - Throws: ``ZMQError`` (`zmq_msg_recv`): `ETERM` after ``Context/shutdown()``, `EFSM` when
    ///   a REQ/REP socket is in the wrong state, `ENOTSUP` for a PUB or PUSH socket.
    public func receive(dontWait: Bool = false) throws -> [Data]? {
        let handle = try handle(for: "zmq_msg_recv")
        var message = zmq_msg_t()
        zmq_msg_init(&message)
        defer { zmq_msg_close(&message) }

        var frames: [Data] = []
        var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
        while true {
            if zmq_msg_recv(&message, handle, flags) < 0 {
                let code = czmq_errno()
                if code == EINTR { continue }
                if code == EAGAIN && frames.isEmpty { return nil }
                throw ZMQError(operation: "zmq_msg_recv", errno: code)
            }
            // Read the flag first: taking the data may move the content out of `message`.
            let more = zmq_msg_more(&message) != 0
            frames.append(Self.takeData(from: &message))
            if !more {
                return frames
            }
            // The rest of a multipart message is already there (atomic delivery).
            flags = 0
        }
    }

    // MARK: - Frames

    /// Frames at least this large are handed to `Data` without copying: the `zmq_msg_t` moves
    /// to the heap and is closed when the `Data` is released.
    static let zeroCopyThreshold = 64 * 1024

    /// Sends one frame, retrying on `EINTR`; `false` on `EAGAIN`.
    static func sendFrame(
        _ frame: Data, on handle: UnsafeMutableRawPointer, more: Bool, dontWait: Bool
    ) throws -> Bool {
        var message = zmq_msg_t()
        guard zmq_msg_init_size(&message, frame.count) == 0 else {
            throw ZMQError.last("zmq_msg_init_size")
        }
        if !frame.isEmpty {
            frame.withUnsafeBytes { bytes in
                zmq_msg_data(&message).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
            }
        }
        let flags = (more ? ZMQ_SNDMORE : 0) | (dontWait ? ZMQ_DONTWAIT : 0)
        while zmq_msg_send(&message, handle, flags) < 0 {
            let code = czmq_errno()
            if code == EINTR { continue }
            // On failure the message still belongs to us.
            zmq_msg_close(&message)
            if code == EAGAIN { return false }
            throw ZMQError(operation: "zmq_msg_send", errno: code)
        }
        // On success libzmq owns the content and has reset `message` to empty.
        return true
    }

    /// The content of a received frame as `Data`; leaves `message` empty or with content that
    /// the next `zmq_msg_recv` releases.
    static func takeData(from message: inout zmq_msg_t) -> Data {
        let size = zmq_msg_size(&message)
        if size == 0 {
            return Data()
        }
        if size < zeroCopyThreshold {
            return Data(bytes: zmq_msg_data(&message), count: size)
        }
        let owned = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        zmq_msg_init(owned)
        zmq_msg_move(owned, &message)
        let address = UInt(bitPattern: owned)
        return Data(
            bytesNoCopy: zmq_msg_data(owned), count: size,
            deallocator: .custom { _, _ in
                // zmq_msg_close releases reference-counted content atomically, so this may run
                // on any thread.
                guard let owned = UnsafeMutablePointer<zmq_msg_t>(bitPattern: address) else { return }
                zmq_msg_close(owned)
                owned.deallocate()
            })
    }
}
