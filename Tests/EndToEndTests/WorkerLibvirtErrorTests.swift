import ECPProtocol
import Foundation
import Testing

/// A command libvirt's test driver refuses, and the `E2LibvirtError` the worker must make of it.
struct WorkerLibvirtErrorCase: Sendable, CustomTestStringConvertible {
    var name: String
    /// Commands run through the control socket first: (op, machine, args).
    var setup: [(String, String?, JSONValue?)] = []
    var op: String
    var machine: String?
    var args: JSONValue?
    var code: Int64
    var codeName: String
    var domain: Int64
    var domainName: String
    var category: String
    var retryable: Bool
    /// Text the summary must contain besides the code name (the machine, the layer, the verb).
    var summaryMentions: [String]
    /// A machine whose state the failed command must not have changed, and that state.
    var unchanged: (String, String)?

    var testDescription: String { name }

    static let all: [WorkerLibvirtErrorCase] = {
        var cases: [WorkerLibvirtErrorCase] = []
        // A missing machine, for every op that takes one.
        for op in ["start", "shutdown", "destroy", "reboot", "suspend", "resume", "undefine", "status"] {
            cases.append(WorkerLibvirtErrorCase(
                name: "\(op) of an unknown machine", op: op, machine: "web9",
                code: 42, codeName: "VIR_ERR_NO_DOMAIN", domain: 12, domainName: "VIR_FROM_TEST",
                category: "not_found", retryable: false, summaryMentions: ["test driver", "'web9'", "does not exist"]))
        }
        cases += [
            WorkerLibvirtErrorCase(
                name: "start of an unknown UUID", op: "start", machine: "99999999-2222-3333-4444-000000000001",
                code: 42, codeName: "VIR_ERR_NO_DOMAIN", domain: 12, domainName: "VIR_FROM_TEST",
                category: "not_found", retryable: false, summaryMentions: ["test driver", "99999999-2222-3333-4444-000000000001"]),
            WorkerLibvirtErrorCase(
                name: "start of a machine undefined through the worker", setup: [("undefine", "web2", nil)],
                op: "start", machine: "web2",
                code: 42, codeName: "VIR_ERR_NO_DOMAIN", domain: 12, domainName: "VIR_FROM_TEST",
                category: "not_found", retryable: false, summaryMentions: ["test driver", "'web2'"]),
            WorkerLibvirtErrorCase(
                name: "reboot of a shut-off machine", op: "reboot", machine: "web1",
                code: 55, codeName: "VIR_ERR_OPERATION_INVALID", domain: 20, domainName: "VIR_FROM_DOMAIN",
                category: "invalid_state", retryable: false, summaryMentions: ["'web1'", "reboot"],
                unchanged: ("web1", "shutoff")),
            WorkerLibvirtErrorCase(
                name: "suspend of a shut-off machine", op: "suspend", machine: "web1",
                code: 1, codeName: "VIR_ERR_INTERNAL_ERROR", domain: 12, domainName: "VIR_FROM_TEST",
                category: "invalid_state", retryable: false, summaryMentions: ["test driver", "'web1'", "suspend"],
                unchanged: ("web1", "shutoff")),
            WorkerLibvirtErrorCase(
                name: "resume of a shut-off machine", op: "resume", machine: "web1",
                code: 1, codeName: "VIR_ERR_INTERNAL_ERROR", domain: 12, domainName: "VIR_FROM_TEST",
                category: "invalid_state", retryable: false, summaryMentions: ["test driver", "'web1'", "resume"],
                unchanged: ("web1", "shutoff")),
            WorkerLibvirtErrorCase(
                name: "define with malformed XML", op: "define",
                args: ["xml": "<domain type='test'><name>broken</name>"],
                code: 35, codeName: "VIR_ERR_XML_DETAIL", domain: 20, domainName: "VIR_FROM_DOMAIN",
                category: "config", retryable: false, summaryMentions: ["define"]),
            WorkerLibvirtErrorCase(
                name: "define with XML that is not a domain", op: "define",
                args: ["xml": "<network><name>n</name></network>"],
                code: 27, codeName: "VIR_ERR_XML_ERROR", domain: 5, domainName: "VIR_FROM_XML",
                category: "config", retryable: false, summaryMentions: ["define"]),
            WorkerLibvirtErrorCase(
                name: "define without an OS type", op: "define",
                args: ["xml": "<domain type='test'><name>noos</name><memory>65536</memory></domain>"],
                code: 27, codeName: "VIR_ERR_XML_ERROR", domain: 20, domainName: "VIR_FROM_DOMAIN",
                category: "config", retryable: false, summaryMentions: ["define", "os"]),
            WorkerLibvirtErrorCase(
                name: "define of a duplicate name under another UUID", op: "define",
                args: ["xml": .string(WorkerMachine.domainXML(name: "web1", uuid: "7a7a7a7a-0000-4000-8000-000000000001"))],
                code: 9, codeName: "VIR_ERR_OPERATION_FAILED", domain: 20, domainName: "VIR_FROM_DOMAIN",
                category: "already_exists", retryable: false, summaryMentions: ["define", "'web1'", "already exists"],
                unchanged: ("web1", "shutoff")),
        ]
        return cases
    }()
}

@Suite("libvirt errors as E2LibvirtError records")
struct WorkerLibvirtErrorTests {
    @Test("a refused command fails with the full E2LibvirtError, inline and on error.libvirt.<id>", arguments: CommandChannel.allCases, WorkerLibvirtErrorCase.all)
    func refused(channel: CommandChannel, testCase: WorkerLibvirtErrorCase) async throws {
        try await WorkerTestThread.run { try refusedBody(channel: channel, testCase: testCase) }
    }

