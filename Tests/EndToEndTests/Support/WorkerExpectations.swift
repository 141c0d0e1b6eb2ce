import ECPProtocol
import Foundation
import Testing

/// Checks shared by the end-to-end tests: the envelope every message carries, and the shape of an
/// ack/result pair.
enum WorkerExpect {
    /// Whether `text` is an ISO 8601 UTC timestamp with milliseconds (`2026-11-25T20:31:07.123Z`)
    /// that denotes a real instant.
    static func isTimestamp(_ text: String) -> Bool {
        guard text.wholeMatch(of: #/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/#) != nil else { return false }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text) != nil
    }

    /// The instant of a timestamp written by the worker.
    static func date(_ text: String?) -> Date? {
        guard let text else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }

    /// Whether `text` is a UUID in its textual form.
    static func isUUID(_ text: String?) -> Bool {
        guard let text else { return false }
        return UUID(uuidString: text) != nil
    }

    /// The envelope of a published message: `v` 1, `type`, `worker`, a UUID `run`, a positive `seq`,
    /// a millisecond UTC `ts`, and the topic `<topic>.<worker-id>`.
    static func envelope(
        _ m: WorkerMessage, worker: WorkerProcess, type: String, topic: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(m.json != nil, "not JSON: \(m)", sourceLocation: sourceLocation)
        #expect(m["v"] == 1, "v: \(m)", sourceLocation: sourceLocation)
        #expect(m.type == type, "type: \(m)", sourceLocation: sourceLocation)
        #expect(m.worker == worker.id, "worker: \(m)", sourceLocation: sourceLocation)
        #expect(isUUID(m.run), "run: \(m)", sourceLocation: sourceLocation)
        #expect((m.seq ?? 0) >= 1, "seq: \(m)", sourceLocation: sourceLocation)
        #expect(isTimestamp(m["ts"]?.stringValue ?? ""), "ts: \(m)", sourceLocation: sourceLocation)
        if !m.topic.isEmpty {
            #expect(m.topic == "\(topic).\(worker.id)", "topic: \(m)", sourceLocation: sourceLocation)
        }
    }

    /// The ack and result of one successful or failed command: ack on `ack.<id>` before the result
    /// (lower `seq`), both echoing `id`, `op` and `machine`; for a control command, the reply is
    /// the very message published as the result.
    static func exchange(
        _ x: CommandExchange, command: JSONValue, worker: WorkerProcess,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let id = command["id"]?.stringValue
        let op = command["op"]?.stringValue
        let machine = command["machine"]
        envelope(x.ack, worker: worker, type: "accepted", topic: "ack", sourceLocation: sourceLocation)
        envelope(x.result, worker: worker, type: "result", topic: "result", sourceLocation: sourceLocation)
        #expect(x.ack.id == id, sourceLocation: sourceLocation)
        #expect(x.ack["op"]?.stringValue == op, sourceLocation: sourceLocation)
        #expect(x.ack["machine"] == machine, "the ack echoes the machine: \(x.ack)", sourceLocation: sourceLocation)
        #expect(x.result.id == id, sourceLocation: sourceLocation)
        #expect(x.result["op"]?.stringValue == op, sourceLocation: sourceLocation)
        #expect(x.result["machine"] == machine, "the result echoes the machine: \(x.result)", sourceLocation: sourceLocation)
        #expect((x.result["duration_ms"]?.doubleValue ?? -1) >= 0, "duration_ms: \(x.result)", sourceLocation: sourceLocation)
        #expect(x.result["duplicate"] == nil || x.result["duplicate"] == false, "a first execution is no duplicate", sourceLocation: sourceLocation)
        #expect(x.ack.run == x.result.run, sourceLocation: sourceLocation)
        // A missing seq fails here as well: every message carries one.
        let ackSeq = x.ack.seq ?? .max, resultSeq = x.result.seq ?? 0
        #expect(ackSeq < resultSeq, "the ack (seq \(x.ack.seq.map(String.init) ?? "none")) goes out before the result (seq \(x.result.seq.map(String.init) ?? "none"))", sourceLocation: sourceLocation)
        if let reply = x.reply {
            #expect(reply.envelope == [Data()], "the reply mirrors the [\"\"][json] envelope", sourceLocation: sourceLocation)
            #expect(reply.type == "result", "the control reply is the result, never the ack: \(reply)", sourceLocation: sourceLocation)
            #expect(reply.json == x.result.json, "the reply is the published result\n reply: \(reply)\n published: \(x.result)", sourceLocation: sourceLocation)
        }
    }

    /// A failed result carrying an `E2LibvirtError` inline, and the same record on
    /// `error.libvirt.<worker-id>`; returns the inline record.
    @discardableResult
    static func libvirtFailure(
        _ result: WorkerMessage, published: WorkerMessage, command: JSONValue, worker: WorkerProcess,
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> JSONValue? {
        #expect(result.ok == false, "ok: \(result)", sourceLocation: sourceLocation)
        guard let error = result.error else {
            Issue.record("no inline error in \(result)", sourceLocation: sourceLocation)
            return nil
        }
        #expect(error["type"] == "E2LibvirtError", sourceLocation: sourceLocation)
        #expect(error["id"] == command["id"], sourceLocation: sourceLocation)
        #expect(error["op"] == command["op"], sourceLocation: sourceLocation)
        #expect(error["machine"] == command["machine"], "the record echoes the machine: \(error)", sourceLocation: sourceLocation)
        for key in ["code", "domain", "int1", "int2"] {
            #expect(error[key]?.intValue != nil, "\(key) is an integer: \(error)", sourceLocation: sourceLocation)
        }
        for key in ["code_name", "domain_name", "summary", "category"] {
            #expect(error[key]?.stringValue?.isEmpty == false, "\(key) is a string: \(error)", sourceLocation: sourceLocation)
        }
        for key in ["message", "str1", "str2", "str3"] {
            #expect(error[key] != nil, "\(key) is present (null when libvirt gave none): \(error)", sourceLocation: sourceLocation)
        }
        #expect(["none", "warning", "error"].contains(error["level"]?.stringValue ?? ""), "level: \(error)", sourceLocation: sourceLocation)
        #expect(error["retryable"]?.boolValue != nil, sourceLocation: sourceLocation)
        envelope(published, worker: worker, type: "E2LibvirtError", topic: "error.libvirt", sourceLocation: sourceLocation)
        #expect(published.withoutEnvelope == error, "the published record is the inline one\n inline: \(error)\n published: \(published)", sourceLocation: sourceLocation)
        return error
    }
}
