import Foundation
import Synchronization
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The hostile-but-valid traffic of a soak, one kind per thread.
enum SoakAttack: String, CaseIterable, Sendable {
    case bigDefine = "define 500 KB bad xml"
    case flood = "list/status flood"
    case hugeTimeout = "huge timeout_ms"
    case malformed = "malformed json"
    case badFrames = "wrong frame counts"
    case oversizedCommand = "oversized command frame"
    case oversizedSubscription = "oversized subscription"
    case deafSubscribers = "subscribers never reading"
    case vanishing = "connect and vanish"
    case silent = "silent connections"

    /// What "answered" counts for this kind.
    var answerMeaning: String {
        switch self {
        case .bigDefine, .flood, .hugeTimeout, .malformed, .badFrames: "answers"
        case .oversizedCommand, .oversizedSubscription: "answers (none expected)"
        case .deafSubscribers: "messages read (none: they never read)"
        case .vanishing: "refused connects"
        case .silent: "closed by the worker"
        }
    }
}

/// Counts of what each attack sent and got back, shared by the attack threads and the reporter.
final class SoakTally: Sendable {
    struct Count: Sendable, Codable {
        var sent = 0
        var answered = 0
        /// The largest answer, in bytes.
        var largestAnswer = 0
    }

    private let counts = Mutex<[SoakAttack: Count]>([:])

    func sent(_ attack: SoakAttack, _ n: Int = 1) {
        counts.withLock { $0[attack, default: Count()].sent += n }
    }

    func answered(_ attack: SoakAttack, bytes: Int = 0) {
        counts.withLock {
            $0[attack, default: Count()].answered += 1
            $0[attack, default: Count()].largestAnswer = max($0[attack, default: Count()].largestAnswer, bytes)
        }
    }

    var snapshot: [SoakAttack: Count] { counts.withLock { $0 } }
}

/// Where the attacks go.
struct SoakTargets: Sendable {
    /// The worker's control socket, `tcp://host:port`.
    var control: String
    /// The worker's events socket, `tcp://host:port`.
    var events: String
    /// A PUB endpoint the worker's commands socket connects to (a started worker only): the bench
    /// binds it and sends malformed frames there too.
    var commandsBind: String?
    var workerID: String
    /// The machine `status` is asked about.
    var machine: String
    /// The worker's `--max-frame-bytes`: the oversized frames are one byte more.
    var maxFrameBytes: Int
    /// A prefix that keeps this run's ids apart from any other's.
    var idPrefix: String
}

/// Runs the attacks, each on a thread of its own, until `stop` is set.
final class SoakAttackers: Sendable {
    let context: Context
    let targets: SoakTargets
    let tally = SoakTally()
    private let stopFlag = Atomic<Bool>(false)
    private let running = Mutex<Int>(0)

    init(context: Context, targets: SoakTargets) {
        self.context = context
        self.targets = targets
    }

    func start() {
        for attack in SoakAttack.allCases {
            running.withLock { $0 += 1 }
            let thread = Thread { [self] in
                defer { running.withLock { $0 -= 1 } }
                do {
                    try run(attack)
                } catch {
                    note("soak: the \(attack.rawValue) attack stopped: \(error)")
                }
            }
            thread.name = "soak-\(attack)"
            thread.start()
        }
    }

    /// Stops every attack and waits up to `timeoutS` for the threads to end.
    func stop(timeoutS: Double = 20) {
        stopFlag.store(true, ordering: .relaxed)
        let until = Clock.nanos() + Clock.ns(seconds: timeoutS)
        while running.withLock({ $0 }) > 0 && Clock.nanos() < until { Clock.sleep(ms: 10) }
    }

    private var stopped: Bool { stopFlag.load(ordering: .relaxed) }

    // MARK: the attacks

    private func run(_ attack: SoakAttack) throws {
        switch attack {
        case .bigDefine: try bigDefine()
        case .flood: try flood()
        case .hugeTimeout: try hugeTimeout()
        case .malformed: try malformed()
        case .badFrames: try badFrames()
        case .oversizedCommand: try oversizedCommand()
        case .oversizedSubscription: try oversizedSubscription()
        case .deafSubscribers: try deafSubscribers()
        case .vanishing: try vanishing()
        case .silent: silent()
        }
    }

    /// A DEALER on the control socket that reads whatever comes back, counting it for `attack`.
    private func dealer() throws -> Socket {
        let socket = try context.makeSocket(.dealer)
        try socket.setLinger(milliseconds: 0)
        try socket.setReceiveHighWaterMark(100_000)
        try socket.connect(targets.control)
        return socket
    }

