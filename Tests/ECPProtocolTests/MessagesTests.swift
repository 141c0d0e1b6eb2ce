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
