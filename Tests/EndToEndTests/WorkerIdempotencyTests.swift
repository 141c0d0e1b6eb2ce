import ECPProtocol
import Foundation
import Testing

/// An operation whose target state already holds: it succeeds and changes nothing.
struct WorkerIdempotentCase: Sendable, CustomTestStringConvertible {
    var name: String
    var setup: [(String, String)] = []
    var op: String
    var machine: String
    var state: String

    var testDescription: String { name }

    static let all: [WorkerIdempotentCase] = [
        WorkerIdempotentCase(name: "start of a running machine", op: "start", machine: "db1", state: "running"),
        WorkerIdempotentCase(name: "start of a machine started through the worker", setup: [("start", "web1")], op: "start", machine: "web1", state: "running"),
        WorkerIdempotentCase(name: "destroy of a shut-off machine", op: "destroy", machine: "web1", state: "shutoff"),
        WorkerIdempotentCase(name: "destroy of a machine destroyed through the worker", setup: [("destroy", "db1")], op: "destroy", machine: "db1", state: "shutoff"),
        WorkerIdempotentCase(name: "shutdown of a shut-off machine", op: "shutdown", machine: "web1", state: "shutoff"),
        WorkerIdempotentCase(name: "suspend of a paused machine", setup: [("suspend", "db1")], op: "suspend", machine: "db1", state: "paused"),
        WorkerIdempotentCase(name: "resume of a running machine", op: "resume", machine: "cache1", state: "running"),
    ]
}

@Suite("Idempotence: target states that already hold, and repeated ids")
struct WorkerIdempotencyTests {
    @Test("an op whose target state already holds succeeds with changed: false", arguments: CommandChannel.allCases, WorkerIdempotentCase.all)
    func targetStateHolds(channel: CommandChannel, testCase: WorkerIdempotentCase) async throws {
        try await WorkerTestThread.run { try targetStateHoldsBody(channel: channel, testCase: testCase) }
    }

    private func targetStateHoldsBody(channel: CommandChannel, testCase: WorkerIdempotentCase) throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        let eventOf = ["start": "started", "destroy": "stopped", "suspend": "suspended"]
        for (op, machine) in testCase.setup {
            let r = try client.run(op, machine: machine)
            try #require(r.ok == true && r.changed == true, "setup \(op) \(machine): \(r)")
            // libvirt reports the change asynchronously: let it arrive before counting.
            if let event = eventOf[op] {
                _ = try client.waitFor("the \(event) event of the setup") {
                    $0.type == "machine.event" && $0["machine"]?.stringValue == machine && $0["event"]?.stringValue == event
                }
            }
        }
        let eventsBefore = client.messages { $0.type == "machine.event" }.count

