import ECPProtocol
import Foundation
import Testing

/// One operation through a real worker's sockets: the command and what its result must say.
/// The full per-op matrix runs against the engine in memory (ECPEngineTests'
/// OperationMatrixTests); these cases prove the sockets are wired to the engine, for a success
/// and for a libvirt failure.
struct WorkerOperationCase: Sendable, CustomTestStringConvertible {
    var name: String
    var op: String
    var machine: String?
    var args: JSONValue?
    /// The expected `changed` of a success.
    var changed: Bool?
    /// The expected `state` after a success.
    var state: String?
    /// For a command libvirt refuses: the `code_name` of its `E2LibvirtError`.
    var libvirtError: String?
    /// Checks of the worker's machines afterwards, through further commands.
    var verify: @Sendable (WorkerClient) throws -> Void = { _ in }

    var testDescription: String { name }

    static let all: [WorkerOperationCase] = [
        WorkerOperationCase(
            name: "start", op: "start", machine: "web1", changed: true, state: "running",
            verify: { try expectState($0, "web1", "running") }),
        WorkerOperationCase(
            name: "start of an unknown machine", op: "start", machine: "web9", libvirtError: "VIR_ERR_NO_DOMAIN",
            verify: { try expectState($0, "web1", "shutoff") }),
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
    @Test("an op is acknowledged, then answered over the socket: a state change, and a libvirt failure with its E2LibvirtError", arguments: CommandChannel.allCases, WorkerOperationCase.all)
    func operation(channel: CommandChannel, testCase: WorkerOperationCase) async throws {
        try await WorkerTestThread.run { try operationBody(channel: channel, testCase: testCase) }
    }

    private func operationBody(channel: CommandChannel, testCase: WorkerOperationCase) throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()

        let id = "op-\(testCase.op)-1"
        let command = WorkerClient.command(testCase.op, id: id, machine: testCase.machine, args: testCase.args)
        let x = try client.execute(command, via: channel)

        WorkerExpect.exchange(x, command: command, worker: worker)
        let r = x.result
        if channel == .control {
            let reply = try #require(x.reply, "the control socket answers with the result")
            #expect(reply.json == r.json, "\(reply)")
        } else {
            #expect(x.reply == nil && !client.allReplies.contains { $0.id == id }, "the commands socket gets no reply")
        }
        if let codeName = testCase.libvirtError {
            let published = try client.libvirtError(id)
            let error = try #require(WorkerExpect.libvirtFailure(r, published: published, command: command, worker: worker))
            #expect(error["code_name"]?.stringValue == codeName, "\(error)")
            #expect(r.changed != true, "\(r)")
            #expect(try #require(published.seq) < (try #require(r.seq)), "the record goes out before the result")
        } else {
            #expect(r.ok == true, "\(r)")
            #expect(r.error == nil, "\(r)")
            #expect(r.changed == testCase.changed, "changed: \(r)")
            #expect(r.state == testCase.state, "state after \(testCase.op): \(r)")
        }
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
