import CZeroMQ

/// A CURVE key pair, both keys in Z85 text (40 characters each).
///
/// ```swift
/// let server = try CurveKeyPair.generate()
/// try router.setCurveServer(secretKey: server.secretKey)
/// // clients are configured with server.publicKey
/// ```
public struct CurveKeyPair: Sendable, Equatable {
    /// The length of a CURVE key in Z85 text.
    public static let z85Length = 40

    /// The public key, Z85 (40 characters).
    public var publicKey: String
    /// The secret key, Z85 (40 characters). Keep it out of logs.
    public var secretKey: String

    /// Creates a pair from existing Z85 keys (not checked; see ``publicKey(forSecretKey:)``).
    public init(publicKey: String, secretKey: String) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// Generates a new random key pair (`zmq_curve_keypair`).
    ///
    /// - Throws: ``ZMQError`` with `ENOTSUP` when libzmq was built without CURVE.
    public static func generate() throws -> CurveKeyPair {
        var publicKey = [CChar](repeating: 0, count: z85Length + 1)
        var secretKey = [CChar](repeating: 0, count: z85Length + 1)
        guard zmq_curve_keypair(&publicKey, &secretKey) == 0 else {
            throw ZMQError.last("zmq_curve_keypair")
        }
        return CurveKeyPair(publicKey: string(publicKey), secretKey: string(secretKey))
    }

    /// Derives the Z85 public key that belongs to a Z85 secret key (`zmq_curve_public`).
    ///
    /// - Throws: ``ZMQError`` with `EINVAL` when `secretKey` is not a 40-character Z85 key,
    ///   `ENOTSUP` when libzmq was built without CURVE.
    public static func publicKey(forSecretKey secretKey: String) throws -> String {
        guard secretKey.utf8.count == z85Length else {
            throw ZMQError(
                operation: "zmq_curve_public", errno: EINVAL,
                message: "a Z85 CURVE key has \(z85Length) characters, not \(secretKey.utf8.count)")
        }
        var publicKey = [CChar](repeating: 0, count: z85Length + 1)
        let rc = secretKey.withCString { zmq_curve_public(&publicKey, $0) }
        guard rc == 0 else {
            throw ZMQError.last("zmq_curve_public")
        }
        return string(publicKey)
    }

    /// The NUL-terminated text in `buffer`.
    private static func string(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
