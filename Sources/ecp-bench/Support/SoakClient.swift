import Foundation
import Histogram
import Synchronization
import ZeroMQ

/// The well-behaved client of a soak: one `status` at a time on the control socket, its round
/// trips recorded per phase (the baseline, then one histogram per window of the attacks).
final class SoakClient: Sendable {
    struct Stats: Sendable {
        var sent = 0
        var answered = 0
        var ok = 0
        /// Commands with no answer within the answer timeout.
        var unanswered = 0
        var firstFailure: String?
        var baseline = SoakClient.histogram()
        var attack = SoakClient.histogram()
        /// One histogram per `windowS` since the attacks began.
        var windows: [Histogram<UInt64>] = []
    }

    let context: Context
    let control: String
    let machine: String
    let idPrefix: String
    let intervalMs: Double
    let windowS: Double
    let answerTimeoutMs: Int
    /// The last window's index: answers that come while the attacks are being stopped count in it.
    let lastWindow: Int
    /// When the attacks began (monotonic ns); 0 while the baseline is measured.
    let attackStart = Atomic<UInt64>(0)
    private let stopFlag = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)
    let stats = Mutex(Stats())

    init(context: Context, control: String, machine: String, idPrefix: String, intervalMs: Double, windowS: Double, answerTimeoutMs: Int, attackS: Double) {
        self.context = context
        self.control = control
        self.machine = machine
        self.idPrefix = idPrefix
        self.intervalMs = intervalMs
        self.windowS = windowS
        self.answerTimeoutMs = answerTimeoutMs
        lastWindow = max(0, Int((attackS / windowS).rounded(.up)) - 1)
    }

    static func histogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000_000)
    }

    func start() {
        let thread = Thread { [self] in
            defer { finished.store(true, ordering: .releasing) }
            do {
                try loop()
            } catch {
                stats.withLock { $0.firstFailure = $0.firstFailure ?? "the normal client stopped: \(error)" }
            }
        }
        thread.name = "soak-client"
        thread.start()
    }

    /// Stops after the command in flight, waiting for it at most the answer timeout.
    func stop() {
        stopFlag.store(true, ordering: .relaxed)
        let until = Clock.nanos() + UInt64(answerTimeoutMs + 1000) * 1_000_000
        while !finished.load(ordering: .acquiring) && Clock.nanos() < until { Clock.sleep(ms: 5) }
    }

    private func loop() throws {
        let socket = try context.makeSocket(.dealer)
        defer { socket.close() }
        try socket.setLinger(milliseconds: 0)
        try socket.connect(control)
        let head = "{\"v\":1,\"op\":\"status\",\"machine\":\(JSONText.quote(machine)),\"id\":\"\(idPrefix)-n"
        let idBytes = Array("\(idPrefix)-n".utf8)
        var n = 0
        var next = Clock.nanos()
        while !stopFlag.load(ordering: .relaxed) {
            n += 1
            let sentAt = Clock.nanos()
            guard try socket.send([Data(), Data((head + "\(n)\"}").utf8)]) else { continue }
            stats.withLock { $0.sent += 1 }
            let deadline = sentAt + UInt64(answerTimeoutMs) * 1_000_000
            var answer: (ok: Bool, body: Data)?
            while answer == nil && Clock.nanos() < deadline {
                let remaining = Int((deadline - min(deadline, Clock.nanos())) / 1_000_000)
                guard try poll([.socket(socket)], timeoutMs: max(1, remaining))[0].contains(.readable) else { continue }
                while answer == nil, let frames = try socket.receive(dontWait: true) {
                    guard let body = frames.last else { continue }
                    // A late answer to an earlier command is skipped: only this one's id counts.
                    let ok: Bool? = body.withUnsafeBytes { raw in
                        guard let r = ReplyScanner.scan(raw), let id = r.id, ReplyScanner.index(raw, id: id, prefix: idBytes) == n
                        else { return nil }
                        return r.ok == true && !r.isRequestError
                    }
                    if let ok { answer = (ok, body) }
                }
            }
            let at = Clock.nanos()
            record(answer, latency: at - sentAt, at: at)
            next += UInt64(intervalMs * 1e6)
            if next > at { Clock.sleep(ms: Double(next - at) / 1e6) } else { next = at }
        }
    }

    private func record(_ answer: (ok: Bool, body: Data)?, latency: UInt64, at: UInt64) {
        let begun = attackStart.load(ordering: .relaxed)
        stats.withLock { s in
            guard let answer else {
                s.unanswered += 1
                if s.firstFailure == nil { s.firstFailure = "no answer within \(answerTimeoutMs) ms" }
                return
            }
            s.answered += 1
            if answer.ok {
                s.ok += 1
            } else if s.firstFailure == nil {
                s.firstFailure = String(decoding: answer.body.prefix(300), as: UTF8.self)
            }
            if begun == 0 || at < begun {
                s.baseline.record(latency)
            } else {
                s.attack.record(latency)
                let k = min(lastWindow, Int(Double(at - begun) / 1e9 / windowS))
                while s.windows.count <= k { s.windows.append(Self.histogram()) }
                s.windows[k].record(latency)
            }
        }
    }
}
