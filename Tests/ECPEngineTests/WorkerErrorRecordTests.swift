import ECPProtocol
import Foundation
import Testing
@testable import ECPEngine

/// The worker's own error records, field by field and as JSON: clients read these texts.
@Suite("Worker error records")
struct WorkerErrorRecordTests {
    struct Failure: Error, CustomStringConvertible {
        var description: String { "disk gone" }
    }

    static let cases: [(label: String, record: WorkerErrorRecord, expected: WorkerErrorRecord)] = [
        ("command deadline", .commandTimeout(what: "start machine 'web1'", timeoutMs: 500), WorkerErrorRecord(
            type: "timeout", category: "timeout", retryable: true,
            message: "command did not finish within timeout_ms (500 ms)",
            summary: "worker: cannot start machine 'web1': it did not finish within 500 ms; the libvirt call goes on and any state change it makes is reported as a machine.event",
            timeoutMs: 500)),
        ("restore deadline", .restoreTimeout(machine: "db1", timeoutMs: 120_000), WorkerErrorRecord(
            type: "timeout", category: "timeout", retryable: true,
            message: "restoring the machine took longer than 120000 ms",
            summary: "worker: cannot restore machine 'db1': it did not finish within 120000 ms; the libvirt call goes on and any state change it makes is reported as a machine.event")),
        ("shutdown wait", .shutdownTimeout(machine: "web2", waitMs: 3000), WorkerErrorRecord(
            type: "timeout", category: "timeout", retryable: true,
            message: "machine did not power off within 3000 ms",
            summary: "worker: cannot shut down machine 'web2': the guest did not power off within 3000 ms (send force: true to destroy it then)",
            timeoutMs: 3000)),
        ("cancelled", .cancelled, WorkerErrorRecord(
            type: "cancelled", category: "resource", retryable: true,
            message: "the worker stopped before the command could run",
            summary: "worker: the command was not run because the worker is stopping; send it again when the worker is back")),
        ("interrupted", .interrupted(what: "shut down machine 'web1'"), WorkerErrorRecord(
            type: "interrupted", category: "timeout", retryable: true,
            message: "the worker stopped before the command finished",
            summary: "worker: cannot shut down machine 'web1': the worker stopped before the command finished; the libvirt call may still complete, and what it did shows as a machine.event or in the next status")),
        ("internal", .internalError(action: "start machine 'web1'", error: Failure()), WorkerErrorRecord(
            type: "internal", category: "internal", retryable: false, message: "disk gone",
            summary: "worker: cannot start machine 'web1': disk gone")),
        ("corrupt table, moved aside", .corruptTable(path: "/s/t.json", movedTo: "/s/t.json.corrupt-1", reason: "bad JSON"),
         WorkerErrorRecord(
            type: "corrupt_table", category: "config", retryable: false,
            message: "the state table /s/t.json could not be read: bad JSON; it was kept aside as /s/t.json.corrupt-1",
            summary: "worker: cannot restore from the state table /s/t.json: bad JSON; it was kept aside as /s/t.json.corrupt-1, and the worker started from an empty table",
            file: "/s/t.json.corrupt-1")),
        ("corrupt table, kept in place", .corruptTable(path: "/s/t.json", movedTo: "/s/t.json", reason: "bad JSON"),
         WorkerErrorRecord(
            type: "corrupt_table", category: "config", retryable: false,
            message: "the state table /s/t.json could not be read: bad JSON; it was kept where it is",
            summary: "worker: cannot restore from the state table /s/t.json: bad JSON; it was kept where it is, and the worker started from an empty table",
            file: "/s/t.json")),
    ]

    @Test("each factory gives its record", arguments: cases.indices)
    func factory(_ index: Int) {
        let c = Self.cases[index]
        #expect(c.record == c.expected, "\(c.label)")
    }

    @Test("categories are the protocol's")
    func categoriesAreTheProtocols() {
        for c in Self.cases {
            #expect(ErrorCategory(rawValue: c.record.category) != nil, "\(c.label)")
        }
    }

    @Test("a command deadline as JSON")
    func commandTimeoutJSON() throws {
        let data = try JSONEncoder().encode(WorkerErrorRecord.commandTimeout(what: "list", timeoutMs: 5))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["type"] as? String == "timeout")
        #expect(object["category"] as? String == "timeout")
        #expect(object["timeout_ms"] as? Int == 5)
        #expect(object["summary"] as? String
            == "worker: cannot list: it did not finish within 5 ms; the libvirt call goes on and any state change it makes is reported as a machine.event")
    }
}