        let command = WorkerClient.command(testCase.op, id: "idem-1", machine: testCase.machine)
        let x = try client.execute(command, via: channel)
        WorkerExpect.exchange(x, command: command, worker: worker)
        #expect(x.result.ok == true, "\(x.result)")
        #expect(x.result.changed == false, "\(x.result)")
        #expect(x.result.state == testCase.state, "\(x.result)")
        #expect(x.result.error == nil, "\(x.result)")
        try WorkerOperationCase.expectState(client, testCase.machine, testCase.state)
        try client.barrier()
        #expect(client.messages { $0.type == "machine.event" }.count == eventsBefore, "nothing happened to any machine")
        #expect(worker.stop() == 0)
    }

    /// Which socket carries the first and which the repeated command.
    struct ChannelPair: Sendable, CustomTestStringConvertible {
        var first: CommandChannel
        var again: CommandChannel
        var testDescription: String { "\(first.rawValue), then \(again.rawValue)" }
        static let all = CommandChannel.allCases.flatMap { a in CommandChannel.allCases.map { ChannelPair(first: a, again: $0) } }
    }

    @Test("a repeated id is not executed again: it is answered with the first result, marked duplicate", arguments: ChannelPair.all)
    func duplicateID(channels: ChannelPair) async throws {
        try await WorkerTestThread.run { try duplicateIDBody(channels: channels) }
    }

    private func duplicateIDBody(channels: ChannelPair) throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()

        let start = WorkerClient.command("start", id: "dup-start", machine: "web1")
        let first = try client.execute(start, via: channels.first)
        WorkerExpect.exchange(first, command: start, worker: worker)
        #expect(first.result.ok == true && first.result.changed == true && first.result.state == "running", "\(first.result)")

        // Another command, under another id, undoes the start.
        let destroy = try client.run("destroy", machine: "web1")
        #expect(destroy.ok == true && destroy.changed == true, "\(destroy)")

        // The same id again: answered at once with the first result, and web1 stays off.
        try client.send(start, via: channels.again)
        var reply: WorkerMessage?
        if channels.again == .control { reply = try client.nextReply(matching: "dup-start") }
        let again = try client.waitFor("the duplicate's answer") { $0.type == "result" && $0.id == "dup-start" && $0.seq != first.result.seq }
        WorkerExpect.envelope(again, worker: worker, type: "result", topic: "result")
        #expect(again["duplicate"] == true, "\(again)")
        #expect(again.ok == true && again.changed == true && again.state == "running", "the first execution's result: \(again)")
        var firstBody = first.result.withoutEnvelope?.objectValue
        var againBody = again.withoutEnvelope?.objectValue
        firstBody?["duplicate"] = nil
        againBody?["duplicate"] = nil
        #expect(firstBody == againBody, "the first result, word for word\n first: \(first.result)\n again: \(again)")
        if channels.again == .control {
            let reply = try #require(reply, "a duplicate sent on the control socket is answered there")
            #expect(reply.json == again.json, "the control reply is the duplicate answer: \(reply)")
        }
        try WorkerOperationCase.expectState(client, "web1", "shutoff")
        try client.barrier()
        // libvirt reports the first start asynchronously; a second one would show up the same way.
        try client.waitForCount(1, "web1's started event") { $0.type == "machine.event" && $0["machine"] == "web1" && $0["event"] == "started" }
        let started = client.messages { $0.type == "machine.event" && $0["machine"] == "web1" && $0["event"] == "started" }
        #expect(started.count == 1, "web1 was started once: \(started)")
        #expect(worker.stop() == 0)
    }

    @Test("the same id three times in a row runs once: one result, and two answers marked duplicate")
    func duplicateBackToBack() async throws {
        try await WorkerTestThread.run { try duplicateBackToBackBody() }
    }

    private func duplicateBackToBackBody() throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        let start = WorkerClient.command("start", id: "twice", machine: "web2")
        try client.publish(start)
        try client.publish(start)
        try client.sendControl(start)
        _ = try client.nextReply(matching: "twice")
        try client.barrier()
        try client.waitForCount(3, "answers to id twice") { $0.type == "result" && $0.id == "twice" }
        try client.barrier()
        let all = client.messages { $0.type == "result" && $0.id == "twice" }
        #expect(all.count == 3, "one answer per command sent: \(all)")
        #expect(all.filter { $0["duplicate"] == true }.count == 2, "two answers are duplicates: \(all)")
        let allRan = all.allSatisfy { $0.ok == true && $0.changed == true && $0.state == "running" }
        #expect(allRan, "\(all)")
        try client.waitForCount(1, "web2's started event") { $0.type == "machine.event" && $0["machine"] == "web2" && $0["event"] == "started" }
        let started = client.messages { $0.type == "machine.event" && $0["machine"] == "web2" && $0["event"] == "started" }
        #expect(started.count == 1, "web2 was started once: \(started)")
        #expect(worker.stop() == 0)
    }

    @Test("a repeated id with a different command is still the first command's answer")
    func duplicateIDDifferentCommand() async throws {
        try await WorkerTestThread.run { try duplicateIDDifferentCommandBody() }
    }

    private func duplicateIDDifferentCommandBody() throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        let first = try client.execute(WorkerClient.command("status", id: "same", machine: "db1"), via: .control)
        #expect(first.result.ok == true && first.result.state == "running")
        try client.sendControl(WorkerClient.command("destroy", id: "same", machine: "db1"))
        let again = try client.nextReply(matching: "same")
        #expect(again["duplicate"] == true, "\(again)")
        #expect(again["op"] == "status", "the first command's result: \(again)")
        try WorkerOperationCase.expectState(client, "db1", "running")
        #expect(worker.stop() == 0)
    }

    @Test("a refused command's id is not remembered: the corrected command under the same id runs", arguments: CommandChannel.allCases)
    func refusedIDIsNotRemembered(channel: CommandChannel) async throws {
        try await WorkerTestThread.run { try refusedIDIsNotRememberedBody(channel: channel) }
    }

    private func refusedIDIsNotRememberedBody(channel: CommandChannel) throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        let bad = WorkerClient.command("start", id: "fixed-later", machine: "web1", extra: ["timeout_ms": "soon"])
        try client.send(bad, via: channel)
        let refusal = channel == .control
            ? try client.nextReply(matching: "fixed-later")
            : try client.waitFor("the refusal") { $0.type == "request_error" && $0.id == "fixed-later" }
        #expect(refusal.reason == "invalid_field" && refusal.field == "timeout_ms", "\(refusal)")

        let good = WorkerClient.command("start", id: "fixed-later", machine: "web1")
        let x = try client.execute(good, via: channel)
        WorkerExpect.exchange(x, command: good, worker: worker)
        #expect(x.result.ok == true && x.result.changed == true && x.result.state == "running", "\(x.result)")
        #expect(worker.stop() == 0)
    }
}
