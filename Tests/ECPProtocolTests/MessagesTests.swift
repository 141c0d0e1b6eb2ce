import ECPProtocol
import Foundation
import Testing

@Suite("Outgoing messages")
struct MessagesTests {
    @Test("E2LibvirtError writes libvirt's missing strings as null, never omits them")
    func nullStrings() throws {
        let record = E2LibvirtErrorRecord(
            id: nil, op: nil, machine: nil, code: 42, codeName: "VIR_ERR_NO_DOMAIN", domain: 12,
            domainName: "VIR_FROM_TEST", level: "error", message: "Domain not found", str1: "Domain not found",
            str2: nil, str3: nil, int1: -1, int2: -1, category: "not_found", retryable: false, summary: "s")
        let object = try #require(JSONSerialization.jsonObject(with: JSONEncoder().encode(record)) as? [String: Any])
        #expect(object["str2"] is NSNull)
        #expect(object["str3"] is NSNull)
        #expect(object["id"] == nil)
        #expect(object["code_name"] as? String == "VIR_ERR_NO_DOMAIN")
        #expect(object["type"] as? String == "E2LibvirtError")
    }

    @Test("a result round-trips with its inline error")
    func roundTrip() throws {
        let result = ResultMessage(
            id: "a", op: "start", machine: "m", ok: false,
            error: .worker(WorkerErrorRecord(type: "timeout", category: "timeout", retryable: true, message: "m", summary: "s", timeoutMs: 5)),
            durationMs: 1.5)
        let back = try JSONDecoder().decode(ResultMessage.self, from: JSONEncoder().encode(result))
        #expect(back == result)
    }
}

@Suite("Direct JSON writing of acks and results")
struct JSONWriterTests {
    static let hostile = ["plain", "quote\" back\\slash", "line\nfeed\ttab\r", "esc\u{1b}[31m", "nul\u{0}x", "é ü 日本 🚀", "/slash/", "\u{7f}\u{80}\u{2028}"]

    static let results: [ResultMessage] = [
        ResultMessage(id: "a", op: "start", machine: "web1", ok: true, changed: true, state: "running", data: .object([:]), durationMs: 3.2),
        ResultMessage(id: "b", op: "status", machine: nil, ok: true, changed: false, data: ["n": 1, "d": 0.5, "neg": -7, "big": .int(Int64.max), "b": true, "z": nil, "s": "x\"y", "arr": [1, "two", [3]], "obj": ["k": ["l": false]]], durationMs: 0),
        ResultMessage(id: "c", op: "start", machine: "m", ok: false, error: .worker(WorkerErrorRecord(type: "timeout", category: "timeout", retryable: true, message: "m\n", summary: "s", timeoutMs: 5)), durationMs: 1234.567, duplicate: true),
        ResultMessage(id: "d", op: "destroy", machine: "m", ok: false, error: .libvirt(E2LibvirtErrorRecord(id: "d", op: "destroy", machine: "m", code: 55, codeName: "VIR_ERR_OPERATION_INVALID", domain: 20, domainName: "VIR_FROM_DOMAIN", level: "error", message: nil, str1: "a", str2: nil, str3: nil, int1: -1, int2: -1, category: "invalid_state", retryable: false, summary: "x")), durationMs: 0.001),
    ]

    @Test("a result whose change was not saved says saved: false; one that was saved has no saved field")
    func savedField() throws {
        var result = Self.results[0]
        let savedKeys = try #require(try JSONSerialization.jsonObject(with: result.jsonData()) as? [String: Any])
        #expect(savedKeys["saved"] == nil)
        result.saved = false
        let unsaved = try #require(try JSONSerialization.jsonObject(with: result.jsonData()) as? [String: Any])
        #expect(unsaved["saved"] as? Bool == false)
        #expect(try JSONDecoder().decode(ResultMessage.self, from: result.jsonData()) == result)
    }

    @Test("a heartbeat has state_table always, unsaved_since only while unsaved")
    func heartbeatStateTable() throws {
        var heartbeat = HeartbeatMessage(uptimeS: 1, libvirt: "connected", inFlight: 0, processed: 0, failed: 0, intervalMs: 100)
        let saved = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(heartbeat)) as? [String: Any])
        #expect(saved["state_table"] as? String == "saved")
        #expect(saved["unsaved_since"] == nil)
        heartbeat.stateTable = "unsaved"
        heartbeat.unsavedSince = "2026-11-25T20:31:07.123Z"
        let unsaved = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(heartbeat)) as? [String: Any])
        #expect(unsaved["state_table"] as? String == "unsaved")
        #expect(unsaved["unsaved_since"] as? String == "2026-11-25T20:31:07.123Z")
    }

    @Test("a result written directly decodes to the same message", arguments: 0..<results.count)
    func result(_ index: Int) throws {
        let message = Self.results[index]
        let decoded = try JSONDecoder().decode(ResultMessage.self, from: message.jsonData())
        #expect(decoded == message)
        _ = try JSONSerialization.jsonObject(with: message.jsonData())
    }

    @Test("a machine event written directly decodes to the same message", arguments: hostile)
    func machineEvent(_ text: String) throws {
        for state in [nil, "running"] as [String?] {
            let event = MachineEventMessage(machine: text, uuid: "u", event: "started", detail: text, state: state)
            let data = event.jsonData()
            #expect(try JSONDecoder().decode(MachineEventMessage.self, from: data) == event)
            let direct = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            let coded = try JSONSerialization.jsonObject(with: JSONEncoder().encode(event)) as? [String: Any]
            #expect(direct.map { Set($0.keys) } == coded.map { Set($0.keys) }, "the same fields as the Codable form")
        }
    }

    @Test("numbers are written as JSON that reads back to the same value", arguments: [
        0, 1, -1, 0.5, 3.2, 0.001, 0.012, 0.1 + 0.2, 1234.567, -5.25, 1e15, 1e-7, 123456789.123, Double(Int64.max),
    ])
    func numbers(_ value: Double) throws {
        var w = JSONWriter()
        w.double(value)
        let decoded = try JSONDecoder().decode(Double.self, from: Data(w.bytes))
        #expect(decoded == value)
        for i in [Int64.min, -10, -9, 0, 9, 10, 99, 100, Int64.max] {
            var w = JSONWriter()
            w.int(i)
            #expect(String(decoding: w.bytes, as: UTF8.self) == String(i))
        }
    }

    @Test("strings of every kind are escaped into valid JSON and read back unchanged", arguments: hostile)
    func strings(_ text: String) throws {
        let ack = AcceptedMessage(id: "x", op: "start", machine: text)
        let data = ack.jsonData()
        #expect(try JSONDecoder().decode(AcceptedMessage.self, from: data) == ack)
        #expect(!data.contains(0x0a) && !data.contains(0x1b) && !data.contains(0x00), "no raw control bytes")
        let result = ResultMessage(id: "x", op: "status", machine: text, ok: true, data: [text: .string(text)], durationMs: 1)
        #expect(try JSONDecoder().decode(ResultMessage.self, from: result.jsonData()) == result)
    }
}
