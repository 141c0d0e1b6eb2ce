import Foundation
import Testing
import ZeroMQ

/// The transports the socket tests run over.
enum Transport: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case inproc
    case tcp

    var testDescription: String { rawValue }

    /// Binds `socket` to a fresh address of this transport and returns the address peers
    /// connect to (for TCP the port libzmq picked, read back through `lastEndpoint`).
    func bind(_ socket: Socket) throws -> String {
        switch self {
        case .inproc:
            let address = "inproc://test-\(UUID().uuidString)"
            try socket.bind(address)
            return address
        case .tcp:
            try socket.bind("tcp://127.0.0.1:*")
            return try socket.lastEndpoint
        }
    }
}

/// Upper bound for any single wait in the tests. Tests never sleep; a wait that reaches this
/// bound means the behaviour under test is broken.
let safetyTimeoutMs: Int32 = 5_000

extension Context {
    /// A socket set up for tests: linger 0 (so the context terminates at once) and a receive
    /// timeout as a safety bound, so a broken test fails instead of hanging.
    func testSocket(_ type: SocketType) throws -> Socket {
        let socket = try makeSocket(type)
        try socket.setLinger(milliseconds: 0)
        try socket.setReceiveTimeout(milliseconds: safetyTimeoutMs)
        try socket.setSendTimeout(milliseconds: safetyTimeoutMs)
        return socket
    }
}

/// Frames from UTF-8 strings.
func frames(_ strings: String...) -> [Data] {
    strings.map { Data($0.utf8) }
}

/// Frames as UTF-8 strings, for readable expectations.
func strings(_ frames: [Data]?) -> [String]? {
    frames?.map { String(decoding: $0, as: UTF8.self) }
}

/// `count` bytes of a non-repeating pattern, so a shifted or truncated copy never compares equal.
func patternData(count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> Data {
    var data = Data(count: count)
    data.withUnsafeMutableBytes { buffer in
        var state = seed
        for index in 0..<buffer.count {
            // xorshift64
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            buffer[index] = UInt8(truncatingIfNeeded: state)
        }
    }
    return data
}
