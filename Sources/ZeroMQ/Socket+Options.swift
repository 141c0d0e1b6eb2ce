import CZeroMQ
import FoundationEssentials

extension Socket {
    // MARK: - Queues and timing

    /// The send high-water mark (`ZMQ_SNDHWM`): how many outgoing messages may queue per peer
    /// before the socket blocks or drops (PUB drops). 0 means no limit. Default 1000.
    public var sendHighWaterMark: Int32 {
        get throws { try integerOption(ZMQ_SNDHWM, "ZMQ_SNDHWM") }
    }

    /// Sets the send high-water mark (`ZMQ_SNDHWM`); affects connections made afterwards.
    public func setSendHighWaterMark(_ messages: Int32) throws {
        try setOption(ZMQ_SNDHWM, "ZMQ_SNDHWM", int32: messages)
    }

    /// The receive high-water mark (`ZMQ_RCVHWM`): how many incoming messages may queue per
    /// peer. 0 means no limit. Default 1000.
    public var receiveHighWaterMark: Int32 {
        get throws { try integerOption(ZMQ_RCVHWM, "ZMQ_RCVHWM") }
    }

    /// Sets the receive high-water mark (`ZMQ_RCVHWM`); affects connections made afterwards.
    public func setReceiveHighWaterMark(_ messages: Int32) throws {
        try setOption(ZMQ_RCVHWM, "ZMQ_RCVHWM", int32: messages)
    }

    /// Sets how long unsent messages are kept after ``close()`` (`ZMQ_LINGER`): -1 forever (the
    /// default, which makes context termination wait), 0 discard at once.
    public func setLinger(milliseconds: Int32) throws {
        try setOption(ZMQ_LINGER, "ZMQ_LINGER", int32: milliseconds)
    }

    /// Sets the receive timeout (`ZMQ_RCVTIMEO`): ``receive(dontWait:)`` returns `nil` after
    /// this long without a message. -1 waits forever (the default), 0 never waits.
    public func setReceiveTimeout(milliseconds: Int32) throws {
        try setOption(ZMQ_RCVTIMEO, "ZMQ_RCVTIMEO", int32: milliseconds)
    }

    /// Sets the send timeout (`ZMQ_SNDTIMEO`): a blocked `send` returns `false` after this long.
    /// -1 waits forever (the default), 0 never waits.
    public func setSendTimeout(milliseconds: Int32) throws {
        try setOption(ZMQ_SNDTIMEO, "ZMQ_SNDTIMEO", int32: milliseconds)
    }

    /// Sets the largest frame a peer may send (`ZMQ_MAXMSGSIZE`), in bytes; -1 means no limit
    /// (the default). A peer that sends a larger frame is disconnected before the frame is
    /// buffered, and the frame is never delivered. Applies to stream transports such as
    /// `tcp://` and `ipc://`, not to `inproc://`. Set it before binding or connecting.
    public func setMaxMessageSize(_ bytes: Int64) throws {
        try setOption(ZMQ_MAXMSGSIZE, "ZMQ_MAXMSGSIZE", int64: bytes)
    }

    /// Only queue messages to completed connections (`ZMQ_IMMEDIATE`), so that messages are not
    /// queued for a peer that is not there yet.
    public func setImmediate(_ on: Bool) throws {
        try setOption(ZMQ_IMMEDIATE, "ZMQ_IMMEDIATE", int32: on ? 1 : 0)
    }

    /// The kernel receive buffer size (`ZMQ_RCVBUF`) in bytes; -1 (the default) leaves the
    /// operating system's. Set it before connecting.
    public func setReceiveBufferSize(_ bytes: Int32) throws {
        try setOption(ZMQ_RCVBUF, "ZMQ_RCVBUF", int32: bytes)
    }

    /// The largest frame a peer may send (`ZMQ_MAXMSGSIZE`), in bytes; -1 means no limit.
    public var maxMessageSize: Int64 {
        get throws { try integerOption(ZMQ_MAXMSGSIZE, "ZMQ_MAXMSGSIZE") }
    }

