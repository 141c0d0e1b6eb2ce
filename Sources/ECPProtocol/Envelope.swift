import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// A message for the events socket (and, for a control command, the reply to its sender).
public struct Outgoing: Sendable {
    /// The events topic, e.g. `result.host1`.
    public var topic: String
    /// The message's own fields as a JSON object (with `type`), without the envelope fields.
    public var body: [UInt8]
    /// Where to send the same message as a direct reply, for commands that came in on the control socket.
    public var reply: ReplyRoute?
    /// False for a reply that is not published (`replay`'s): it goes to `reply` only and takes no
    /// number of the published stream (its `seq` is that of the newest message published before).
    public var published: Bool

    public init(topic: String, body: [UInt8], reply: ReplyRoute? = nil, published: Bool = true) {
        self.topic = topic
        self.body = body
        self.reply = reply
        self.published = published
    }

    public init(topic: String, body: Data, reply: ReplyRoute? = nil) {
        self.init(topic: topic, body: [UInt8](body), reply: reply)
    }
}

/// The envelope frames of a control-socket request (identity, and the empty delimiter when the
/// client sent one), mirrored in the reply.
public struct ReplyRoute: Sendable, Equatable {
    public var frames: [Data]

    public init(frames: [Data]) {
        self.frames = frames
    }
}

/// Where the worker's messages go: the events socket in production, memory in tests.
public protocol MessageSink: Sendable {
    /// Queues a message; never blocks on the network.
    func send(_ message: Outgoing)

    /// The messages published in this run after `since` (`replay`), and the run's id.
    func replay(since: UInt64, limit: Int, topics: [String]?) -> (run: String, page: ReplayPage)
}

/// Adds the envelope (`v`, `worker`, `run`, `seq`, `ts`) to a message body. One stamper per
/// run; it is owned by whoever sends, so `seq` follows the order messages leave the worker.
public struct EnvelopeStamper: Sendable {
    private let prefix: [UInt8]
    /// The last `seq` used.
    public private(set) var seq: UInt64 = 0
    /// This run's id.
    public let run: String
    private var clock = Timestamp.Cache()

    public init(worker: String, run: String) {
        self.run = run
        var w = JSONWriter(capacity: 64)
        w.string(worker)
        prefix = Array("{\"v\":1,\"worker\":".utf8) + w.bytes + Array(",\"run\":\"\(run)\",\"seq\":".utf8)
    }

    /// The complete message: the envelope's fields first, then the body's.
    public mutating func stamp(_ body: [UInt8]) -> Data {
        var out = [UInt8]()
        stamp(body, into: &out)
        return Data(out)
    }

    /// Writes the complete message into `out`, replacing what it held (its storage is reused).
    /// An unnumbered message (a reply that is not published) carries the last `seq` used.
    public mutating func stamp(_ body: [UInt8], into out: inout [UInt8], numbered: Bool = true) {
        if numbered { seq += 1 }
        out.removeAll(keepingCapacity: true)
        out.reserveCapacity(prefix.count + body.count + 48)
        out.append(contentsOf: prefix)
        JSONWriter.appendDecimal(Int64(seq), to: &out)
        JSONWriter.append(",\"ts\":\"", to: &out)
        clock.appendNow(to: &out)
        out.append(UInt8(ascii: "\""))
        // body is `{...}`: drop its opening brace, keep the rest (`}` alone for an empty object).
        if body.count > 2 {
            out.append(UInt8(ascii: ","))
            out.append(contentsOf: body[1...])
        } else {
            out.append(UInt8(ascii: "}"))
        }
    }
}

/// ISO 8601 UTC timestamps with milliseconds, written without allocating a formatter.
public enum Timestamp {
    /// Appends the current time as `2026-11-25T20:31:07.123Z`.
    public static func appendNow(to out: inout [UInt8]) {
        var cache = Cache()
        cache.appendNow(to: &out)
    }

    /// The current time as a string.
    public static func now() -> String {
        var out = [UInt8]()
        appendNow(to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Remembers the calendar part of the last second written, so a busy sender converts the
    /// clock to a date once a second rather than once a message.
    struct Cache: Sendable {
        private var second = Int.min
        private var text: [UInt8] = []

        mutating func appendNow(to out: inout [UInt8]) {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            let s = Int(ts.tv_sec)
            if s != second {
                second = s
                text.removeAll(keepingCapacity: true)
                Timestamp.appendSecond(s, to: &text)
            }
            out.append(contentsOf: text)
            let millis = Int(ts.tv_nsec / 1_000_000)
            let zero = UInt8(ascii: "0")
            out.append(zero + UInt8(millis / 100))
            out.append(zero + UInt8(millis / 10 % 10))
            out.append(zero + UInt8(millis % 10))
            out.append(UInt8(ascii: "Z"))
        }
    }

    /// `2026-11-25T20:31:07.`: everything before the milliseconds.
    static func appendSecond(_ seconds: Int, to out: inout [UInt8]) {
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        let zero = UInt8(ascii: "0")
        func two(_ v: Int32) {
            out.append(zero + UInt8(v / 10))
            out.append(zero + UInt8(v % 10))
        }
        let year = Int32(tm.tm_year) + 1900
        two(year / 100); two(year % 100); out.append(UInt8(ascii: "-"))
        two(tm.tm_mon + 1); out.append(UInt8(ascii: "-"))
        two(tm.tm_mday); out.append(UInt8(ascii: "T"))
        two(tm.tm_hour); out.append(UInt8(ascii: ":"))
        two(tm.tm_min); out.append(UInt8(ascii: ":"))
        two(tm.tm_sec); out.append(UInt8(ascii: "."))
    }
}

/// Where a command came from, and so where its answers go besides the events socket.
public enum Origin: Sendable, Equatable {
    /// The commands (SUB) socket: answers are published only.
    case commands
    /// The control (ROUTER) socket: the result is also the reply, mirroring the request's envelope.
    case control(ReplyRoute)
    /// The worker itself (the startup restore).
    case local

    /// The reply route of a control command.
    public var reply: ReplyRoute? {
        if case .control(let r) = self { return r }
        return nil
    }

    /// The socket's name, for logs.
    public var name: String {
        switch self {
        case .commands: return "commands"
        case .control: return "control"
        case .local: return "local"
        }
    }
}
