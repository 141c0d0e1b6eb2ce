import CZeroMQ

/// An endpoint in the CZMQ convention: `"@tcp://…"` binds, `">tcp://…"` connects, and a bare
/// address takes the direction the caller gives as the default.
///
/// ```swift
/// let endpoint = try Endpoint(parsing: ">tcp://127.0.0.1:5555", defaultDirection: .bind)
/// try socket.attach(endpoint)   // connects
/// ```
public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
    /// Whether the socket binds the address or connects to it.
    public enum Direction: Sendable, Hashable {
        /// `zmq_bind`: listen on the address (prefix `@`).
        case bind
        /// `zmq_connect`: connect to the address (prefix `>`).
        case connect
    }

    /// Whether to bind or connect.
    public var direction: Direction
    /// The libzmq address, without the `@` / `>` prefix, for example `"tcp://127.0.0.1:5556"`.
    public var address: String

    /// Creates an endpoint from its parts.
    public init(direction: Direction, address: String) {
        self.direction = direction
        self.address = address
    }

    /// Parses `"@address"`, `">address"` or a bare `"address"`, which takes `defaultDirection`.
    ///
    /// - Throws: ``ZMQError`` with `EINVAL` when the string is empty or is a prefix alone
    ///   (`"@"`, `">"`). The address itself is checked by libzmq when the socket binds or connects.
    public init(parsing text: String, defaultDirection: Direction) throws {
        let direction: Direction
        let address: Substring
        switch text.first {
        case "@":
            direction = .bind
            address = text.dropFirst()
        case ">":
            direction = .connect
            address = text.dropFirst()
        default:
            direction = defaultDirection
            address = Substring(text)
        }
        guard !address.isEmpty else {
            throw ZMQError(
                operation: "Endpoint(parsing:)", errno: EINVAL,
                message: "empty endpoint address in \"\(text)\"")
        }
        self.direction = direction
        self.address = String(address)
    }

    /// The prefixed form: `"@tcp://127.0.0.1:5556"` or `">tcp://127.0.0.1:5555"`.
    public var description: String {
        switch direction {
        case .bind: return "@" + address
        case .connect: return ">" + address
        }
    }
}
