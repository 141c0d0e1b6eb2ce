@testable import ECPEngine
import ECPProtocol
import Foundation
import Testing
import WorkerLauncher

/// The matrix's test-driver host.
enum OpMatrixMachine {
    /// Shut off at the start.
    static let web1 = TestDriverMachine(name: "web1", uuid: "6695eb01-f6a4-8304-79aa-97f2502e1001", running: false)
    /// Shut off at the start.
    static let web2 = TestDriverMachine(name: "web2", uuid: "6695eb01-f6a4-8304-79aa-97f2502e1002", running: false, vcpus: 4)
    /// Running at the start.
    static let db1 = TestDriverMachine(name: "db1", uuid: "6695eb01-f6a4-8304-79aa-97f2502e1003", running: true, vcpus: 1)
    /// Running at the start.
    static let cache1 = TestDriverMachine(name: "cache1", uuid: "6695eb01-f6a4-8304-79aa-97f2502e1004", running: true)

    static let standard: [TestDriverMachine] = [web1, web2, db1, cache1]

    /// A test-driver node file holding `machines`, in a fresh directory; returns its `test://` URI.
    static func nodeFile(_ machines: [TestDriverMachine]) throws -> String {
        try NodeFile(machines: machines).uri
    }

    /// Domain XML for `define`.
    static func domainXML(name: String, uuid: String? = nil, memoryKiB: Int = 65_536, vcpus: Int = 1) -> String {
        TestDriverNode.defineXML(name: name, uuid: uuid, memoryKiB: memoryKiB, vcpus: vcpus)
    }
}

/// The two ways a command reaches the engine: the commands socket (answers are published only)
/// and the control socket (the result is also the reply, along the request's route).
enum OpMatrixOrigin: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case commands
    case control

    /// The reply route a control request comes with: a ROUTER's peer identity and the empty delimiter.
    static let route = ReplyRoute(frames: [Data("peer-7".utf8), Data()])

    var origin: Origin {
        switch self {
        case .commands: .commands
        case .control: .control(Self.route)
        }
    }

    var testDescription: String { rawValue }
}

/// A message the engine sent, as JSON.
struct OpMatrixMessage: Sendable, CustomStringConvertible {
    var topic: String
    var json: JSONValue
    var reply: ReplyRoute?

    init(_ received: Received) throws {
        topic = received.topic
        reply = received.reply
        let bytes = try JSONSerialization.data(withJSONObject: received.json)
        json = try JSONDecoder().decode(JSONValue.self, from: bytes)
    }

    subscript(key: String) -> JSONValue? { json[key] }

    var type: String? { self["type"]?.stringValue }
    var id: String? { self["id"]?.stringValue }
    var seq: Int64? { self["seq"]?.intValue }
    var ok: Bool? { self["ok"]?.boolValue }
    var changed: Bool? { self["changed"]?.boolValue }
    var state: String? { self["state"]?.stringValue }
    var data: JSONValue? { self["data"] }
    var error: JSONValue? { self["error"] }

    /// The message without the envelope fields, for comparing a published record with the inline one.
    var withoutEnvelope: JSONValue {
        var object = json.objectValue ?? [:]
        for key in ["v", "worker", "run", "seq", "ts"] { object[key] = nil }
        return .object(object)
    }

    var description: String { "\(topic) \(json)" }
}

/// Runs commands on an engine and waits for their results.
struct OpMatrixDriver: @unchecked Sendable {
    let engine: Engine
    let sink: MemorySink
    private let counter = Counter()

    init(engine: Engine, sink: MemorySink) {
        self.engine = engine
        self.sink = sink
    }

