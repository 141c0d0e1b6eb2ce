@testable import ECPEngine
import ECPProtocol
import Foundation
import Testing

@Suite("Replay ring")
struct ReplayRingTests {
    static func filled(_ count: Int, maxMessages: Int = 100, maxBytes: Int = 1 << 20) -> ReplayRing {
        let ring = ReplayRing(maxMessages: maxMessages, maxBytes: maxBytes)
        for seq in 1...count {
            let topic = seq % 3 == 0 ? "error.libvirt.w" : "result.w"
            ring.append(seq: UInt64(seq), topic: topic, message: Array(#"{"seq":\#(seq)}"#.utf8))
        }
        return ring
    }

    static func seqs(_ page: ReplayPage) -> [Int] {
        page.messages.map { m in
            let object = try! JSONSerialization.jsonObject(with: Data(m.message)) as! [String: Any]
            return object["seq"] as! Int
        }
    }

    @Test("pages go oldest first after since_seq, and next_seq carries on where a page stopped")
    func paging() {
        let ring = Self.filled(10)
        let first = ring.page(since: 0, limit: 4, topics: nil)
        #expect(Self.seqs(first) == [1, 2, 3, 4])
        #expect(first.nextSeq == 4 && first.more && !first.truncated && first.oldestSeq == 1)
        let rest = ring.page(since: first.nextSeq, limit: 100, topics: nil)
        #expect(Self.seqs(rest) == [5, 6, 7, 8, 9, 10])
        #expect(rest.nextSeq == 10 && !rest.more)
        let none = ring.page(since: 10, limit: 100, topics: nil)
        #expect(none.messages.isEmpty && none.nextSeq == 10 && !none.more && !none.truncated)
    }

    @Test("a topic filter returns what matches, and next_seq still covers what it passed over")
    func topics() {
        let ring = Self.filled(10)
        let page = ring.page(since: 0, limit: 2, topics: ["error."])
        #expect(Self.seqs(page) == [3, 6])
        #expect(page.nextSeq == 6 && page.more)
        let last = ring.page(since: page.nextSeq, limit: 100, topics: ["error."])
        #expect(Self.seqs(last) == [9] && last.nextSeq == 10 && !last.more)
    }

    @Test("past its count the oldest go, and a page that asks for them says truncated")
    func truncatedByCount() {
        let ring = Self.filled(25, maxMessages: 10)
        #expect(ring.usage.messages == 10)
        let page = ring.page(since: 0, limit: 100, topics: nil)
        #expect(page.truncated && page.oldestSeq == 16)
        #expect(Self.seqs(page) == Array(16...25))
        #expect(!ring.page(since: 15, limit: 100, topics: nil).truncated)
    }

    @Test("thousands of messages through a small ring keep their order and their bound")
    func longRun() {
        let ring = Self.filled(5000, maxMessages: 100)
        #expect(ring.usage.messages == 100)
        let page = ring.page(since: 0, limit: 1000, topics: nil)
        #expect(page.truncated && page.oldestSeq == 4901)
        #expect(Self.seqs(page) == Array(4901...5000))
        #expect(Self.seqs(ring.page(since: 4990, limit: 1000, topics: nil)) == Array(4991...5000))
    }

    @Test("past its bytes the oldest go; a message larger than the bound is not kept, nor anything older")
    func truncatedByBytes() {
        let ring = Self.filled(50, maxMessages: 1000, maxBytes: 1000)
        #expect(ring.usage.bytes <= 1000 && ring.usage.messages < 50)
        ring.append(seq: 51, topic: "result.w", message: Array(repeating: UInt8(ascii: " "), count: 2000))
        #expect(ring.usage.messages == 0)
        let page = ring.page(since: 40, limit: 100, topics: nil)
        #expect(page.messages.isEmpty && page.truncated && page.oldestSeq == 52 && page.nextSeq == 51 && !page.more)
    }
}

@Suite("Replay through the engine")
struct EngineReplayTests {
    static let route = ReplyRoute(frames: [Data("client".utf8)])

    @Test("replay answers on the control socket with the messages as published, outside the published stream")
    func answersFromTheRing() throws {
        let node = try NodeFile([("a", true)])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)
        engine.submit(#"{"v":1,"id":"s1","op":"status","machine":"a"}"#)
        _ = try #require(sink.result("s1"))
        let published = sink.all { $0.published }
        engine.submit(#"{"v":1,"id":"rp","op":"replay","args":{"since_seq":0}}"#, from: .control(Self.route))
        let reply = try #require(sink.result("rp"))
        #expect(!reply.published, "a replay's result goes to its client only")
        #expect(sink.all { $0.id == "rp" && $0.published }.isEmpty, "no ack, no result published")
        let newest = published.compactMap { $0["seq"] as? Int }.max()
        #expect(reply["seq"] as? Int == newest, "the reply carries the newest published seq")
        let data = try #require(reply["data"] as? [String: Any])
        let messages = try #require(data["messages"] as? [[String: Any]])
        let replayed = messages.compactMap { ($0["message"] as? [String: Any])?["seq"] as? Int }
        #expect(replayed == published.compactMap { $0["seq"] as? Int }, "every published message, in order")
        for (m, p) in zip(messages, published) {
            #expect(m["topic"] as? String == p.topic)
            let canonical = { (o: Any) in try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]) }
            #expect(canonical(m["message"] as Any) == canonical(p.json), "as published")
        }
        #expect(data["next_seq"] as? Int == newest && data["more"] as? Bool == false)
        #expect(data["truncated"] as? Bool == false && data["oldest_seq"] as? Int == 1)
        // Each replay is answered afresh: ids are not remembered.
        engine.submit(#"{"v":1,"id":"rp","op":"replay","args":{"since_seq":0}}"#, from: .control(Self.route))
        #expect(sink.wait { $0.id == "rp" && $0.type == "result" && $0["duplicate"] == nil && ($0["data"] as? [String: Any]) != nil && $0 .json["seq"] as? Int == newest } != nil)
        #expect(sink.all { $0.id == "rp" && $0.type == "result" }.count == 2)
    }

    @Test("replay on the commands socket is refused as invalid op; bad arguments are answered to the client only", arguments: [
        (#"{"limit":0}"#, "args.limit"), (#"{"limit":5001}"#, "args.limit"), (#"{"since_seq":-1}"#, "args.since_seq"),
        (#"{"since_seq":"x"}"#, "args.since_seq"), (#"{"topics":"result."}"#, "args.topics"), (#"{"topics":[1]}"#, "args.topics"),
    ])
    func refusals(args: String, field: String) throws {
        let node = try NodeFile([("a", true)])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)
        engine.submit(#"{"v":1,"id":"c1","op":"replay"}"#, from: .commands)
        let onCommands = try #require(sink.wait { $0.type == "request_error" && $0.id == "c1" })
        #expect(onCommands["reason"] as? String == "invalid_field" && onCommands["field"] as? String == "op")
        engine.submit(#"{"v":1,"id":"b1","op":"replay","args":\#(args)}"#, from: .control(Self.route))
        let bad = try #require(sink.wait { $0.type == "request_error" && $0.id == "b1" })
        #expect(bad["reason"] as? String == "invalid_field" && bad["field"] as? String == field, "\(bad)")
        #expect(!bad.published && bad.reply == Self.route, "answered to the client only")
    }
}
