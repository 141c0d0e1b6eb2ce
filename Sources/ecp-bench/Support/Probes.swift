import ECPProtocol
import Foundation
import WorkerLauncher
import ZeroMQ

/// The first moments of a worker's life, seen from outside.
struct ProbeResult {
    /// When the control socket first answered `ping` (monotonic ns).
    var pingAnsweredAt: UInt64?
    /// When the first message arrived on the events socket, and its `type` and `seq`.
    var firstEventAt: UInt64?
    var firstEventType: String?
    var firstEventSeq: Int?
}

/// Watches a starting worker with fresh sockets.
///
/// A ZeroMQ socket that connects before the peer binds retries only every 100 ms (libzmq's
/// reconnect interval), which would round every start-up figure up to that step. So the probe
/// opens a new DEALER (and, when asked, a new SUB) every `stepMs` milliseconds, each connecting at
/// once, and keeps each for `lifetimeMs`: the first socket that connects after the bind answers,
/// within about one step of it.
enum Probe {
    static func run(
        context: Context, control: String, events: String?, eventTopics: [String] = [""], worker: SpawnedWorker,
        deadline: UInt64, stepMs: Int = 5, lifetimeMs: Int = 250
    ) throws -> ProbeResult {
        var result = ProbeResult()
        var dealers: [(socket: Socket, born: UInt64)] = []
        var subscribers: [(socket: Socket, born: UInt64)] = []
        defer {
            for d in dealers { d.socket.close() }
            for s in subscribers { s.socket.close() }
        }
        var attempt = 0
        let lifetime = UInt64(lifetimeMs) * 1_000_000
        while Clock.nanos() < deadline {
            let needPing = result.pingAnsweredAt == nil
            let needEvent = events != nil && result.firstEventAt == nil
            if !needPing && !needEvent { break }
            guard worker.isRunning else { break }
            let now = Clock.nanos()
            dealers.removeAll { entry in
                if now - entry.born > lifetime || !needPing { entry.socket.close(); return true }
                return false
            }
            subscribers.removeAll { entry in
                if now - entry.born > lifetime || !needEvent { entry.socket.close(); return true }
                return false
            }
            if needPing {
                attempt += 1
                let dealer = try context.makeSocket(.dealer)
                try dealer.setLinger(milliseconds: 0)
                try dealer.connect(control)
                let ping = #"{"v":1,"id":"probe-\#(attempt)","op":"ping"}"#
                _ = try dealer.send([Data(), Data(ping.utf8)], dontWait: true)
                dealers.append((dealer, Clock.nanos()))
            }
            if needEvent, let events {
                let sub = try context.makeSocket(.sub)
                try sub.setLinger(milliseconds: 0)
                for topic in eventTopics { try sub.subscribe(topic) }
                try sub.connect(events)
                subscribers.append((sub, Clock.nanos()))
            }
            let items = dealers.map { PollItem.socket($0.socket) } + subscribers.map { PollItem.socket($0.socket) }
            let stepEnd = Clock.nanos() + UInt64(stepMs) * 1_000_000
            while Clock.nanos() < stepEnd {
                let remaining = Int((stepEnd - min(stepEnd, Clock.nanos())) / 1_000_000)
                let ready = try poll(items, timeoutMs: max(1, remaining))
                for (k, flags) in ready.enumerated() where flags.contains(.readable) {
                    let socket = k < dealers.count ? dealers[k].socket : subscribers[k - dealers.count].socket
                    while let frames = try socket.receive(dontWait: true) {
                        let at = Clock.nanos()
                        if k < dealers.count {
                            if result.pingAnsweredAt == nil, let body = frames.last,
                                String(decoding: body, as: UTF8.self).contains("\"result\"")
                            {
                                result.pingAnsweredAt = at
                            }
                        } else if result.firstEventAt == nil, frames.count == 2 {
                            result.firstEventAt = at
                            let head = try? JSONDecoder().decode(EventHead.self, from: frames[1])
                            result.firstEventType = head?.type
                            result.firstEventSeq = head?.seq
                        }
                    }
                }
                if result.pingAnsweredAt != nil && (events == nil || result.firstEventAt != nil) { break }
            }
        }
        return result
    }
}

/// The envelope fields the bench reads from an event.
struct EventHead: Decodable {
    var type: String?
    var seq: Int?
    var run: String?
}

/// One request on a worker's control socket (DEALER, REQ-style envelope) and its reply.
enum ControlRequest {
    /// Sends `payload` and returns the reply whose `id` is `id`, or nil after `timeoutMs`.
    static func send(context: Context, address: String, payload: Data, id: String, timeoutMs: Int) throws -> Data? {
        let dealer = try context.makeSocket(.dealer)
        defer { dealer.close() }
        try dealer.setLinger(milliseconds: 0)
        try dealer.connect(address)
        let deadline = Clock.nanos() + UInt64(timeoutMs) * 1_000_000
        guard try dealer.send([Data(), payload], dontWait: true) else { return nil }
        while Clock.nanos() < deadline {
            let remaining = Int((deadline - min(deadline, Clock.nanos())) / 1_000_000)
            let ready = try poll([.socket(dealer)], timeoutMs: max(1, remaining))
            guard ready[0].contains(.readable) else { continue }
            while let frames = try dealer.receive(dontWait: true) {
                guard let body = frames.last else { continue }
                let replyID = (try? JSONDecoder().decode(JSONValue.self, from: body))?["id"]?.stringValue
                if replyID == id { return body }
            }
        }
        return nil
    }
}