    private final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        func next() -> Int { lock.withLock { n += 1; return n } }
    }

    static func command(_ op: String, id: String, machine: String? = nil, args: JSONValue? = nil) -> JSONValue {
        var object: [String: JSONValue] = ["v": 1, "id": .string(id), "op": .string(op)]
        if let machine { object["machine"] = .string(machine) }
        if let args { object["args"] = args }
        return .object(object)
    }

    func submit(_ command: JSONValue, from origin: Origin) throws {
        engine.submit(try JSONEncoder().encode(command), from: origin)
    }

    /// The result of command `id`.
    func result(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> OpMatrixMessage {
        try OpMatrixMessage(try #require(sink.result(id), "no result for \(id)", sourceLocation: sourceLocation))
    }

    /// Runs a command from the commands origin and returns its result.
    @discardableResult
    func run(
        _ op: String, machine: String? = nil, args: JSONValue? = nil, sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> OpMatrixMessage {
        let id = "\(op)-\(counter.next())"
        try submit(Self.command(op, id: id, machine: machine, args: args), from: .commands)
        return try result(id, sourceLocation: sourceLocation)
    }

    /// Asks for a machine's status and expects `state`.
    func expectState(_ machine: String, _ state: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let status = try run("status", machine: machine, sourceLocation: sourceLocation)
        #expect(status.ok == true, "\(status)", sourceLocation: sourceLocation)
        #expect(status.state == state, "\(machine) is \(state): \(status)", sourceLocation: sourceLocation)
    }
}

/// The `E2LibvirtError` a refused command must come back with.
struct OpMatrixFailure: Sendable {
    var code: Int64
    var codeName: String
    var domain: Int64
    var domainName: String
    var category: String
    var retryable: Bool = false
    /// Text the summary must contain besides the code name.
    var summaryMentions: [String]
    /// A machine whose state the failed command must not have changed, and that state.
    var unchanged: (String, String)?
}

/// One operation as a test case: how to bring the machines into the state the operation needs,
/// the command, and what its result must say (or the error it must fail with), and how the
/// machines must look afterwards.
struct EngineOperationCase: Sendable, CustomTestStringConvertible {
    var name: String
    /// Commands run first: (op, machine, args).
    var setup: [(String, String?, JSONValue?)] = []
    var op: String
    var machine: String?
    var args: JSONValue?
    /// The expected `changed`; nil: the op changes nothing and must not say `changed: true`.
    var changed: Bool?
    /// The expected `state` after the operation; nil: none expected.
    var state: String?
    /// Set for a command libvirt refuses: the error it must fail with.
    var failure: OpMatrixFailure?
    /// Further checks of the result.
    var checkResult: @Sendable (OpMatrixMessage) -> Void = { _ in }
    /// Checks of the machines afterwards, through further commands.
    var verify: @Sendable (OpMatrixDriver) throws -> Void = { _ in }

    var testDescription: String { name }

    static let newUUID = "3b9f4e2a-6c1d-4f0b-9a8e-2d7c5b1a0f01"

    static let all: [EngineOperationCase] = succeeding + failing

    static let succeeding: [EngineOperationCase] = [
        EngineOperationCase(
            name: "ping", op: "ping",
            checkResult: { r in
                #expect((r.data?["uptime_s"]?.doubleValue ?? -1) >= 0, "data.uptime_s: \(r)")
                #expect(r.data?.objectValue?.count == 1, "ping data is {uptime_s}: \(r)")
            }),
        EngineOperationCase(
            name: "list", op: "list",
            checkResult: { r in
                let machines = r.data?["machines"]?.arrayValue ?? []
                let seen = Set(machines.compactMap { m -> String? in
                    guard let name = m["name"]?.stringValue, let uuid = m["uuid"]?.stringValue,
                        let state = m["state"]?.stringValue
                    else { return nil }
                    return "\(name) \(uuid.lowercased()) \(state)"
                })
                let expected = Set(OpMatrixMachine.standard.map { "\($0.name) \($0.uuid) \($0.running ? "running" : "shutoff")" })
                #expect(machines.count == 4, "\(r)")
                #expect(seen == expected, "\(r)")
            }),
        EngineOperationCase(
            name: "status by name", op: "status", machine: "web2", state: "shutoff",
            checkResult: { r in
                let d = r.data
                #expect(d?["state"] == "shutoff", "\(r)")
                #expect(d?["vcpus"] == 4, "\(r)")
                #expect(d?["memory_kib"] == 524_288, "\(r)")
                #expect(d?["max_memory_kib"] == 524_288, "\(r)")
                #expect((d?["cpu_time_ns"]?.intValue ?? -1) >= 0, "\(r)")
                #expect(d?["persistent"] == true, "\(r)")
                #expect(d?["autostart"] == false, "\(r)")
                #expect(d?["reason"]?.intValue != nil || d?["reason"]?.stringValue != nil, "\(r)")
                #expect(d?.objectValue?.count == 8, "status data has exactly the protocol's 8 fields: \(r)")
            }),
        EngineOperationCase(
            name: "status by UUID", op: "status", machine: OpMatrixMachine.db1.uuid, state: "running",
            checkResult: { r in
                #expect(r.data?["state"] == "running", "\(r)")
                #expect(r.data?["vcpus"] == 1, "\(r)")
            }),
        EngineOperationCase(
            name: "status by upper-case UUID", op: "status", machine: OpMatrixMachine.cache1.uuid.uppercased(), state: "running",
            checkResult: { r in
                #expect(r.data?["state"] == "running", "\(r)")
                #expect(r.data?["vcpus"] == 2, "\(r)")
            }),
        EngineOperationCase(
            name: "define a new machine", op: "define",
            args: ["xml": .string(OpMatrixMachine.domainXML(name: "new1", uuid: newUUID))], changed: true,
            checkResult: { r in
                #expect(r.data?["name"] == "new1", "\(r)")
                #expect(r.data?["uuid"]?.stringValue?.lowercased() == newUUID, "\(r)")
            },
            verify: { driver in
                let list = try driver.run("list")
                let new1 = try #require(list.data?["machines"]?.arrayValue?.first { $0["name"] == "new1" }, "\(list)")
                #expect(new1["state"] == "shutoff", "new1 is defined and shut off: \(list)")
                let status = try driver.run("status", machine: "new1")
                #expect(status.data?["persistent"] == true, "\(status)")
                #expect(status.data?["max_memory_kib"] == 65_536, "\(status)")
            }),
        EngineOperationCase(
            name: "define redefines an existing machine", op: "define",
            args: ["xml": .string(OpMatrixMachine.domainXML(name: "web1", uuid: OpMatrixMachine.web1.uuid, memoryKiB: 131_072, vcpus: 3))],
            changed: true,
            checkResult: { r in
                #expect(r.data?["name"] == "web1", "\(r)")
                #expect(r.data?["uuid"]?.stringValue?.lowercased() == OpMatrixMachine.web1.uuid, "\(r)")
            },
            verify: { driver in
                let status = try driver.run("status", machine: "web1")
                #expect(status.data?["max_memory_kib"] == 131_072, "the new definition is in effect: \(status)")
                #expect(status.data?["vcpus"] == 3, "\(status)")
                let list = try driver.run("list")
                #expect(list.data?["machines"]?.arrayValue?.count == 4, "no machine was added: \(list)")
            }),
        EngineOperationCase(
            name: "start", op: "start", machine: "web1", changed: true, state: "running",
            verify: { try $0.expectState("web1", "running") }),
        EngineOperationCase(
            name: "start by UUID", op: "start", machine: OpMatrixMachine.web2.uuid, changed: true, state: "running",
            verify: { try $0.expectState("web2", "running") }),
        EngineOperationCase(
            name: "start paused", op: "start", machine: "web2", args: ["paused": true], changed: true, state: "paused",
            verify: { try $0.expectState("web2", "paused") }),
        EngineOperationCase(
            name: "start with paused false", op: "start", machine: "web2", args: ["paused": false], changed: true, state: "running",
            verify: { try $0.expectState("web2", "running") }),
        EngineOperationCase(
            name: "suspend", op: "suspend", machine: "db1", changed: true, state: "paused",
            verify: { try $0.expectState("db1", "paused") }),
        EngineOperationCase(
            name: "resume", setup: [("suspend", "db1", nil)], op: "resume", machine: "db1", changed: true, state: "running",
            verify: { try $0.expectState("db1", "running") }),
        EngineOperationCase(
            name: "shutdown", op: "shutdown", machine: "db1", changed: true, state: "shutoff",
            verify: { try $0.expectState("db1", "shutoff") }),
        EngineOperationCase(
            name: "shutdown with wait_ms", op: "shutdown", machine: "db1", args: ["wait_ms": 5000], changed: true, state: "shutoff",
            verify: { try $0.expectState("db1", "shutoff") }),
        EngineOperationCase(
            name: "shutdown with wait_ms and force", op: "shutdown", machine: "cache1", args: ["wait_ms": 5000, "force": true],
            changed: true, state: "shutoff",
            verify: { try $0.expectState("cache1", "shutoff") }),
        EngineOperationCase(
            name: "reboot", op: "reboot", machine: "db1", changed: true, state: "running",
            verify: { try $0.expectState("db1", "running") }),
        EngineOperationCase(
            name: "destroy", op: "destroy", machine: "cache1", changed: true, state: "shutoff",
            verify: { try $0.expectState("cache1", "shutoff") }),
        EngineOperationCase(
            name: "destroy a paused machine", setup: [("suspend", "cache1", nil)], op: "destroy", machine: "cache1",
            changed: true, state: "shutoff",
            verify: { try $0.expectState("cache1", "shutoff") }),
        EngineOperationCase(
            name: "undefine a shut-off machine", op: "undefine", machine: "web2", changed: true, state: "shutoff",
            verify: { driver in
                let list = try driver.run("list")
                let machines = try #require(list.data?["machines"]?.arrayValue, "\(list)")
                #expect(machines.count == 3 && !machines.contains { $0["name"] == "web2" }, "web2 is gone: \(list)")
                let status = try driver.run("status", machine: "web2")
                #expect(status.ok == false && status.error?["code_name"] == "VIR_ERR_NO_DOMAIN", "\(status)")
            }),
        EngineOperationCase(
            name: "undefine a running machine", op: "undefine", machine: "db1", changed: true, state: "running",
            verify: { driver in
                let status = try driver.run("status", machine: "db1")
                #expect(status.state == "running", "a running machine keeps running: \(status)")
                #expect(status.data?["persistent"] == false, "it is transient now: \(status)")
            }),
        EngineOperationCase(
            name: "report", setup: [("restore", nil, nil)], op: "report",
            checkResult: { r in
                #expect(r.data?["restore"]?["trigger"] == "command", "data.restore is the last restore's summary: \(r)")
                #expect(r.data?["outcomes"]?.arrayValue != nil, "data.outcomes: \(r)")
                #expect(r.data?["machines"]?.objectValue != nil, "data.machines: \(r)")
            }),
        EngineOperationCase(
            name: "restore", op: "restore",
            checkResult: { r in
                #expect(r.data?["trigger"] == "command", "data is the restore summary: \(r)")
                #expect(r.data?["table"] != nil, "\(r)")
                #expect(r.data?["total"]?.intValue != nil, "\(r)")
                #expect(r.data?["counts"]?.objectValue != nil, "\(r)")
            }),
    ]

    static let failing: [EngineOperationCase] = [
        EngineOperationCase(
            name: "start of an unknown machine", op: "start", machine: "web9",
            failure: OpMatrixFailure(
                code: 42, codeName: "VIR_ERR_NO_DOMAIN", domain: 12, domainName: "VIR_FROM_TEST",
                category: "not_found", summaryMentions: ["test driver", "'web9'", "does not exist"])),
        EngineOperationCase(
            name: "status of an unknown UUID", op: "status", machine: "99999999-2222-3333-4444-000000000001",
            failure: OpMatrixFailure(
                code: 42, codeName: "VIR_ERR_NO_DOMAIN", domain: 12, domainName: "VIR_FROM_TEST",
                category: "not_found", summaryMentions: ["test driver", "99999999-2222-3333-4444-000000000001"])),
        EngineOperationCase(
            name: "start of a machine undefined before", setup: [("undefine", "web2", nil)], op: "start", machine: "web2",
            failure: OpMatrixFailure(
                code: 42, codeName: "VIR_ERR_NO_DOMAIN", domain: 12, domainName: "VIR_FROM_TEST",
                category: "not_found", summaryMentions: ["test driver", "'web2'"])),
        EngineOperationCase(
            name: "reboot of a shut-off machine", op: "reboot", machine: "web1",
            failure: OpMatrixFailure(
                code: 55, codeName: "VIR_ERR_OPERATION_INVALID", domain: 20, domainName: "VIR_FROM_DOMAIN",
                category: "invalid_state", summaryMentions: ["'web1'", "reboot"], unchanged: ("web1", "shutoff"))),
        EngineOperationCase(
            name: "suspend of a shut-off machine", op: "suspend", machine: "web1",
            failure: OpMatrixFailure(
                code: 1, codeName: "VIR_ERR_INTERNAL_ERROR", domain: 12, domainName: "VIR_FROM_TEST",
                category: "invalid_state", summaryMentions: ["test driver", "'web1'", "suspend"], unchanged: ("web1", "shutoff"))),
        EngineOperationCase(
            name: "define with malformed XML", op: "define", args: ["xml": "<domain type='test'><name>broken</name>"],
            failure: OpMatrixFailure(
                code: 35, codeName: "VIR_ERR_XML_DETAIL", domain: 20, domainName: "VIR_FROM_DOMAIN",
                category: "config", summaryMentions: ["define"])),
        EngineOperationCase(
            name: "define of a duplicate name under another UUID", op: "define",
            args: ["xml": .string(OpMatrixMachine.domainXML(name: "web1", uuid: "7a7a7a7a-0000-4000-8000-000000000001"))],
            failure: OpMatrixFailure(
                code: 9, codeName: "VIR_ERR_OPERATION_FAILED", domain: 20, domainName: "VIR_FROM_DOMAIN",
                category: "already_exists", summaryMentions: ["define", "'web1'", "already exists"],
                unchanged: ("web1", "shutoff"))),
    ]
}

@Suite("Every op against the engine in memory, from both origins")
struct OperationMatrixTests {
    /// Ops whose result has no data.
    static let noData: Set<String> = ["start", "shutdown", "destroy", "reboot", "suspend", "resume"]

    @Test(
        "every op is acknowledged, then answered with ok, changed, state and data, or with its E2LibvirtError",
        arguments: OpMatrixOrigin.allCases, EngineOperationCase.all)
    func operation(origin: OpMatrixOrigin, testCase: EngineOperationCase) async throws {
        let sink = MemorySink()
        let engine = makeEngine(uri: try OpMatrixMachine.nodeFile(OpMatrixMachine.standard), sink: sink)
        let driver = OpMatrixDriver(engine: engine, sink: sink)
        try check(origin: origin, testCase: testCase, driver: driver)
        engine.stopIntake()
        await engine.drain(graceSeconds: 5)
    }

    private func check(origin: OpMatrixOrigin, testCase: EngineOperationCase, driver: OpMatrixDriver) throws {
        let sink = driver.sink
        for (op, machine, args) in testCase.setup {
            let r = try driver.run(op, machine: machine, args: args)
            try #require(r.ok == true, "setup \(op) \(machine ?? ""): \(r)")
        }
        let listBefore = try driver.run("list")

        let id = "op-\(testCase.op)-1"
        let command = OpMatrixDriver.command(testCase.op, id: id, machine: testCase.machine, args: testCase.args)
        try driver.submit(command, from: origin.origin)
        let r = try driver.result(id)
        let ack = try OpMatrixMessage(try #require(sink.wait { $0.type == "accepted" && $0.id == id }, "no ack for \(id)"))

        // The exchange: one ack, then one result, both echoing the command.
        #expect(sink.all { $0.id == id && $0.type == "accepted" }.count == 1, "one ack")
        #expect(sink.all { $0.id == id && $0.type == "result" }.count == 1, "one result")
        #expect(ack.topic == "ack.t1", "\(ack)")
        #expect(r.topic == "result.t1", "\(r)")
        for m in [ack, r] {
            #expect(m["v"] == 1 && m["worker"] == "t1", "envelope: \(m)")
            #expect(m["op"]?.stringValue == testCase.op, "echoes the op: \(m)")
            #expect(m["machine"] == testCase.machine.map { .string($0) }, "echoes the machine: \(m)")
        }
        let ackSeq = try #require(ack.seq, "\(ack)")
        let resultSeq = try #require(r.seq, "\(r)")
        #expect(ackSeq < resultSeq, "the ack (seq \(ackSeq)) goes out before the result (seq \(resultSeq))")
        #expect((r["duration_ms"]?.doubleValue ?? -1) >= 0, "duration_ms: \(r)")
        #expect(r["duplicate"] == nil, "a first execution is no duplicate: \(r)")

        // The reply: the result goes back along a control request's route; the ack never does.
        #expect(ack.reply == nil, "the ack is never the reply")
        switch origin {
        case .control: #expect(r.reply == OpMatrixOrigin.route, "the result is the control reply")
        case .commands: #expect(r.reply == nil, "a command from the commands socket gets no reply")
        }

        if let failure = testCase.failure {
            try checkFailure(failure, result: r, command: command, sink: sink)
            let listAfter = try driver.run("list")
            #expect(listAfter.data == listBefore.data, "machines unchanged\n before: \(listBefore)\n after: \(listAfter)")
            if case let (machine, state)? = failure.unchanged {
                try driver.expectState(machine, state)
            }
            return
        }

        #expect(r.ok == true, "\(r)")
        #expect(r.error == nil, "\(r)")
        #expect(sink.all { $0.topic.hasPrefix("error.") }.isEmpty, "no error was published")
        if let changed = testCase.changed {
            #expect(r.changed == changed, "changed: \(r)")
        } else {
            #expect(r.changed != true, "\(testCase.op) changes nothing: \(r)")
        }
        if let state = testCase.state {
            #expect(r.state == state, "state after \(testCase.op): \(r)")
        }
        if Self.noData.contains(testCase.op) {
            #expect(r.data == nil || r.data == [:], "\(testCase.op) has no data: \(r)")
        }
        testCase.checkResult(r)
        try testCase.verify(driver)
    }

    /// A failed result carrying the expected `E2LibvirtError` inline, and the same record published
    /// on `error.libvirt.<worker-id>` before the result.
    private func checkFailure(_ expected: OpMatrixFailure, result r: OpMatrixMessage, command: JSONValue, sink: MemorySink) throws {
        #expect(r.ok == false, "\(r)")
        #expect(r.changed != true, "\(r)")
        #expect(r.state == nil, "\(r)")
        let error = try #require(r.error, "no inline error: \(r)")
        #expect(error["type"] == "E2LibvirtError", "\(error)")
        #expect(error["id"] == command["id"], "\(error)")
        #expect(error["op"] == command["op"], "\(error)")
        #expect(error["machine"] == command["machine"], "the record echoes the machine: \(error)")
        #expect(error["code"]?.intValue == expected.code, "\(error)")
        #expect(error["code_name"]?.stringValue == expected.codeName, "\(error)")
        #expect(error["domain"]?.intValue == expected.domain, "\(error)")
        #expect(error["domain_name"]?.stringValue == expected.domainName, "\(error)")
        #expect(error["level"] == "error", "\(error)")
        #expect(error["category"]?.stringValue == expected.category, "\(error)")
        #expect(error["retryable"]?.boolValue == expected.retryable, "\(error)")
        #expect(error["message"]?.stringValue?.isEmpty == false, "libvirt's message is kept: \(error)")
        for key in ["int1", "int2"] {
            #expect(error[key]?.intValue != nil, "\(key) is an integer: \(error)")
        }
        for key in ["str1", "str2", "str3"] {
            #expect(error[key] != nil, "\(key) is present (null when libvirt gave none): \(error)")
        }
        let summary = try #require(error["summary"]?.stringValue, "\(error)")
        #expect(summary.contains(expected.codeName), "the summary names the code: \(summary)")
        for text in expected.summaryMentions {
            #expect(summary.localizedCaseInsensitiveContains(text), "the summary mentions \(text): \(summary)")
        }
        #expect(!summary.contains("\n"), "one sentence, one line: \(summary)")

        let id = try #require(command["id"]?.stringValue)
        let records = sink.all { $0.topic == "error.libvirt.t1" && $0.id == id }
        #expect(records.count == 1, "one record published: \(records)")
        let published = try OpMatrixMessage(try #require(records.first, "no E2LibvirtError published for \(id)"))
        #expect(published.type == "E2LibvirtError", "\(published)")
        #expect(published.reply == nil, "the record is published, never a reply")
        #expect(published.withoutEnvelope == error, "the published record is the inline one\n inline: \(error)\n published: \(published)")
        let publishedSeq = try #require(published.seq)
        let resultSeq = try #require(r.seq)
        #expect(publishedSeq < resultSeq, "the record goes out with the failure, before the result")
    }
}
