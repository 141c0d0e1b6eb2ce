import ECPProtocol
import Foundation
import Testing

/// One operation as a test case: how to bring the machine into the state the operation needs,
/// the command, what its result must say, and how the machine must look afterwards.
struct WorkerOperationCase: Sendable, CustomTestStringConvertible {
    var name: String
    /// Commands run through the control socket first: (op, machine, args).
    var setup: [(String, String?, JSONValue?)] = []
    var op: String
    var machine: String?
    var args: JSONValue?
    /// The expected `changed`; nil: the op changes nothing and must not say `changed: true`.
    var changed: Bool?
    /// The expected `state` after the operation; nil: none expected.
    var state: String?
    /// Further checks of the result.
    var checkResult: @Sendable (WorkerMessage) -> Void = { _ in }
    /// Checks of the worker's machines afterwards, through further commands.
    var verify: @Sendable (WorkerClient) throws -> Void = { _ in }

    var testDescription: String { name }

    static let newUUID = "3b9f4e2a-6c1d-4f0b-9a8e-2d7c5b1a0f01"

    static let all: [WorkerOperationCase] = [
        WorkerOperationCase(
            name: "ping", op: "ping",
            checkResult: { r in
                #expect((r.data?["uptime_s"]?.doubleValue ?? -1) >= 0, "data.uptime_s: \(r)")
                #expect(r.data?.objectValue?.count == 1, "ping data is {uptime_s}: \(r)")
            }),
        WorkerOperationCase(
            name: "list", op: "list",
            checkResult: { r in
                let machines = r.data?["machines"]?.arrayValue ?? []
                let seen = Set(machines.compactMap { m -> String? in
                    guard let name = m["name"]?.stringValue, let uuid = m["uuid"]?.stringValue,
                        let state = m["state"]?.stringValue
                    else { return nil }
                    return "\(name) \(uuid.lowercased()) \(state)"
                })
                let expected = Set(WorkerMachine.standard.map { "\($0.name) \($0.uuid) \($0.running ? "running" : "shutoff")" })
                #expect(machines.count == 4, "\(r)")
                #expect(seen == expected, "\(r)")
            }),
        WorkerOperationCase(
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
        WorkerOperationCase(
            name: "status by UUID", op: "status", machine: WorkerMachine.db1.uuid, state: "running",
            checkResult: { r in
                #expect(r.data?["state"] == "running", "\(r)")
                #expect(r.data?["vcpus"] == 1, "\(r)")
            }),
        WorkerOperationCase(
            name: "status by upper-case UUID", op: "status", machine: WorkerMachine.cache1.uuid.uppercased(), state: "running"),
        WorkerOperationCase(
            name: "define a new machine", op: "define",
            args: ["xml": .string(WorkerMachine.domainXML(name: "new1", uuid: newUUID))], changed: true,
            checkResult: { r in
                #expect(r.data?["name"] == "new1", "\(r)")
                #expect(r.data?["uuid"]?.stringValue?.lowercased() == newUUID, "\(r)")
            },
            verify: { client in
                let list = try client.run("list")
                let new1 = list.data?["machines"]?.arrayValue?.first { $0["name"] == "new1" }
                #expect(new1?["state"] == "shutoff", "new1 is defined and shut off: \(list)")
                let status = try client.run("status", machine: "new1")
                #expect(status.data?["persistent"] == true, "\(status)")
                #expect(status.data?["max_memory_kib"] == 65_536, "\(status)")
            }),
        WorkerOperationCase(
            name: "define redefines an existing machine", op: "define",
            args: ["xml": .string(WorkerMachine.domainXML(name: "web1", uuid: WorkerMachine.web1.uuid, memoryKiB: 131_072, vcpus: 3))],
            changed: true,
            checkResult: { r in
                #expect(r.data?["name"] == "web1", "\(r)")
                #expect(r.data?["uuid"]?.stringValue?.lowercased() == WorkerMachine.web1.uuid, "\(r)")
            },
            verify: { client in
                let status = try client.run("status", machine: "web1")
                #expect(status.data?["max_memory_kib"] == 131_072, "the new definition is in effect: \(status)")
                #expect(status.data?["vcpus"] == 3, "\(status)")
                let list = try client.run("list")
                #expect(list.data?["machines"]?.arrayValue?.count == 4, "no machine was added: \(list)")
            }),
        WorkerOperationCase(
            name: "start", op: "start", machine: "web1", changed: true, state: "running",
            verify: { try expectState($0, "web1", "running") }),
        WorkerOperationCase(
            name: "start by UUID", op: "start", machine: WorkerMachine.web2.uuid, changed: true, state: "running",
            verify: { try expectState($0, "web2", "running") }),
        WorkerOperationCase(
            name: "start paused", op: "start", machine: "web2", args: ["paused": true], changed: true, state: "paused",
            verify: { try expectState($0, "web2", "paused") }),
        WorkerOperationCase(
            name: "start with paused false", op: "start", machine: "web2", args: ["paused": false], changed: true, state: "running",
            verify: { try expectState($0, "web2", "running") }),
        WorkerOperationCase(
            name: "suspend", op: "suspend", machine: "db1", changed: true, state: "paused",
            verify: { try expectState($0, "db1", "paused") }),
        WorkerOperationCase(
            name: "resume", setup: [("suspend", "db1", nil)], op: "resume", machine: "db1", changed: true, state: "running",
            verify: { try expectState($0, "db1", "running") }),
        WorkerOperationCase(
            name: "shutdown", op: "shutdown", machine: "db1", changed: true, state: "shutoff",
            verify: { try expectState($0, "db1", "shutoff") }),
        WorkerOperationCase(
            name: "shutdown with wait_ms", op: "shutdown", machine: "db1", args: ["wait_ms": 5000], changed: true, state: "shutoff",
            verify: { try expectState($0, "db1", "shutoff") }),
        WorkerOperationCase(
            name: "shutdown with wait_ms and force", op: "shutdown", machine: "cache1", args: ["wait_ms": 5000, "force": true],
            changed: true, state: "shutoff",
            verify: { try expectState($0, "cache1", "shutoff") }),
        WorkerOperationCase(
            name: "reboot", op: "reboot", machine: "db1", changed: true, state: "running",
            verify: { try expectState($0, "db1", "running") }),
        WorkerOperationCase(
            name: "destroy", op: "destroy", machine: "cache1", changed: true, state: "shutoff",
            verify: { try expectState($0, "cache1", "shutoff") }),
        WorkerOperationCase(
            name: "destroy a paused machine", setup: [("suspend", "cache1", nil)], op: "destroy", machine: "cache1",
            changed: true, state: "shutoff",
            verify: { try expectState($0, "cache1", "shutoff") }),
        WorkerOperationCase(
            name: "undefine a shut-off machine", op: "undefine", machine: "web2", changed: true,
            checkResult: { r in
                if let state = r.state { #expect(state == "shutoff", "\(r)") }
            },
            verify: { client in
                let list = try client.run("list")
                #expect(list.data?["machines"]?.arrayValue?.contains { $0["name"] == "web2" } == false, "web2 is gone: \(list)")
                let status = try client.run("status", machine: "web2")
                #expect(status.ok == false && status.error?["code_name"] == "VIR_ERR_NO_DOMAIN", "\(status)")
            }),
        WorkerOperationCase(
            name: "undefine a running machine", op: "undefine", machine: "db1", changed: true,
            checkResult: { r in
                if let state = r.state { #expect(state == "running", "\(r)") }
            },
            verify: { client in
                let status = try client.run("status", machine: "db1")
                #expect(status.state == "running", "a running machine keeps running: \(status)")
                #expect(status.data?["persistent"] == false, "it is transient now: \(status)")
            }),
        WorkerOperationCase(
            name: "report", op: "report",
            checkResult: { r in
                #expect(r.data?["restore"] != nil, "data.restore: \(r)")
                #expect(r.data?["outcomes"]?.arrayValue != nil, "data.outcomes: \(r)")
                #expect(r.data?["machines"]?.objectValue != nil, "data.machines: \(r)")
            }),
        WorkerOperationCase(
            name: "restore", op: "restore",
            checkResult: { r in
                #expect(r.data?["trigger"]?.stringValue?.isEmpty == false, "data is the restore summary: \(r)")
                #expect(r.data?["table"] != nil, "\(r)")
                #expect(r.data?["total"]?.intValue != nil, "\(r)")
                #expect(r.data?["counts"]?.objectValue != nil, "\(r)")
            }),
    ]

    /// Asks for a machine's status through the control socket and expects `state`.
    static func expectState(
        _ client: WorkerClient, _ machine: String, _ state: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let status = try client.run("status", machine: machine)
        #expect(status.ok == true, "\(status)", sourceLocation: sourceLocation)
        #expect(status.state == state, "\(machine) is \(state): \(status)", sourceLocation: sourceLocation)
    }
}

@Suite("Operations through both sockets")
struct WorkerOperationTests {
    @Test("every op is acknowledged, then answered with ok, changed, state and data", arguments: CommandChannel.allCases, WorkerOperationCase.all)
    func operation(channel: CommandChannel, testCase: WorkerOperationCase) async throws {
        try await WorkerTestThread.run { try operationBody(channel: channel, testCase: testCase) }
    }

    private func operationBody(channel: CommandChannel, testCase: WorkerOperationCase) throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        for (op, machine, args) in testCase.setup {
            let r = try client.run(op, machine: machine, args: args)
            try #require(r.ok == true, "setup \(op) \(machine ?? ""): \(r)")
        }

        let command = WorkerClient.command(testCase.op, id: "op-\(testCase.op)-1", machine: testCase.machine, args: testCase.args)
        let x = try client.execute(command, via: channel)

        WorkerExpect.exchange(x, command: command, worker: worker)
        let r = x.result
        #expect(r.ok == true, "\(r)")
        #expect(r.error == nil, "\(r)")
        if let changed = testCase.changed {
            #expect(r.changed == changed, "changed: \(r)")
        } else {
            #expect(r.changed != true, "\(testCase.op) changes nothing: \(r)")
        }
        if let state = testCase.state {
            #expect(r.state == state, "state after \(testCase.op): \(r)")
        }
        if ["start", "shutdown", "destroy", "reboot", "suspend", "resume"].contains(testCase.op) {
            #expect(r.data == nil || r.data == [:], "\(testCase.op) has no data: \(r)")
        }
        testCase.checkResult(r)
        try testCase.verify(client)

        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    @Test("a DEALER without the empty delimiter gets the reply as [json]")
    func dealerWithoutDelimiter() async throws {
        try await WorkerTestThread.run { try dealerWithoutDelimiterBody() }
    }

    private func dealerWithoutDelimiterBody() throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sendControl([WorkerClient.encode(WorkerClient.command("status", id: "bare-1", machine: "web1"))])
        let reply = try client.nextReply()
        #expect(reply.envelope.isEmpty, "no delimiter came in, none goes out: \(reply.envelope)")
        #expect(reply.type == "result" && reply.id == "bare-1" && reply.ok == true && reply.state == "shutoff", "\(reply)")
        #expect(worker.stop() == 0)
    }

    @Test("a REQ client gets exactly one reply per request: the result")
    func reqClient() async throws {
        try await WorkerTestThread.run { try reqClientBody() }
    }

    private func reqClientBody() throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        let req = try client.context.makeSocket(.req)
        defer { req.close() }
        try req.setLinger(milliseconds: 0)
        try req.setReceiveTimeout(milliseconds: 10_000)
        try req.connect(worker.controlAddress)
        for (i, op) in ["start", "status", "destroy"].enumerated() {
            let id = "req-\(i)"
            try req.send([WorkerClient.encode(WorkerClient.command(op, id: id, machine: "web1"))])
            let frames = try #require(try req.receive(), "no reply to \(op)")
            let reply = WorkerMessage(topic: "", body: frames.last ?? Data())
            #expect(frames.count == 1, "REQ strips the delimiter: \(frames.count) frames")
            #expect(reply.type == "result" && reply.id == id && reply.ok == true, "\(reply)")
            // The ack was published, not sent as the reply.
            _ = try client.ack(id)
        }
        #expect(worker.stop() == 0)
    }
}