    private func drain(_ socket: Socket, _ attack: SoakAttack, waitMs: Int = 0) throws -> Int {
        var got = 0
        if waitMs > 0 { _ = try poll([.socket(socket)], timeoutMs: waitMs) }
        while let frames = try socket.receive(dontWait: true) {
            tally.answered(attack, bytes: frames.last?.count ?? 0)
            got += 1
        }
        return got
    }

    /// Runs `body` every `periodMs` until stopped, at a steady rate: a late round is not made up.
    private func every(_ periodMs: Double, _ body: () throws -> Void) rethrows {
        var next = Clock.nanos()
        while !stopped {
            try body()
            next += UInt64(periodMs * 1e6)
            let now = Clock.nanos()
            if next > now { Clock.sleep(ms: Double(next - now) / 1e6) } else { next = now }
        }
    }

    /// A failed `define` quotes the document back: its error must stay small however long the
    /// line libvirt could not parse. Four a second, each under `--max-xml-bytes` (512 KiB).
    private func bigDefine() throws {
        let socket = try dealer()
        defer { socket.close() }
        let xml = "<domain type='test'><name>soak-bad</name><description>"
            + String(repeating: "soak ", count: 100_000) + "<unclosed attr='"
        let tail = Data(("\",\"op\":\"define\",\"args\":{\"xml\":\"" + xml + "\"}}").utf8)
        var n = 0
        try every(250) {
            n += 1
            var body = Data("{\"v\":1,\"id\":\"\(targets.idPrefix)-d\(n)".utf8)
            body.append(tail)
            if try socket.send([Data(), body], dontWait: true) { tally.sent(.bigDefine) }
            _ = try drain(socket, .bigDefine)
        }
        _ = try drain(socket, .bigDefine, waitMs: 500)
    }

    /// Fresh ids, so the worker remembers every one: its de-duplication memory must stay within
    /// `--dedupe-bytes`. About 500 a second, at most 200 unanswered.
    private func flood() throws {
        let socket = try dealer()
        defer { socket.close() }
        let machine = JSONText.quote(targets.machine)
        var n = 0
        var answered = 0
        try every(10) {
            answered += try drain(socket, .flood)
            for _ in 0..<5 where n - answered < 200 {
                n += 1
                let body = n % 2 == 0
                    ? "{\"v\":1,\"id\":\"\(targets.idPrefix)-f\(n)\",\"op\":\"list\"}"
                    : "{\"v\":1,\"id\":\"\(targets.idPrefix)-f\(n)\",\"op\":\"status\",\"machine\":\(machine)}"
                if try socket.send([Data(), Data(body.utf8)], dontWait: true) { tally.sent(.flood) }
            }
        }
        _ = try drain(socket, .flood, waitMs: 500)
    }

    /// The longest `timeout_ms` the worker takes (24 h): a command that has finished must hold
    /// nothing for that long. 50 a second.
    private func hugeTimeout() throws {
        let socket = try dealer()
        defer { socket.close() }
        let machine = JSONText.quote(targets.machine)
        var n = 0
        try every(20) {
            n += 1
            let op = n % 3 == 0 ? "\"list\"" : "\"status\",\"machine\":\(machine)"
            let body = "{\"v\":1,\"id\":\"\(targets.idPrefix)-t\(n)\",\"timeout_ms\":86400000,\"op\":\(op)}"
            if try socket.send([Data(), Data(body.utf8)], dontWait: true) { tally.sent(.hugeTimeout) }
            _ = try drain(socket, .hugeTimeout)
        }
        _ = try drain(socket, .hugeTimeout, waitMs: 500)
    }

