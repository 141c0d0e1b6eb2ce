import Foundation
import ZeroMQ

/// A subscriber to a worker's events that is in place as soon after the worker binds as it can be.
///
/// One SUB socket that connects before its peer binds retries only every 100 to 200 ms (libzmq's
/// reconnect interval), and PUB/SUB drops what is published before the subscription arrives:
/// a worker that restores a thousand test-driver machines in a quarter of a second would be
/// half done before it is heard. So until the first message arrives, a fresh SUB socket is
/// opened every `stepMs` milliseconds, each connecting at once and living `lifetimeMs`. The
/// first socket that receives anything is kept and the others are closed, after what they got
/// is read; messages are told apart by their `seq`, so none is counted twice.
final class EarlySubscriber {
    struct Event {
        var topic: Data
        var body: Data
        var at: UInt64
        var head: EventHead?
    }

    private let context: Context
    private let address: String
    private let topics: [String]
    private let stepNs: UInt64
    private let lifetimeNs: UInt64
    private var probes: [(socket: Socket, born: UInt64)] = []
    private var settled: Socket?
    private var seen = Set<Int>()
    private var lastProbe: UInt64 = 0

    init(context: Context, address: String, topics: [String], stepMs: Int = 5, lifetimeMs: Int = 250) throws {
        self.context = context
        self.address = address
        self.topics = topics
        stepNs = UInt64(stepMs) * 1_000_000
        lifetimeNs = UInt64(lifetimeMs) * 1_000_000
        try addProbe()
    }

    deinit { close() }

    func close() {
        for p in probes { p.socket.close() }
        probes.removeAll()
        settled?.close()
        settled = nil
    }

    private func addProbe() throws {
        let sub = try context.makeSocket(.sub)
        try sub.setLinger(milliseconds: 0)
        try sub.setReceiveHighWaterMark(1_000_000)
        for t in topics { try sub.subscribe(t) }
        try sub.connect(address)
        lastProbe = Clock.nanos()
        probes.append((sub, lastProbe))
    }

    /// Waits up to `timeoutMs` for messages and returns those that came, each once.
    func receive(timeoutMs: Int) throws -> [Event] {
        var out: [Event] = []
        if let settled {
            let ready = try poll([.socket(settled)], timeoutMs: timeoutMs)
            if ready[0].contains(.readable) { try drain(settled, into: &out) }
            return out
        }
        let now = Clock.nanos()
        probes.removeAll { p in
            if now - p.born > lifetimeNs { p.socket.close(); return true }
            return false
        }
        if now - lastProbe >= stepNs || probes.isEmpty { try addProbe() }
        let wait = min(timeoutMs, Int(stepNs / 1_000_000))
        let ready = try poll(probes.map { .socket($0.socket) }, timeoutMs: max(1, wait))
        var winner: Int?
        for (k, flags) in ready.enumerated() where flags.contains(.readable) {
            let before = out.count
            try drain(probes[k].socket, into: &out)
            if winner == nil && out.count > before { winner = k }
        }
        if let winner {
            settled = probes[winner].socket
            for (k, p) in probes.enumerated() where k != winner { p.socket.close() }
            probes.removeAll()
        }
        return out
    }

    private func drain(_ socket: Socket, into out: inout [Event]) throws {
        while let frames = try socket.receive(dontWait: true) {
            guard frames.count == 2 else { continue }
            let head = try? JSONDecoder().decode(EventHead.self, from: frames[1])
            if let seq = head?.seq {
                guard seen.insert(seq).inserted else { continue }
            }
            out.append(Event(topic: frames[0], body: frames[1], at: Clock.nanos(), head: head))
        }
    }
}
