@testable import ECPEngine
import ECPProtocol
import Foundation
import Libvirt
import Logging
import Testing
import WorkerLauncher

/// Valid but hostile traffic on the libvirt test driver: what reaches libvirt, and how large
/// what comes back can get.
@Suite("Engine with hostile input, on the libvirt test driver")
struct HostileInputTests {
    static func dashless(_ uuid: String) -> String { uuid.replacingOccurrences(of: "-", with: "") }

    static func status(_ engine: Engine, _ sink: MemorySink, _ id: String, _ machine: String) throws -> [String: Any] {
        engine.submit(#"{"v":1,"id":"\#(id)","op":"status","machine":"\#(machine)"}"#)
        return try #require(sink.result(id)).json
    }

    @Test("32 hex digits without dashes are a UUID, either case; as a name only when no machine has that UUID")
    func dashlessUUID() throws {
        let a = NodeFile.uuid(0)
        // b is named as a's UUID without dashes; c has a 32-hex-digit name that is nobody's UUID.
        // Their vCPU counts tell them apart in a status.
        let node = try NodeFile(machines: [
            TestDriverMachine(name: "a", uuid: a, runState: .shutoff, memoryKiB: 65_536, vcpus: 1),
            TestDriverMachine(name: Self.dashless(a), uuid: NodeFile.uuid(1), runState: .shutoff, memoryKiB: 65_536, vcpus: 2),
            TestDriverMachine(name: "0123456789abcdef0123456789abcdef", uuid: NodeFile.uuid(2), runState: .shutoff, memoryKiB: 65_536, vcpus: 3),
        ])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)

        for (i, spelling) in [Self.dashless(a), Self.dashless(a).uppercased(), a.uppercased()].enumerated() {
            let r = try Self.status(engine, sink, "s\(i)", spelling)
            #expect(r["ok"] as? Bool == true, "\(spelling): \(r)")
            let data = r["data"] as? [String: Any]
            #expect(data?["vcpus"] as? Int == 1, "\(spelling) is a's UUID, whatever b is called: \(r)")
        }
        let byName = try Self.status(engine, sink, "n1", "0123456789abcdef0123456789abcdef")
        #expect((byName["data"] as? [String: Any])?["vcpus"] as? Int == 3, "\(byName)")
        let missing = try Self.status(engine, sink, "n2", "ffffffffffffffffffffffffffffffff")
        #expect((missing["error"] as? [String: Any])?["code_name"] as? String == "VIR_ERR_NO_DOMAIN", "\(missing)")
    }

    @Test("both spellings of a UUID, in either case, share one lane: lower case with dashes")
    func laneKey() {
        let uuid = "6695eb01-f6a4-8304-79aa-97f2502e1900"
        for spelling in [uuid, uuid.uppercased(), Self.dashless(uuid), Self.dashless(uuid).uppercased()] {
            #expect(MachineDirectory.laneKey(spelling) == uuid, "\(spelling)")
        }
        #expect(MachineDirectory.laneKey("web1") == "web1")
        #expect(MachineDirectory.laneKey("0123456789abcdef0123456789abcdeg") == "0123456789abcdef0123456789abcdeg")
    }

    @Test("libvirt itself takes a UUID without dashes")
    func libvirtTakesDashless() throws {
        let connection = try Connection(uri: "test:///default")
        let test = try connection.lookup(name: "test")
        #expect(try connection.lookup(uuid: Self.dashless(test.uuid)).name == "test")
        #expect(Connection.canonicalUUID(Self.dashless(test.uuid).uppercased()) == test.uuid)
        #expect(Connection.canonicalUUID("web1") == nil)
        #expect(Connection.canonicalUUID(String(repeating: "g", count: 32)) == nil)
    }

    @Test("define of a document with entities declared never reaches libvirt")
    func doctypeNotDefined() throws {
        let node = try NodeFile([])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)
        let xml = """
            <?xml version="1.0"?>
            <!DOCTYPE domain [
              <!ENTITY lol "lol">
              <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
              <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
            ]>
            <domain type='test'><name>laughs</name><description>&lol2;</description><memory>65536</memory></domain>
            """
        let body = try JSONSerialization.data(withJSONObject: ["v": 1, "id": "bl", "op": "define", "args": ["xml": xml]])
        engine.submit(body, from: .commands)
        let e = try #require(sink.wait { $0.type == "request_error" && $0.id == "bl" })
        #expect(e["reason"] as? String == "invalid_field")
        #expect(e["field"] as? String == "args.xml")
        #expect(sink.all { $0.id == "bl" && $0.type != "request_error" }.isEmpty, "no ack, no result")
        engine.submit(#"{"v":1,"id":"ls","op":"list"}"#)
        let machines = try #require((sink.result("ls")?["data"] as? [String: Any])?["machines"] as? [[String: Any]])
        #expect(machines.isEmpty, "\(machines)")
    }

    @Test("a failed define of a 500 KB one-line XML answers, publishes and logs kilobytes")
    func hugeLibvirtMessage() throws {
        let node = try NodeFile([])
        let sink = MemorySink()
        let log = CapturedLog()
        let engine = makeEngine(uri: node.uri, sink: sink, logger: log.logger)
        // Unterminated: libxml's error quotes the whole line, and libvirt points under it.
        let xml = "<domain type='test'><name>big</name><description>" + String(repeating: "x", count: 500_000)
        let body = try JSONSerialization.data(withJSONObject: ["v": 1, "id": "big", "op": "define", "args": ["xml": xml]])
        engine.submit(body, from: .commands)
        let result = try #require(sink.result("big"))
        #expect(result["ok"] as? Bool == false)
        #expect(result.size < 32 << 10, "the result is \(result.size) bytes")
        let record = try #require(sink.wait { $0.type == "E2LibvirtError" && $0.id == "big" })
        #expect(record.size < 32 << 10, "the libvirt_error record is \(record.size) bytes")
        let message = try #require(record["message"] as? String)
        #expect(message.utf8.count < LibvirtText.maxBytes + 40 && message.hasSuffix(" bytes cut]"), "\(message.utf8.count) bytes")
        for key in ["str1", "str2", "str3"] {
            if let s = record[key] as? String { #expect(s.utf8.count < LibvirtText.maxBytes + 40, "\(key): \(s.utf8.count) bytes") }
        }
        let summary = try #require(record["summary"] as? String)
        #expect(summary.utf8.count < 1024 && !summary.contains("\n"), "\(summary)")

        let failed = try #require(log.records.first { $0.message == "command failed" && $0.metadata["command.id"] == "big" })
        let sizes = failed.metadata.mapValues { "\($0)".utf8.count }
        #expect(sizes.values.allSatisfy { $0 < LibvirtText.maxBytes + 40 }, "\(sizes)")
        #expect(sizes.values.reduce(0, +) < 32 << 10, "\(sizes)")
    }

    @Test("cutting keeps whole UTF-8 characters and counts the bytes left out", arguments: [
        ("short", 10, "short"),
        ("0123456789", 10, "0123456789"),
        ("0123456789A", 10, "0123456789… [1 bytes cut]"),
        ("ééééé", 5, "éé… [6 bytes cut]"),
        ("a😀b", 3, "a… [5 bytes cut]"),
        ("a😀b", 5, "a😀… [1 bytes cut]"),
    ])
    func cut(_ text: String, limit: Int, expected: String) {
        #expect(LibvirtText.cut(text, limit: limit) == expected)
    }
}
