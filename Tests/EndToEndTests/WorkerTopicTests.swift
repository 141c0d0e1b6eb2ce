import ECPProtocol
import Foundation
import Testing

/// A commands topic that starts with one the worker subscribes to but is not it.
struct WorkerForeignTopic: Sendable, CustomTestStringConvertible {
    var name: String
    var make: @Sendable (_ workerID: String) -> String

    var testDescription: String { name }

    static let all: [WorkerForeignTopic] = [
        WorkerForeignTopic(name: "cmd.<id>0") { "cmd.\($0)0" },
        WorkerForeignTopic(name: "cmd.<id>.x") { "cmd.\($0).x" },
        WorkerForeignTopic(name: "cmd.<id>-2") { "cmd.\($0)-2" },
        WorkerForeignTopic(name: "cmd.<id> (trailing space)") { "cmd.\($0) " },
        WorkerForeignTopic(name: "cmd.<id> + NUL") { "cmd.\($0)\u{0}" },
        WorkerForeignTopic(name: "cmd.all0") { _ in "cmd.all0" },
        WorkerForeignTopic(name: "cmd.allx") { _ in "cmd.allx" },
        WorkerForeignTopic(name: "cmd.all.<id>") { "cmd.all.\($0)" },
    ]
}

@Suite("Topics: exact matching on the commands socket, cmd.all for every worker")
struct WorkerTopicTests {
    @Test("a command on a topic that only starts with the worker's is ignored", arguments: WorkerForeignTopic.all)
    func prefixExtensionIgnored(topic: WorkerForeignTopic) async throws {
        try await WorkerTestThread.run { try prefixExtensionIgnoredBody(topic: topic) }
    }

    private func prefixExtensionIgnoredBody(topic: WorkerForeignTopic) throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        let foreign = topic.make(worker.id)
        // A valid command, a malformed one and a frame-count error, all for someone else.
        try client.publish(topic: foreign, WorkerClient.encode(WorkerClient.command("start", id: "foreign-start", machine: "web1")))
        try client.publish(topic: foreign, Data("{".utf8))
        try client.publish([Data(foreign.utf8)])
        try client.publish([Data(foreign.utf8), Data("{}".utf8), Data("{}".utf8)])
        // The barrier: a ping on the right topic, sent after them on the same socket.
        try client.barrier()

        let leaked = client.messages { $0.id == "foreign-start" || $0.type == "request_error" }
        #expect(leaked.isEmpty, "nothing is published for a command on \(foreign.debugDescription): \(leaked)")
        try WorkerOperationCase.expectState(client, "web1", "shutoff")
        #expect(worker.stop() == 0)
    }

    @Test("cmd.all reaches every worker, and each result is attributed to the worker that did it")
    func commandAll() async throws {
        try await WorkerTestThread.run { try commandAllBody() }
    }

    private func commandAllBody() throws {
        let a = try WorkerProcess.start(
            id: WorkerProcess.uniqueID(prefix: "a"),
            machines: [.web1, WorkerMachine(name: "onlyA", uuid: "aaaaaaaa-0000-4000-8000-000000000001", running: true)])
        let b = try WorkerProcess.start(
            id: WorkerProcess.uniqueID(prefix: "b"),
            machines: [.web1, WorkerMachine(name: "onlyB", uuid: "bbbbbbbb-0000-4000-8000-000000000001", running: false)])
        let client = try WorkerClient([a, b])
        try client.sync()

        // A state change on every worker.
        try client.publish(topic: "cmd.all", WorkerClient.encode(WorkerClient.command("start", id: "all-start", machine: "web1")))
        let starts = try client.waitForCount(2, "results of all-start") { $0.type == "result" && $0.id == "all-start" }
        #expect(starts.count == 2, "\(starts)")
        #expect(Set(starts.compactMap(\.worker)) == [a.id, b.id], "one result from each worker: \(starts)")
        for r in starts {
            let w = r.worker == a.id ? a : b
            WorkerExpect.envelope(r, worker: w, type: "result", topic: "result")
            #expect(r.ok == true && r.changed == true && r.state == "running", "\(r)")
            let ack = try client.ack("all-start", from: w.id)
            WorkerExpect.envelope(ack, worker: w, type: "accepted", topic: "ack")
            #expect(ack.seq! < r.seq!, "each worker acks before its result")
            #expect(ack.run == r.run)
        }
        #expect(starts[0].run != starts[1].run, "two processes, two runs")

        // Each worker answers for its own machines.
        try client.publish(topic: "cmd.all", WorkerClient.encode(WorkerClient.command("list", id: "all-list")))
        let lists = try client.waitForCount(2, "results of all-list") { $0.type == "result" && $0.id == "all-list" }
        for r in lists {
            let names = Set(r.data?["machines"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? [])
            let own = r.worker == a.id ? "onlyA" : "onlyB"
            #expect(names == ["web1", own], "\(r.worker ?? "?") lists its own machines: \(r)")
            #expect(r.topic == "result.\(r.worker ?? "?")", "\(r)")
        }

        // A command for one worker is done by that worker only.
        try client.publish(WorkerClient.command("destroy", id: "only-a", machine: "web1"), to: a)
        let onlyA = try client.result("only-a")
        #expect(onlyA.worker == a.id && onlyA.changed == true, "\(onlyA)")
        try client.barrier(b)
        try client.barrier(a)
        #expect(client.messages { $0.id == "only-a" && $0.worker == b.id }.isEmpty, "b never saw cmd.\(a.id)")

        try client.publish(topic: "cmd.all", WorkerClient.encode(WorkerClient.command("status", id: "all-status", machine: "web1")))
        let statuses = try client.waitForCount(2, "results of all-status") { $0.type == "result" && $0.id == "all-status" }
        let byWorker = Dictionary(uniqueKeysWithValues: statuses.map { ($0.worker ?? "?", $0.state ?? "?") })
        #expect(byWorker == [a.id: "shutoff", b.id: "running"], "\(statuses)")

        #expect(a.stop() == 0)
        #expect(b.stop() == 0)
    }
}