    /// How long a peer may take to complete the ZMTP handshake, security included
    /// (`ZMQ_HANDSHAKE_IVL`), in milliseconds; 0 means no limit. libzmq's default is 30,000.
    public var handshakeInterval: Int32 {
        get throws { try integerOption(ZMQ_HANDSHAKE_IVL, "ZMQ_HANDSHAKE_IVL") }
    }

    /// Sets ``handshakeInterval``: a connection that has not completed its handshake in time is
    /// closed. Affects connections made afterwards.
    public func setHandshakeInterval(milliseconds: Int32) throws {
        try setOption(ZMQ_HANDSHAKE_IVL, "ZMQ_HANDSHAKE_IVL", int32: milliseconds)
    }

    // MARK: - Routing

    /// Makes a ROUTER report unroutable messages (`ZMQ_ROUTER_MANDATORY`): sending to an
    /// unknown identity throws `EHOSTUNREACH` instead of dropping the message silently.
    public func setRouterMandatory(_ on: Bool) throws {
        try setOption(ZMQ_ROUTER_MANDATORY, "ZMQ_ROUTER_MANDATORY", int32: on ? 1 : 0)
    }

    /// Sets the identity this socket presents to a ROUTER peer (`ZMQ_ROUTING_ID`): 1 to 255
    /// bytes, not starting with a zero byte. Set it before connecting.
    public func setIdentity(_ id: Data) throws {
        try setOption(ZMQ_ROUTING_ID, "ZMQ_ROUTING_ID", bytes: id)
    }

    /// The identity set with ``setIdentity(_:)`` (`ZMQ_ROUTING_ID`); empty when none was set.
    public var identity: Data {
        get throws { try bytesOption(ZMQ_ROUTING_ID, "ZMQ_ROUTING_ID", capacity: 256) }
    }

    // MARK: - Subscriptions

    /// Subscribes a SUB socket to messages whose first frame starts with `prefix`
    /// (`ZMQ_SUBSCRIBE`); `""` subscribes to everything.
    ///
    /// The match is a byte prefix: subscribing to `"cmd.h1"` also delivers `"cmd.h10"`. An
    /// application that needs exact topics must compare the first frame itself.
    public func subscribe(_ prefix: String) throws {
        try subscribe(Data(prefix.utf8))
    }

    /// Subscribes a SUB socket to messages whose first frame starts with the bytes `prefix`.
    public func subscribe(_ prefix: Data) throws {
        try setOption(ZMQ_SUBSCRIBE, "ZMQ_SUBSCRIBE", bytes: prefix)
    }

    /// Removes one subscription made with the same prefix (`ZMQ_UNSUBSCRIBE`).
    public func unsubscribe(_ prefix: String) throws {
        try unsubscribe(Data(prefix.utf8))
    }

    /// Removes one subscription made with the same byte prefix (`ZMQ_UNSUBSCRIBE`).
    public func unsubscribe(_ prefix: Data) throws {
        try setOption(ZMQ_UNSUBSCRIBE, "ZMQ_UNSUBSCRIBE", bytes: prefix)
    }

    // MARK: - Security