    /// Commands that must be refused, each with a `request_error`, 50 a second.
    private func malformed() throws {
        let socket = try dealer()
        defer { socket.close() }
        let machine = JSONText.quote(targets.machine)
        let deep = String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000)
        var n = 0
        try every(20) {
            n += 1
            let id = "\(targets.idPrefix)-m\(n)"
            let body: Data
            switch n % 10 {
            case 0: body = Data("{\"v\":1,\"id\":\"\(id)\",\"op\":\"status\"".utf8)
            case 1: body = Data("{\"v\":1,\"id\":\"\(id)\",\"op\":\"status\",\"op\":\"destroy\",\"machine\":\(machine)}".utf8)
            case 2: body = Data("{\"v\":1,\"id\":\"\(id)\",\"op\":\"status\",\"machine\":\(machine),\"args\":{\"a\":1,\"a\":2}}".utf8)
            case 3: body = Data((0..<200).map { _ in UInt8.random(in: 0...255) })
            case 4: body = Data("[1,2,3]".utf8)
            case 5: body = Data("{\"v\":1,\"id\":\"\(id)\",\"op\":\"status\",\"args\":\(deep)}".utf8)
            case 6: body = Data("{\"v\":1,\"id\":\"\(id)\",\"op\":\"status\",\"machine\":\(machine),\"timeout_ms\":1e300}".utf8)
            case 7: body = Data("{\"v\":1,\"id\":\"".utf8) + Data([0xff, 0xfe, 0xc0, 0x80]) + Data("\",\"op\":\"ping\"}".utf8)
            case 8: body = Data("{\"v\":1,\"id\":\"\(id)\",\"op\":\"ping\"} trailing".utf8)
            default: body = Data("{\"v\":1,\"id\":\"\(id)\",\"op\":\"ping\",\"v\":1}".utf8)
            }
            if try socket.send([Data(), body], dontWait: true) { tally.sent(.malformed) }
            _ = try drain(socket, .malformed)
        }
        _ = try drain(socket, .malformed, waitMs: 500)
    }

    /// Requests with too many or too few frames, on the control socket and (for a started
    /// worker) on the commands socket, 20 a second.
    private func badFrames() throws {
        let socket = try dealer()
        defer { socket.close() }
        var pub: Socket?
        if let bind = targets.commandsBind {
            let p = try context.makeSocket(.pub)
            try p.setLinger(milliseconds: 0)
            try p.bind(bind)
            pub = p
        }
        defer { pub?.close() }
        let topic = Data("cmd.\(targets.workerID)".utf8)
        let ping = Data("{\"v\":1,\"id\":\"\(targets.idPrefix)-x\",\"op\":\"ping\"}".utf8)
        var n = 0
        try every(50) {
            n += 1
            let frames: [Data]
            switch n % 4 {
            case 0: frames = [Data(), Data(), ping]
            case 1: frames = [Data()]
            case 2: frames = [Data(), ping, ping, ping]
            default: frames = [Data(), Data(), Data(), Data()]
            }
            if try socket.send(frames, dontWait: true) { tally.sent(.badFrames) }
            if let pub {
                let wrong: [Data] = n % 2 == 0 ? [topic] : [topic, ping, ping]
                if try pub.send(wrong, dontWait: true) { tally.sent(.badFrames) }
            }
            _ = try drain(socket, .badFrames)
        }
        _ = try drain(socket, .badFrames, waitMs: 500)
    }

    /// One frame a byte over `--max-frame-bytes` on the control socket every 2 s: libzmq drops
    /// the peer on reading the frame's header, before buffering it.
    private func oversizedCommand() throws {
        let frame = Data(count: targets.maxFrameBytes + 1)
        try every(2000) {
            let socket = try context.makeSocket(.dealer)
            try socket.setLinger(milliseconds: 1000)
            try socket.connect(targets.control)
            if try socket.send([Data(), frame], dontWait: true) { tally.sent(.oversizedCommand) }
            _ = try drain(socket, .oversizedCommand, waitMs: 1000)
            socket.close()
        }
    }

    /// A subscription a byte over `--max-frame-bytes` on the events socket every 2 s. It is sent
    /// over a plain TCP connection speaking ZMTP 3.0: a libzmq SUB socket would keep the
    /// subscription in a trie of one node per byte, which it frees recursively, overflowing the
    /// bench's own stack.
    private func oversizedSubscription() throws {
        var message = Data([0x02])
        let size = UInt64(targets.maxFrameBytes + 1)
        message.append(contentsOf: (0..<8).reversed().map { UInt8(truncatingIfNeeded: size >> ($0 * 8)) })
        message.append(0x01)
        message.append(Data(repeating: UInt8(ascii: "s"), count: targets.maxFrameBytes))
        let opening = RawTCP.zmtpOpening(socketType: "SUB")
        every(2000) {
            guard let fd = RawTCP.dial(targets.events) else { return }
            RawTCP.sendAll(fd, opening + message, timeoutMs: 1000)
            tally.sent(.oversizedSubscription)
            // The worker closes the connection on reading the frame's size.
            let until = Clock.nanos() + 1_000_000_000
            while Clock.nanos() < until && !RawTCP.peerClosed(fd) { Clock.sleep(ms: 20) }
            close(fd)
        }
    }

    /// Eight subscribers to every topic that never read, with the smallest buffers, so the
    /// worker's queue for each stays full (bounded by `--events-hwm`); one is replaced every 5 s.
    private func deafSubscribers() throws {
        var subscribers: [Socket] = []
        func open() throws {
            let socket = try context.makeSocket(.sub)
            try socket.setLinger(milliseconds: 0)
            try socket.setReceiveHighWaterMark(1)
            try socket.setReceiveBufferSize(4096)
            try socket.subscribe("")
            try socket.connect(targets.events)
            subscribers.append(socket)
            tally.sent(.deafSubscribers)
        }
        defer { for s in subscribers { s.close() } }
        for _ in 0..<8 { try open() }
        try every(5000) {
            guard !subscribers.isEmpty else { return }
            subscribers.removeFirst().close()
            try open()
        }
    }

    /// Connections that go away at once: a TCP connect and close, a greeting cut short, and a
    /// ZeroMQ socket closed right after its connect, 30 a second in all, to either socket.
    private func vanishing() throws {
        let greeting = Data([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0]) + Data("NULL".utf8)
        var n = 0
        try every(33) {
            n += 1
            let target = n % 2 == 0 ? targets.control : targets.events
            switch n % 3 {
            case 0:
                let socket = try context.makeSocket(n % 2 == 0 ? .dealer : .sub)
                try socket.setLinger(milliseconds: 0)
                try socket.connect(target)
                socket.close()
            default:
                guard let fd = RawTCP.dial(target) else {
                    tally.answered(.vanishing)
                    break
                }
                if n % 3 == 1 { RawTCP.write(fd, greeting) }
                close(fd)
            }
            tally.sent(.vanishing)
        }
    }

    /// TCP connections that never send a byte, 32 held at a time, each given up after 15 s: the
    /// worker closes a connection that has not completed its handshake within 10 s.
    private func silent() {
        var open: [(fd: Int32, at: UInt64, closedByPeer: Bool)] = []
        var n = 0
        every(250) {
            n += 1
            let now = Clock.nanos()
            for k in open.indices where !open[k].closedByPeer && RawTCP.peerClosed(open[k].fd) {
                open[k].closedByPeer = true
                tally.answered(.silent)
            }
            open.removeAll { entry in
                if now - entry.at < 15_000_000_000 { return false }
                close(entry.fd)
                return true
            }
            if open.count < 32, let fd = RawTCP.dial(n % 2 == 0 ? targets.control : targets.events) {
                open.append((fd, now, false))
                tally.sent(.silent)
            }
        }
        for entry in open { close(entry.fd) }
    }
}

