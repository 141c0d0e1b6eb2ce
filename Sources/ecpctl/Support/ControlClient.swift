import ECPProtocol
import Foundation
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A command document as ecpctl sends it.
struct CommandDocument: Encodable {
    var v = 1
    var id: String
    var op: String
    var machine: String?
    var args: [String: JSONValue]?

    /// The document as compact JSON.
    func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// One request on the worker's control socket and its single reply.
///
/// A DEALER socket sends `[""][json]` (the REQ-compatible envelope) and waits, with a deadline,
/// for the reply `[""][json]`. The socket never lingers, so ecpctl exits at once on a timeout.
enum ControlClient {
    /// Sends `payload` and returns the reply's JSON frame.
    ///
    /// - Parameters:
    ///   - expectedID: When set, replies that carry another `id` are skipped.
    ///   - waitMs: How long to wait for the reply, counted from now.
    /// - Throws: ``CtlFailure`` with ``ExitStatus/noReply`` when nothing comes back in time,
    ///   ``ExitStatus/usage`` for bad keys, ``ExitStatus/software`` when ZeroMQ fails.
    static func request(_ payload: Data, expectedID: String?, options: SharedOptions, waitMs: Int) throws -> Data {
        let endpoint = try options.controlEndpoint
        let keys = try options.curveKeys()
        do {
            let context = try Context()
            let socket = try context.makeSocket(.dealer)
            defer { socket.close() }
            try socket.setLinger(milliseconds: 0)
            if let keys { try keys.apply(to: socket) }
            try socket.setSendTimeout(milliseconds: Int32(clamping: waitMs))
            try socket.attach(endpoint)

            let deadline = Monotonic.milliseconds() + Int64(waitMs)
            let noReply = CtlFailure(
                ExitStatus.noReply,
                "no reply from \(Sanitize.display(endpoint.description)) within \(waitMs) ms: is the worker running and listening there?"
                    + (keys != nil ? " (with CURVE: is --curve-server-key the worker's public key?)" : ""))
            guard try socket.send([Data(), payload]) else { throw noReply }
            while true {
                let remaining = deadline - Monotonic.milliseconds()
                if remaining <= 0 { throw noReply }
                let events = try poll([.socket(socket)], timeoutMs: Int(remaining))
                guard events.first?.contains(.readable) == true else { continue }
                while let frames = try socket.receive(dontWait: true) {
                    // `[""][json]` for the REQ-style envelope; a bare `[json]` is accepted too.
                    guard let body = frames.last, frames.count <= 2, frames.count == 1 || frames[0].isEmpty else {
                        continue
                    }
                    if let expectedID, let replyID = JSONValue.parse(body)?["id"]?.stringValue, replyID != expectedID {
                        continue
                    }
                    return body
                }
            }
        } catch let error as ZMQError {
            throw CtlFailure(
                ExitStatus.software, "ZeroMQ failed on \(Sanitize.display(endpoint.description)): \(error)")
        }
    }
}

/// Monotonic time, for deadlines.
enum Monotonic {
    /// Milliseconds on the monotonic clock.
    static func milliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
