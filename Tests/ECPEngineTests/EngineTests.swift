@testable import ECPEngine
import ECPProtocol
import Foundation
import Testing

@Suite("Engine in memory, on the libvirt test driver")
struct EngineTests {
    @Test("ping is acknowledged, then answered with the uptime")
    func ping() throws {
        let sink = MemorySink()
        let engine = makeEngine(uri: "test:///default", sink: sink)
        engine.submit(#"{"v":1,"id":"p1","op":"ping"}"#)
        let result = try #require(sink.result("p1"))
        #expect(result["ok"] as? Bool == true)
        #expect((result["data"] as? [String: Any])?["uptime_s"] is Double)
        let ack = try #require(sink.wait { $0.type == "accepted" && $0.id == "p1" })
        #expect(ack.topic == "ack.t1")
        #expect((ack["seq"] as! Int) < (result["seq"] as! Int), "the ack goes out before the result")
    }

    @Test("start, suspend, resume and destroy change state; repeating them changes nothing")
    func lifecycle() throws {
        let node = try NodeFile([("web1", false)])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)
        let steps: [(String, Bool, String)] = [
            ("start", true, "running"), ("start", false, "running"),
            ("suspend", true, "paused"), ("suspend", false, "paused"),
            ("resume", true, "running"), ("resume", false, "running"),
            ("destroy", true, "shutoff"), ("destroy", false, "shutoff"),
            ("shutdown", false, "shutoff"),
        ]
        for (i, (op, changed, state)) in steps.enumerated() {
            engine.submit(#"{"v":1,"id":"l\#(i)","op":"\#(op)","machine":"web1"}"#)
            let r = try #require(sink.result("l\(i)"), "no result for \(op)")
            #expect(r["ok"] as? Bool == true, "\(op): \(r)")
            #expect(r["changed"] as? Bool == changed, "\(op)")
            #expect(r["state"] as? String == state, "\(op)")
        }
    }

    @Test("a machine that does not exist gives an E2LibvirtError, inline and on its own topic")
    func missingMachine() throws {
        let sink = MemorySink()
        let engine = makeEngine(uri: "test:///default", sink: sink)
        engine.submit(#"{"v":1,"id":"m1","op":"start","machine":"web9"}"#)
        let r = try #require(sink.result("m1"))
        #expect(r["ok"] as? Bool == false)
        let error = try #require(r["error"] as? [String: Any])
        #expect(error["type"] as? String == "E2LibvirtError")
        #expect(error["code"] as? Int == 42)
        #expect(error["code_name"] as? String == "VIR_ERR_NO_DOMAIN")
        #expect(error["domain_name"] as? String == "VIR_FROM_TEST")
        #expect(error["category"] as? String == "not_found")
        #expect(error["retryable"] as? Bool == false)
        #expect(error["machine"] as? String == "web9")
        let summary = try #require(error["summary"] as? String)
        #expect(summary.contains("web9") && summary.contains("VIR_ERR_NO_DOMAIN") && summary.contains("test driver"))
        let published = try #require(sink.wait { $0.topic == "error.libvirt.t1" && $0.id == "m1" })
        #expect(published["code"] as? Int == 42)
    }

    @Test("a duplicate id runs once and is answered with the first result, marked duplicate")
    func duplicate() throws {
        let node = try NodeFile([("db1", false)])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)
        engine.submit(#"{"v":1,"id":"dup","op":"start","machine":"db1"}"#)
        _ = try #require(sink.result("dup"))
        engine.submit(#"{"v":1,"id":"dup","op":"start","machine":"db1"}"#)
        let second = try #require(sink.wait { $0.type == "result" && $0.id == "dup" && $0["duplicate"] as? Bool == true })
        #expect(second["changed"] as? Bool == true, "the first execution's result, not a new run")
        #expect(sink.all { $0.type == "accepted" && $0.id == "dup" }.count == 1)
    }

    @Test("commands for one machine run in order; each sees the state its predecessor left")
    func ordering() throws {
        let node = try NodeFile([("a", true)])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, maxParallel: 8)
        for i in 0..<40 {
            engine.submit(#"{"v":1,"id":"o\#(i)","op":"\#(i % 2 == 0 ? "suspend" : "resume")","machine":"a"}"#)
        }
        for i in 0..<40 {
            let r = try #require(sink.result("o\(i)"))
            #expect(r["changed"] as? Bool == true, "command \(i) ran after \(i - 1)")
        }
        let seqs = (0..<40).map { i in sink.all { m in m.type == "result" && m.id == "o\(i)" }[0]["seq"] as! Int }
        #expect(seqs == seqs.sorted())
    }

    @Test("a request error never runs and carries the id it could read")
    func requestError() throws {
        let sink = MemorySink()
        let engine = makeEngine(uri: "test:///default", sink: sink)
        engine.submit(#"{"v":1,"id":"r1","op":"start","machine":""}"#)
        let e = try #require(sink.wait { $0.type == "request_error" })
        #expect(e.topic == "error.request.t1")
        #expect(e["reason"] as? String == "invalid_field")
        #expect(e["field"] as? String == "machine")
        #expect(e.id == "r1")
        #expect(sink.all { $0.type == "accepted" }.isEmpty)
    }

    @Test("define, status and undefine report what the protocol lists")
    func defineStatusUndefine() throws {
        let node = try NodeFile([])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)
        let xml = "<domain type='test'><name>new1</name><memory>8192</memory><vcpu>2</vcpu><os><type>hvm</type></os></domain>"
        let body = try String(decoding: JSONSerialization.data(withJSONObject: ["v": 1, "id": "d1", "op": "define", "args": ["xml": xml]]), as: UTF8.self)
        engine.submit(body)
        let d = try #require(sink.result("d1"))
        #expect(d["ok"] as? Bool == true, "\(d)")
        let data = try #require(d["data"] as? [String: Any])
        #expect(data["name"] as? String == "new1")
        let uuid = try #require(data["uuid"] as? String)

        engine.submit(#"{"v":1,"id":"s1","op":"status","machine":"\#(uuid)"}"#)
        let s = try #require(sink.result("s1"))
        let st = try #require(s["data"] as? [String: Any])
        #expect(st["state"] as? String == "shutoff")
        #expect(st["vcpus"] as? Int == 2)
        #expect(st["max_memory_kib"] as? Int == 8192)
        #expect(st["persistent"] as? Bool == true)
        #expect(st["autostart"] as? Bool == false)
        for key in ["reason", "memory_kib", "cpu_time_ns"] { #expect(st[key] != nil, "\(key)") }

        engine.submit(#"{"v":1,"id":"u1","op":"undefine","machine":"new1"}"#)
        #expect(try #require(sink.result("u1"))["ok"] as? Bool == true)
        engine.submit(#"{"v":1,"id":"s2","op":"status","machine":"new1"}"#)
        let gone = try #require(sink.result("s2")?["error"] as? [String: Any])
        #expect(gone["code_name"] as? String == "VIR_ERR_NO_DOMAIN")
    }

    @Test("list returns every machine with name, uuid and state")
    func list() throws {
        let node = try NodeFile([("x1", true), ("x2", false)])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)
        engine.submit(#"{"v":1,"id":"ls","op":"list"}"#)
        let r = try #require(sink.result("ls"))
        let machines = try #require((r["data"] as? [String: Any])?["machines"] as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: machines.map { ($0["name"] as! String, $0) })
        #expect(byName["x1"]?["state"] as? String == "running")
        #expect(byName["x2"]?["state"] as? String == "shutoff")
        #expect(byName["x2"]?["uuid"] as? String == NodeFile.uuid(1))
    }

    @Test("a control command's result is also its reply, mirroring the envelope")
    func controlReply() throws {
        let sink = MemorySink()
        let engine = makeEngine(uri: "test:///default", sink: sink)
        let route = ReplyRoute(frames: [Data([1, 2, 3]), Data()])
        engine.submit(#"{"v":1,"id":"c1","op":"ping"}"#, from: .control(route))
        let r = try #require(sink.result("c1"))
        #expect(r.reply == route)
        let ack = try #require(sink.wait { $0.type == "accepted" && $0.id == "c1" })
        #expect(ack.reply == nil, "the ack is never the reply")
    }

    // seq as the worker publishes it (no gaps for a subscriber to every topic) is checked end to
    // end; here, the stamper that numbers every message of a run.
    @Test("the envelope stamper numbers a run's messages from 1 without gaps, its fields before the body's")
    func envelopeSeq() throws {
        var stamper = EnvelopeStamper(worker: "w\"1", run: "00000000-0000-0000-0000-000000000007")
        let bodies = [#"{"type":"a","x":1}"#, "{}", #"{"type":"b"}"#]
        for (n, body) in bodies.enumerated() {
            let bytes = stamper.stamp(Array(body.utf8))
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.hasPrefix(#"{"v":1,"worker":"w\"1","run":"00000000-0000-0000-0000-000000000007","seq":\#(n + 1),"ts":""#), "\(text)")
            let json = try #require(try JSONSerialization.jsonObject(with: bytes) as? [String: Any], "\(text)")
            #expect(json["worker"] as? String == "w\"1")
            #expect(stamper.seq == UInt64(n + 1))
            if n == 0 { #expect(json["x"] as? Int == 1 && json["type"] as? String == "a", "the body's fields follow: \(text)") }
        }
    }

    @Test("lifecycle events become machine.event messages")
    func machineEvents() throws {
        let node = try NodeFile([("ev1", false)])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)
        engine.submit(#"{"v":1,"id":"e1","op":"start","machine":"ev1"}"#)
        let event = try #require(sink.wait { $0.type == "machine.event" && $0["machine"] as? String == "ev1" })
        #expect(event.topic == "machine.t1")
        #expect(event["event"] as? String == "started")
        #expect(event["state"] as? String == "running")
        #expect(event["uuid"] as? String == NodeFile.uuid(0))
    }
}

@Suite("Duplicate answers")
struct DuplicateAnswerTests {
    static let results: [ResultMessage] = [
        ResultMessage(
            id: "a", op: "status", machine: "web1", ok: true, changed: false, state: "running",
            data: ["state": "running", "reason": 1, "memory_kib": .int(Int64.max), "persistent": true, "x": nil], durationMs: 0.25),
        ResultMessage(id: "b", op: "ping", machine: nil, ok: true, changed: false, data: ["uptime_s": 12.5], durationMs: 0),
        ResultMessage(
            id: "c", op: "start", machine: "m\n\"q\"", ok: false,
            error: .worker(.commandTimeout(what: "start machine 'm'", timeoutMs: 5)), durationMs: 1234.567),
        ResultMessage(
            id: "d", op: "destroy", machine: "m", ok: false,
            error: .libvirt(E2LibvirtErrorRecord(
                id: "d", op: "destroy", machine: "m", code: 55, codeName: "VIR_ERR_OPERATION_INVALID", domain: 20,
                domainName: "VIR_FROM_DOMAIN", level: "error", message: nil, str1: "a", str2: nil, str3: nil, int1: -1,
                int2: -1, category: "invalid_state", retryable: false, summary: "x")),
            durationMs: 0.001),
    ]

    @Test("a duplicate gets the first result as sent, with duplicate: true and nothing else changed", arguments: results)
    func sameResultMarked(_ first: ResultMessage) throws {
        let answer = Engine.duplicateAnswer(first.jsonBytes())
        let decoded = try JSONDecoder().decode(ResultMessage.self, from: Data(answer))
        var expected = first
        expected.duplicate = true
        #expect(decoded == expected)
    }
}

@Suite("Deadlines of finished commands")
struct FinishedDeadlineTests {
    @Test("a command answered before its timeout_ms leaves no deadline pending, and is not kept for it")
    func finishedCommandsHoldNoDeadline() throws {
        let node = try NodeFile([("web1", false)])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)
        let count = 2_000
        for i in 0..<count {
            engine.submit(#"{"v":1,"id":"d\#(i)","op":"ping","timeout_ms":86400000}"#)
        }
        // Through the dispatcher too, and one with a large argument.
        let xml = "<domain type='test'><name>big</name><memory>65536</memory><description>"
            + String(repeating: "x", count: 200_000) + "</description><os><type>hvm</type></os></domain>"
        let define = try JSONSerialization.data(withJSONObject: [
            "v": 1, "id": "d-define", "op": "define", "timeout_ms": 86_400_000, "args": ["xml": xml],
        ])
        engine.submit(define, from: .commands)
        engine.submit(#"{"v":1,"id":"d-status","op":"status","machine":"web1","timeout_ms":86400000}"#)
        for id in (0..<count).map({ "d\($0)" }) + ["d-define", "d-status"] {
            let r = try #require(sink.result(id))
            #expect(r["ok"] as? Bool == true, "\(id): \(r)")
        }
        #expect(engine.deadlines.pendingCount == 0)
    }
}