/// Plain TCP sockets, for peers that do not speak ZMTP.
enum RawTCP {
    /// Connects to `tcp://a.b.c.d:port`; the descriptor, or nil.
    static func dial(_ endpoint: String) -> Int32? {
        let text = endpoint.hasPrefix("tcp://") ? String(endpoint.dropFirst(6)) : endpoint
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        var host = String(text[..<colon])
        if host == "*" || host == "0.0.0.0" || host == "localhost" { host = "127.0.0.1" }
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr(host)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    static func write(_ fd: Int32, _ data: Data) {
        _ = data.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
    }

    /// A ZMTP 3.0 greeting (NULL mechanism) and READY command for a peer of `socketType`.
    static func zmtpOpening(socketType: String) -> Data {
        var data = Data([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0])
        data.append(Data("NULL".utf8) + Data(count: 16))
        data.append(Data(count: 32))
        let property = Data([11]) + Data("Socket-Type".utf8) + Data([0, 0, 0, UInt8(socketType.utf8.count)]) + Data(socketType.utf8)
        let body = Data([5]) + Data("READY".utf8) + property
        data.append(Data([0x04, UInt8(body.count)]) + body)
        return data
    }

    /// Sends all of `data` unless the peer closes or `timeoutMs` passes.
    static func sendAll(_ fd: Int32, _ data: Data, timeoutMs: Int) {
        var timeout = timeval(tv_sec: timeoutMs / 1000, tv_usec: (timeoutMs % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                offset += n
            }
        }
    }

    /// Reads what is waiting (the peer's greeting) and says whether the peer has closed.
    static func peerClosed(_ fd: Int32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n == 0 { return true }
            if n < 0 { return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR }
        }
    }
}

/// JSON string literals for text the bench puts into commands.
enum JSONText {
    static func quote(_ text: String) -> String {
        (try? JSONEncoder().encode(text)).map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
    }
}