    private func refusedBody(channel: CommandChannel, testCase: WorkerLibvirtErrorCase) throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        for (op, machine, args) in testCase.setup {
            let r = try client.run(op, machine: machine, args: args)
            try #require(r.ok == true, "setup \(op): \(r)")
        }
        let listBefore = try client.run("list")

        let command = WorkerClient.command(testCase.op, id: "err-\(testCase.op)", machine: testCase.machine, args: testCase.args)
        let x = try client.execute(command, via: channel)
        WorkerExpect.exchange(x, command: command, worker: worker)
        let published = try client.libvirtError("err-\(testCase.op)")
        let error = try #require(WorkerExpect.libvirtFailure(x.result, published: published, command: command, worker: worker))

        #expect(error["code"]?.intValue == testCase.code, "\(error)")
        #expect(error["code_name"]?.stringValue == testCase.codeName, "\(error)")
        #expect(error["domain"]?.intValue == testCase.domain, "\(error)")
        #expect(error["domain_name"]?.stringValue == testCase.domainName, "\(error)")
        #expect(error["level"] == "error", "\(error)")
        #expect(error["category"]?.stringValue == testCase.category, "\(error)")
        #expect(error["retryable"]?.boolValue == testCase.retryable, "\(error)")
        #expect(error["message"]?.stringValue?.isEmpty == false, "libvirt's message is kept: \(error)")
        let summary = error["summary"]?.stringValue ?? ""
        #expect(summary.contains(testCase.codeName), "the summary names the code: \(summary)")
        for text in testCase.summaryMentions {
            #expect(summary.localizedCaseInsensitiveContains(text), "the summary mentions \(text): \(summary)")
        }
        #expect(!summary.contains("\n"), "one sentence, one line: \(summary)")
        #expect(x.result.changed != true, "\(x.result)")
        #expect(published.seq! < x.result.seq!, "the record goes out with the failure, before the result")

        // A refused command changes nothing.
        let listAfter = try client.run("list")
        #expect(listAfter.data == listBefore.data, "machines unchanged\n before: \(listBefore)\n after: \(listAfter)")
        if case let (machine, state)? = testCase.unchanged {
            try WorkerOperationCase.expectState(client, machine, state)
        }
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    /// The sockets of a libvirt daemon on this host; with one running, `qemu:///system` might connect.
    static let daemonSockets = [
        "/var/run/libvirt/libvirt-sock", "/var/run/libvirt/virtqemud-sock", "/run/libvirt/libvirt-sock",
        "/run/libvirt/virtqemud-sock",
    ]
    static let noDaemon = !daemonSockets.contains { FileManager.default.fileExists(atPath: $0) }

    @Test(
        "a libvirt URI that cannot connect: commands fail with a retryable connection error, heartbeats say disconnected",
        .enabled(if: noDaemon, "a libvirt daemon socket exists on this host, so qemu:///system might connect"),
        arguments: CommandChannel.allCases)
    func unreachableSystemLibvirt(channel: CommandChannel) async throws {
        try await WorkerTestThread.run { try unreachableSystemLibvirtBody(channel: channel) }
    }

    private func unreachableSystemLibvirtBody(channel: CommandChannel) throws {
        try checkUnreachable(uri: "qemu:///system", channel: channel)
    }

    @Test(
        "a libvirt daemon socket that does not exist: commands fail with a retryable connection error, heartbeats say disconnected",
        arguments: CommandChannel.allCases)
    func unreachableSocket(channel: CommandChannel) async throws {
        try await WorkerTestThread.run { try unreachableSocketBody(channel: channel) }
    }

    private func unreachableSocketBody(channel: CommandChannel) throws {
        try checkUnreachable(uri: "qemu+unix:///system?socket=/nonexistent/ecp-e2e/libvirt-sock", channel: channel)
    }

    private func checkUnreachable(uri: String, channel: CommandChannel) throws {
        var options = WorkerLaunchOptions()
        options.libvirtURI = uri
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()

        let ping = try client.execute(WorkerClient.command("ping", id: "u-ping"), via: channel)
        #expect(ping.result.ok == true, "ping needs no libvirt: \(ping.result)")

        let commands: [JSONValue] = [
            WorkerClient.command("start", id: "u-start", machine: "web1"),
            WorkerClient.command("status", id: "u-status", machine: "web1"),
            WorkerClient.command("list", id: "u-list"),
            WorkerClient.command("define", id: "u-define", args: ["xml": .string(WorkerMachine.domainXML(name: "n1"))]),
        ]
        for command in commands {
            let id = command["id"]!.stringValue!
            let x = try client.execute(command, via: channel)
            WorkerExpect.exchange(x, command: command, worker: worker)
            let published = try client.libvirtError(id)
            let error = try #require(WorkerExpect.libvirtFailure(x.result, published: published, command: command, worker: worker))
            #expect(error["code_name"] == "VIR_ERR_SYSTEM_ERROR", "\(id): \(error)")
            #expect(error["category"] == "connection", "\(id): \(error)")
            #expect(error["retryable"] == true, "\(id): \(error)")
            let summary = error["summary"]?.stringValue ?? ""
            #expect(summary.contains(error["code_name"]?.stringValue ?? "?"), "\(summary)")
            if let machine = command["machine"]?.stringValue {
                #expect(summary.contains("'\(machine)'"), "the summary names the machine: \(summary)")
            }
            if error["int1"] == 2 {
                #expect(summary.contains("ENOENT: No such file or directory"), "a system error names its errno: \(summary)")
            }
        }

        let heartbeat = try client.waitFor("a heartbeat") { $0.type == "heartbeat" }
        WorkerExpect.envelope(heartbeat, worker: worker, type: "heartbeat", topic: "heartbeat")
        #expect(heartbeat["libvirt"] == "disconnected", "\(heartbeat)")
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }
}