    /// Makes this socket a CURVE server (`ZMQ_CURVE_SERVER` = 1 and `ZMQ_CURVE_SECRETKEY`),
    /// with the server's Z85 secret key (40 characters). Clients need the matching public key.
    /// Set it before binding.
    ///
    /// Without a ZAP handler at `inproc://zeromq.zap.01` the server accepts any client key: the
    /// traffic is encrypted but clients are not authenticated.
    public func setCurveServer(secretKey: String) throws {
        try setOption(ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER", int32: 1)
        try setOption(ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", z85Key: secretKey)
    }

    /// Makes this socket a CURVE client (`ZMQ_CURVE_SERVERKEY`, `ZMQ_CURVE_PUBLICKEY`,
    /// `ZMQ_CURVE_SECRETKEY`), all keys in Z85 (40 characters). Set it before connecting.
    /// A client with the wrong server key never completes the handshake: nothing is
    /// delivered either way.
    public func setCurveClient(serverPublicKey: String, publicKey: String, secretKey: String) throws {
        try setOption(ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY", z85Key: serverPublicKey)
        try setOption(ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", z85Key: publicKey)
        try setOption(ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", z85Key: secretKey)
    }

    /// Sets the ZAP authentication domain (`ZMQ_ZAP_DOMAIN`) passed to a ZAP handler.
    public func setZAPDomain(_ domain: String) throws {
        try setOption(ZMQ_ZAP_DOMAIN, "ZMQ_ZAP_DOMAIN", bytes: Data(domain.utf8))
    }

    // MARK: - Introspection

    /// The endpoint last bound or connected (`ZMQ_LAST_ENDPOINT`), with a wildcard port
    /// resolved: after `bind("tcp://127.0.0.1:*")` this is `"tcp://127.0.0.1:40123"`.
    public var lastEndpoint: String {
        get throws {
            let bytes = try bytesOption(ZMQ_LAST_ENDPOINT, "ZMQ_LAST_ENDPOINT", capacity: 1024)
            // The value is NUL-terminated.
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// The file descriptor that signals pending socket events (`ZMQ_FD`), for integration
    /// with foreign event loops. It is edge-triggered in libzmq's sense: after it fires, check
    /// `ZMQ_EVENTS` by receiving with `dontWait` until `nil`. Rarely needed; prefer
    /// ``poll(_:timeoutMs:)``.
    public var fileDescriptor: Int32 {
        get throws { try integerOption(ZMQ_FD, "ZMQ_FD") }
    }

    // MARK: - Raw access

    /// Sets an integer option.
    func setOption(_ option: Int32, _ name: String, int32 value: Int32) throws {
        let operation = "zmq_setsockopt(\(name))"
        let handle = try handle(for: operation)
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError.last(operation)
        }
    }

    /// Sets a 64-bit integer option.
    func setOption(_ option: Int32, _ name: String, int64 value: Int64) throws {
        let operation = "zmq_setsockopt(\(name))"
        let handle = try handle(for: operation)
        var value = value
        guard zmq_setsockopt(handle, option, &value, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError.last(operation)
        }
    }

    /// Sets a binary option (any length, including 0).
    func setOption(_ option: Int32, _ name: String, bytes: Data) throws {
        let operation = "zmq_setsockopt(\(name))"
        let handle = try handle(for: operation)
        let rc = bytes.withUnsafeBytes { buffer in
            zmq_setsockopt(handle, option, buffer.baseAddress, buffer.count)
        }
        guard rc == 0 else {
            throw ZMQError.last(operation)
        }
    }

    /// Sets a CURVE key option from its Z85 text, passed as libzmq documents it: 40 characters
    /// followed by a NUL terminator (41 bytes).
    func setOption(_ option: Int32, _ name: String, z85Key key: String) throws {
        let utf8 = Array(key.utf8)
        guard utf8.count == CurveKeyPair.z85Length else {
            throw ZMQError(
                operation: "zmq_setsockopt(\(name))", errno: EINVAL,
                message: "a Z85 CURVE key has \(CurveKeyPair.z85Length) characters, not \(utf8.count)")
        }
        try setOption(option, name, bytes: Data(utf8 + [0]))
    }

    /// Reads an integer option; its width (`Int32` or `Int64`, as libzmq declares the option) is the type asked for.
    func integerOption<Value: FixedWidthInteger>(_ option: Int32, _ name: String) throws -> Value {
        let operation = "zmq_getsockopt(\(name))"
        let handle = try handle(for: operation)
        var value: Value = 0
        var size = MemoryLayout<Value>.size
        guard zmq_getsockopt(handle, option, &value, &size) == 0 else {
            throw ZMQError.last(operation)
        }
        return value
    }

    /// Reads a binary option of at most `capacity` bytes.
    func bytesOption(_ option: Int32, _ name: String, capacity: Int) throws -> Data {
        let operation = "zmq_getsockopt(\(name))"
        let handle = try handle(for: operation)
        var buffer = [UInt8](repeating: 0, count: capacity)
        var size = capacity
        guard zmq_getsockopt(handle, option, &buffer, &size) == 0 else {
            throw ZMQError.last(operation)
        }
        return Data(buffer.prefix(size))
    }
}
