import ECPProtocol
import Foundation
import Testing

/// What a `request_error` must say about the command's id.
enum WorkerExpectedID: Sendable, Equatable {
    /// The id could not be read: none in the error.
    case absent
    /// The id was read: the error carries it.
    case equals(String)
    /// The id was read but is itself invalid: echoing it is allowed, so either way.
    case any
}

/// A command document the worker must refuse, and how.
struct WorkerBadPayload: Sendable, CustomTestStringConvertible {
    var name: String
    var payload: Data
    var reason: String
    var field: String?
    var id: WorkerExpectedID

    var testDescription: String { name }

    init(_ name: String, _ payload: String, _ reason: String, field: String? = nil, id: WorkerExpectedID = .absent) {
        self.init(name, bytes: Data(payload.utf8), reason, field: field, id: id)
    }

    init(_ name: String, bytes: Data, _ reason: String, field: String? = nil, id: WorkerExpectedID = .absent) {
        self.name = name
        self.payload = bytes
        self.reason = reason
        self.field = field
        self.id = id
    }

    /// `{"v":1,"id":"<id>","op":"start","machine":"web1"}` with one field replaced by raw JSON text
    /// (nil removes it). The command would start a shut-off machine, so running it by mistake shows.
    static func start(id: String = "bad-1", replacing key: String, with json: String?) -> String {
        var fields: [(String, String)] = [("v", "1"), ("id", "\"\(id)\""), ("op", "\"start\""), ("machine", "\"web1\"")]
        if let index = fields.firstIndex(where: { $0.0 == key }) {
            if let json { fields[index].1 = json } else { fields.remove(at: index) }
        } else if let json {
            fields.append((key, json))
        }
        return "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}"
    }

    static let corpus: [WorkerBadPayload] = {
        var c: [WorkerBadPayload] = []
        // Malformed JSON.
        c += [
            .init("malformed: a lone brace", "{", "malformed_json"),
            .init("malformed: truncated document", #"{"v":1,"id":"t1","op":"start","machine":"web1""#, "malformed_json"),
            .init("malformed: single quotes", "{'v':1,'id':'q1','op':'ping'}", "malformed_json"),
            .init("malformed: trailing comma in the object", #"{"v":1,"id":"tc","op":"start","machine":"web1",}"#, "malformed_json"),
            .init("malformed: trailing comma in a nested array", #"{"v":1,"id":"tc2","op":"start","machine":"web1","extra":[1,2,]}"#, "malformed_json"),
            .init("malformed: double comma", #"{"v":1,,"id":"dc","op":"start","machine":"web1"}"#, "malformed_json"),
            .init("malformed: a comment", #"{"v":1,"id":"cm","op":"start","machine":"web1"} // run it"#, "malformed_json"),
            .init("malformed: a raw tab inside a string", "{\"v\":1,\"id\":\"t\tb\",\"op\":\"start\",\"machine\":\"web1\"}", "malformed_json"),
            .init("malformed: plain text", "start web1", "malformed_json"),
            .init("malformed: two documents", #"{"v":1,"id":"d1","op":"ping"}{"v":1,"id":"d2","op":"ping"}"#, "malformed_json"),
            .init("malformed: empty frame", "", "malformed_json"),
            .init("malformed: white space only", "  \n\t ", "malformed_json"),
            .init("binary: invalid UTF-8", bytes: Data([0xFF, 0xFE, 0x80, 0x7B]), "malformed_json"),
            .init("binary: invalid UTF-8 inside a string",
                  bytes: Data(#"{"v":1,"id":"u1","op":"start","machine":"web"#.utf8) + Data([0xFF]) + Data(#""}"#.utf8),
                  "malformed_json", id: .any),
            .init("binary: NUL bytes only", bytes: Data([0, 0, 0, 0]), "malformed_json"),
            .init("binary: raw NUL inside a string",
                  bytes: Data(#"{"v":1,"id":"n"#.utf8) + Data([0]) + Data(#"","op":"start","machine":"web1"}"#.utf8),
                  "malformed_json"),
            .init("binary: NUL after the document",
                  bytes: Data(#"{"v":1,"id":"n2","op":"start","machine":"web1"}"#.utf8) + Data([0]), "malformed_json"),
            .init("binary: random bytes", bytes: Data((0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }), "malformed_json"),
            // Two readers must not disagree on what a command says: a repeated name is refused.
            .init("duplicate member: op", #"{"v":1,"id":"dup1","op":"status","machine":"web1","op":"destroy"}"#, "malformed_json"),
            .init("duplicate member: machine", #"{"v":1,"id":"dup2","op":"start","machine":"web2","machine":"web1"}"#, "malformed_json"),
            .init("duplicate member: in args", #"{"v":1,"id":"dup3","op":"start","machine":"web1","args":{"paused":true,"paused":false}}"#, "malformed_json"),
            .init("duplicate member: deep in an unknown member", #"{"v":1,"id":"dup4","op":"start","machine":"web1","x":[{"y":{"z":1,"z":2}}]}"#, "malformed_json"),
        ]
        // Valid JSON that is not an object.
        c += [
            .init("not an object: empty array", "[]", "not_an_object"),
            .init("not an object: array holding a command", #"[{"v":1,"id":"a1","op":"start","machine":"web1"}]"#, "not_an_object"),
            .init("not an object: integer", "42", "not_an_object"),
            .init("not an object: float", "3.5", "not_an_object"),
            .init("not an object: string", #""start""#, "not_an_object"),
            .init("not an object: null", "null", "not_an_object"),
            .init("not an object: true", "true", "not_an_object"),
            .init("not an object: false", "false", "not_an_object"),
        ]
        // The version.
        c += [
            .init("v: 2", start(replacing: "v", with: "2"), "unsupported_version", field: "v", id: .equals("bad-1")),
            .init("v: 0", start(replacing: "v", with: "0"), "unsupported_version", field: "v", id: .equals("bad-1")),
            .init("v: a string", start(replacing: "v", with: #""1""#), "invalid_field", field: "v", id: .equals("bad-1")),
            .init("v: a float", start(replacing: "v", with: "1.5"), "invalid_field", field: "v", id: .equals("bad-1")),
            .init("v: null", start(replacing: "v", with: "null"), "invalid_field", field: "v", id: .equals("bad-1")),
            .init("v: missing", start(replacing: "v", with: nil), "missing_field", field: "v", id: .equals("bad-1")),
        ]
        // Wrong types for every known field.
        c += [
            .init("id: an integer", start(replacing: "id", with: "42"), "invalid_field", field: "id"),
            .init("id: null", start(replacing: "id", with: "null"), "invalid_field", field: "id"),
            .init("id: an array", start(replacing: "id", with: #"["x"]"#), "invalid_field", field: "id"),
            .init("op: an integer", start(replacing: "op", with: "7"), "invalid_field", field: "op", id: .equals("bad-1")),
            .init("op: null", start(replacing: "op", with: "null"), "invalid_field", field: "op", id: .equals("bad-1")),
            .init("op: an array", start(replacing: "op", with: #"["start"]"#), "invalid_field", field: "op", id: .equals("bad-1")),
            .init("machine: an integer", start(replacing: "machine", with: "5"), "invalid_field", field: "machine", id: .equals("bad-1")),
            .init("machine: an object", start(replacing: "machine", with: #"{"name":"web1"}"#), "invalid_field", field: "machine", id: .equals("bad-1")),
            .init("machine: null", start(replacing: "machine", with: "null"), "invalid_field", field: "machine", id: .equals("bad-1")),
            .init("machine: a boolean", start(replacing: "machine", with: "true"), "invalid_field", field: "machine", id: .equals("bad-1")),
            .init("args: a string", start(replacing: "args", with: #""paused""#), "invalid_field", field: "args", id: .equals("bad-1")),
            .init("args: an array", start(replacing: "args", with: "[]"), "invalid_field", field: "args", id: .equals("bad-1")),
            .init("args: a number", start(replacing: "args", with: "1"), "invalid_field", field: "args", id: .equals("bad-1")),
            .init("args.paused: a string", start(replacing: "args", with: #"{"paused":"yes"}"#), "invalid_field", field: "args.paused", id: .equals("bad-1")),
            .init("args.paused: a number", start(replacing: "args", with: #"{"paused":1}"#), "invalid_field", field: "args.paused", id: .equals("bad-1")),
            .init("args.wait_ms: a string", #"{"v":1,"id":"w1","op":"shutdown","machine":"db1","args":{"wait_ms":"100"}}"#,
                  "invalid_field", field: "args.wait_ms", id: .equals("w1")),
            .init("args.wait_ms: negative", #"{"v":1,"id":"w2","op":"shutdown","machine":"db1","args":{"wait_ms":-1}}"#,
                  "invalid_field", field: "args.wait_ms", id: .equals("w2")),
            .init("args.wait_ms: a float", #"{"v":1,"id":"w3","op":"shutdown","machine":"db1","args":{"wait_ms":1.5}}"#,
                  "invalid_field", field: "args.wait_ms", id: .equals("w3")),
            .init("args.force: a string", #"{"v":1,"id":"f1","op":"shutdown","machine":"db1","args":{"wait_ms":10,"force":"true"}}"#,
                  "invalid_field", field: "args.force", id: .equals("f1")),
            .init("args.xml: a number", #"{"v":1,"id":"x1","op":"define","args":{"xml":42}}"#, "invalid_field", field: "args.xml", id: .equals("x1")),
            .init("args.xml: an object", #"{"v":1,"id":"x2","op":"define","args":{"xml":{"domain":"x"}}}"#, "invalid_field", field: "args.xml", id: .equals("x2")),
            .init("args.xml: empty", #"{"v":1,"id":"x3","op":"define","args":{"xml":""}}"#, "invalid_field", field: "args.xml", id: .equals("x3")),
            .init("timeout_ms: a string", start(replacing: "timeout_ms", with: #""30""#), "invalid_field", field: "timeout_ms", id: .equals("bad-1")),
            .init("timeout_ms: zero", start(replacing: "timeout_ms", with: "0"), "invalid_field", field: "timeout_ms", id: .equals("bad-1")),
            .init("timeout_ms: negative", start(replacing: "timeout_ms", with: "-5"), "invalid_field", field: "timeout_ms", id: .equals("bad-1")),
            .init("timeout_ms: a float", start(replacing: "timeout_ms", with: "2.5"), "invalid_field", field: "timeout_ms", id: .equals("bad-1")),
            .init("timeout_ms: a boolean", start(replacing: "timeout_ms", with: "true"), "invalid_field", field: "timeout_ms", id: .equals("bad-1")),
            .init("timeout_ms: 2^63", start(replacing: "timeout_ms", with: "9223372036854775808"), "invalid_field", field: "timeout_ms", id: .equals("bad-1")),
            .init("args.wait_ms: 2^63", #"{"v":1,"id":"w4","op":"shutdown","machine":"db1","args":{"wait_ms":9223372036854775808}}"#,
                  "invalid_field", field: "args.wait_ms", id: .equals("w4")),
            .init("args.xml: a document type declaration", #"{"v":1,"id":"x4","op":"define","args":{"xml":"<!doctype domain><domain type='test'><name>dt</name><memory>65536</memory></domain>"}}"#,
                  "invalid_field", field: "args.xml", id: .equals("x4")),
        ]
        // Too deep.
        c += [
            .init("too deep: 33 levels", #"{"v":1,"id":"deep","op":"start","machine":"web1","x":"# + String(repeating: "[", count: 32) + String(repeating: "]", count: 32) + "}",
                  "too_large", id: .any),
            .init("too deep: 100000 levels, unbalanced", #"{"v":1,"id":"deeper","op":"start","machine":"web1","x":"# + String(repeating: "[", count: 100_000),
                  "too_large", id: .any),
        ]
        // Missing fields.
        c += [
            .init("missing: everything", "{}", "missing_field", field: "id"),
            .init("missing: id", start(replacing: "id", with: nil), "missing_field", field: "id"),
            .init("missing: op", start(replacing: "op", with: nil), "missing_field", field: "op", id: .equals("bad-1")),
            .init("missing: args.xml (no args)", #"{"v":1,"id":"dx","op":"define"}"#, "missing_field", field: "args.xml", id: .equals("dx")),
            .init("missing: args.xml (empty args)", #"{"v":1,"id":"dy","op":"define","args":{}}"#, "missing_field", field: "args.xml", id: .equals("dy")),
        ]
        for op in ["start", "shutdown", "destroy", "reboot", "suspend", "resume", "undefine", "status"] {
            c.append(.init("missing: machine for \(op)", #"{"v":1,"id":"nm-\#(op)","op":"\#(op)"}"#,
                           "missing_field", field: "machine", id: .equals("nm-\(op)")))
        }
        // Unknown ops.
        c += [
            .init("unknown op: explode", start(replacing: "op", with: #""explode""#), "unknown_op", field: "op", id: .equals("bad-1")),
            .init("unknown op: upper case", start(replacing: "op", with: #""START""#), "unknown_op", field: "op", id: .equals("bad-1")),
            .init("unknown op: empty", start(replacing: "op", with: #""""#), "unknown_op", field: "op", id: .equals("bad-1")),
            .init("unknown op: trailing space", start(replacing: "op", with: #""start ""#), "unknown_op", field: "op", id: .equals("bad-1")),
        ]
        // Bad ids.
        c += [
            .init("id: empty", start(replacing: "id", with: #""""#), "invalid_field", field: "id", id: .any),
            .init("id: 129 characters", start(replacing: "id", with: "\"\(String(repeating: "a", count: 129))\""), "invalid_field", field: "id", id: .any),
            .init("id: a space", start(replacing: "id", with: #""a b""#), "invalid_field", field: "id", id: .any),
            .init("id: a slash", start(replacing: "id", with: #""a/b""#), "invalid_field", field: "id", id: .any),
            .init("id: accented letters", start(replacing: "id", with: #""héllo""#), "invalid_field", field: "id", id: .any),
            .init("id: an emoji", start(replacing: "id", with: #""id-🙂""#), "invalid_field", field: "id", id: .any),
            .init("id: a newline", start(replacing: "id", with: #""a\nb""#), "invalid_field", field: "id", id: .any),
            .init("id: an escaped NUL", start(replacing: "id", with: #""a\u0000b""#), "invalid_field", field: "id", id: .any),
        ]
        // Bad machine names.
        c += [
            .init("machine: empty", start(replacing: "machine", with: #""""#), "invalid_field", field: "machine", id: .equals("bad-1")),
            .init("machine: a control character", start(replacing: "machine", with: #""web\u0001""#), "invalid_field", field: "machine", id: .equals("bad-1")),
            .init("machine: a newline", start(replacing: "machine", with: #""web\n1""#), "invalid_field", field: "machine", id: .equals("bad-1")),
            .init("machine: an escaped NUL", start(replacing: "machine", with: #""web1\u0000""#), "invalid_field", field: "machine", id: .equals("bad-1")),
            .init("machine: DEL", start(replacing: "machine", with: #""web\u007f1""#), "invalid_field", field: "machine", id: .equals("bad-1")),
            .init("machine: a leading space", start(replacing: "machine", with: #"" web1""#), "invalid_field", field: "machine", id: .equals("bad-1")),
            .init("machine: a trailing space", start(replacing: "machine", with: #""web1 ""#), "invalid_field", field: "machine", id: .equals("bad-1")),
            .init("machine: 300 characters", start(replacing: "machine", with: "\"\(String(repeating: "m", count: 300))\""), "invalid_field", field: "machine", id: .equals("bad-1")),
        ]
        return c
    }()
}

/// Frames on the control socket (as a DEALER sends them; the ROUTER adds the identity) that are
/// not a request.
struct WorkerBadControlFrames: Sendable, CustomTestStringConvertible {
    var name: String
    var frames: [Data]
    var reason: String

    var testDescription: String { name }

    static let command = WorkerClient.encode(WorkerClient.command("start", id: "frames-1", machine: "web1"))

    static let all: [WorkerBadControlFrames] = [
        WorkerBadControlFrames(name: "three non-empty frames", frames: [Data("a".utf8), Data("b".utf8), Data("c".utf8)], reason: "bad_frames"),
        WorkerBadControlFrames(name: "two JSON frames", frames: [command, command], reason: "bad_frames"),
        WorkerBadControlFrames(name: "delimiter, JSON, extra frame", frames: [Data(), command, Data("x".utf8)], reason: "bad_frames"),
        WorkerBadControlFrames(name: "JSON, then an empty frame", frames: [command, Data()], reason: "bad_frames"),
        WorkerBadControlFrames(name: "identity only (one empty frame)", frames: [Data()], reason: "bad_frames"),
        WorkerBadControlFrames(name: "delimiter, then an empty frame", frames: [Data(), Data()], reason: "malformed_json"),
        WorkerBadControlFrames(name: "two delimiters, then JSON", frames: [Data(), Data(), command], reason: "bad_frames"),
    ]
}

/// Frames on the commands socket, after the worker's own topic, that are not a command.
struct WorkerBadCommandFrames: Sendable, CustomTestStringConvertible {
    var name: String
    /// The frames after the topic.
    var frames: [Data]
    var reason: String

    var testDescription: String { name }

    static let command = WorkerBadControlFrames.command

    static let all: [WorkerBadCommandFrames] = [
        WorkerBadCommandFrames(name: "topic only", frames: [], reason: "bad_frames"),
        WorkerBadCommandFrames(name: "topic and two JSON frames", frames: [command, command], reason: "bad_frames"),
        WorkerBadCommandFrames(name: "topic, JSON, empty frame", frames: [command, Data()], reason: "bad_frames"),
        WorkerBadCommandFrames(name: "topic, empty frame, JSON", frames: [Data(), command], reason: "bad_frames"),
        WorkerBadCommandFrames(name: "topic and an empty frame", frames: [Data()], reason: "malformed_json"),
    ]
}

@Suite("Bad input: refused with the right reason, nothing runs, the worker keeps serving")
struct WorkerBadInputTests {
    @Test("a bad command document is refused on both sockets", arguments: WorkerBadPayload.corpus)
    func badPayload(_ bad: WorkerBadPayload) async throws {
        try await WorkerTestThread.run { try badPayloadBody(bad) }
    }

    private func badPayloadBody(_ bad: WorkerBadPayload) throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        let before = try client.run("list")

        // Through the commands socket: published on error.request.<id>. The refusal leaves
        // before a ping sent afterwards is even read.
        try client.publish(topic: "cmd.\(worker.id)", bad.payload)
        try client.barrier()
        let refusals = client.messages { $0.type == "request_error" }
        let published = try #require(
            refusals.first,
            "no request_error; instead: \(client.messages { !WorkerClient.isHarnessID($0.id) && $0.type != "heartbeat" })")
        check(published, bad, worker: worker, via: .commands)

        // Through the control socket: the reply, and the same message published.
        try client.sendControl([Data(), bad.payload])
        let reply = try client.nextReply()
        #expect(reply.envelope == [Data()], "the reply mirrors the envelope")
        check(reply, bad, worker: worker, via: .control)
        let both = try client.waitForCount(2, "request errors") { $0.type == "request_error" }
        #expect(both.count == 2, "one request_error per refused command: \(both)")
        #expect(both.last?.json == reply.json, "the reply is the published request_error\n reply: \(reply)\n published: \(both.last.map(String.init(describing:)) ?? "-")")

        try expectNothingRan(client, worker: worker, listBefore: before)
    }

    @Test("a control request with the wrong frames is refused", arguments: WorkerBadControlFrames.all)
    func badControlFrames(_ bad: WorkerBadControlFrames) async throws {
        try await WorkerTestThread.run { try badControlFramesBody(bad) }
    }

    private func badControlFramesBody(_ bad: WorkerBadControlFrames) throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        let before = try client.run("list")
        try client.sendControl(bad.frames)
        let reply = try client.nextReply()
        #expect(reply.type == "request_error", "\(reply)")
        #expect(reply.reason == bad.reason, "\(reply)")
        #expect(reply["detail"]?.stringValue?.isEmpty == false, "\(reply)")
        WorkerExpect.envelope(reply, worker: worker, type: "request_error", topic: "error.request")
        let published = try client.waitFor("the published request_error") { $0.type == "request_error" }
        #expect(published.json == reply.json, "\(published)")
        try expectNothingRan(client, worker: worker, listBefore: before)
    }

    @Test("a commands message with the wrong frames is refused on error.request.<id>", arguments: WorkerBadCommandFrames.all)
    func badCommandFrames(_ bad: WorkerBadCommandFrames) async throws {
        try await WorkerTestThread.run { try badCommandFramesBody(bad) }
    }

    private func badCommandFramesBody(_ bad: WorkerBadCommandFrames) throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sync()
        let before = try client.run("list")
        try client.publish([Data("cmd.\(worker.id)".utf8)] + bad.frames)
        let published = try client.waitFor("a request_error") { $0.type == "request_error" }
        WorkerExpect.envelope(published, worker: worker, type: "request_error", topic: "error.request")
        #expect(published.reason == bad.reason, "\(published)")
        #expect(published["detail"]?.stringValue?.isEmpty == false, "\(published)")
        try expectNothingRan(client, worker: worker, listBefore: before)
    }

    @Test("a frame over --max-frame-bytes runs nothing, and the worker keeps serving", arguments: CommandChannel.allCases)
    func frameOverLimit(channel: CommandChannel) async throws {
        try await WorkerTestThread.run { try frameOverLimitBody(channel: channel) }
    }

    private func frameOverLimitBody(channel: CommandChannel) throws {
        var options = WorkerLaunchOptions()
        options.maxFrameBytes = 65_536
        options.extraArguments = ["--max-command-bytes", "65536", "--max-xml-bytes", "32768"]
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()
        let before = try client.run("list")

        let big = Self.paddedStart(id: "huge-1", machine: "web1", bytes: 70_000)
        switch channel {
        case .commands: try client.publish(topic: "cmd.\(worker.id)", big)
        case .control: try client.sendControl([Data(), big])
        }
        // libzmq drops a peer that sends more than ZMQ_MAXMSGSIZE; the client's sockets
        // reconnect by themselves. Any answer must be a refusal.
        try client.collect(for: .milliseconds(300))
        if let reply = try client.awaitReply(timeout: .milliseconds(1)) {
            #expect(reply.type == "request_error" && reply.reason == "too_large", "\(reply)")
        }
        for m in client.messages(where: { $0.type == "request_error" }) {
            #expect(m.reason == "too_large", "\(m)")
        }
        try client.sync()
        let ping = try client.execute(WorkerClient.command("ping", id: "after-huge"), via: .control)
        #expect(ping.result.ok == true)
        #expect(client.messages { $0.id == "huge-1" && $0.type != "request_error" }.isEmpty, "the oversized command was not accepted")
        try expectNothingRan(client, worker: worker, listBefore: before, allowing: ["after-huge"])
    }

    @Test("a frame of exactly --max-frame-bytes is taken", arguments: CommandChannel.allCases)
    func frameAtLimit(channel: CommandChannel) async throws {
        try await WorkerTestThread.run { try frameAtLimitBody(channel: channel) }
    }

    private func frameAtLimitBody(channel: CommandChannel) throws {
        var options = WorkerLaunchOptions()
        options.maxFrameBytes = 65_536
        options.extraArguments = ["--max-command-bytes", "65536", "--max-xml-bytes", "32768"]
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()
        let command = Self.paddedStart(id: "edge-1", machine: "web1", bytes: 65_536)
        #expect(command.count == 65_536)
        switch channel {
        case .commands: try client.publish(topic: "cmd.\(worker.id)", command)
        case .control: try client.sendControl([Data(), command])
        }
        let result = try client.result("edge-1")
        #expect(result.ok == true && result.changed == true && result.state == "running", "\(result)")
        #expect(worker.stop() == 0)
    }

    @Test(
        "a worker given one small size limit starts: the limits it did not get follow it",
        arguments: [["--max-frame-bytes", "65536"], ["--max-command-bytes", "65536"]])
    func oneSmallLimitAlone(arguments: [String]) async throws {
        try await WorkerTestThread.run { try oneSmallLimitAloneBody(arguments: arguments) }
    }

    private func oneSmallLimitAloneBody(arguments: [String]) throws {
        var options = WorkerLaunchOptions()
        options.extraArguments = arguments
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        let command = Self.paddedStart(id: "small-limit", machine: "web1", bytes: 65_536)
        try client.sendControl([Data(), command])
        let reply = try client.nextReply()
        #expect(reply.type == "result" && reply.ok == true, "a command of exactly the limit is taken: \(reply)")
        #expect(worker.stop() == 0)
    }

    @Test("a document over --max-command-bytes but within the frame limit is refused as too_large", arguments: CommandChannel.allCases)
    func documentTooLarge(channel: CommandChannel) async throws {
        try await WorkerTestThread.run { try documentTooLargeBody(channel: channel) }
    }

    private func documentTooLargeBody(channel: CommandChannel) throws {
        var options = WorkerLaunchOptions()
        options.maxFrameBytes = 4 << 20
        options.extraArguments = ["--max-command-bytes", "65536", "--max-xml-bytes", "32768"]
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()
        let before = try client.run("list")
        let big = Self.paddedStart(id: "big-doc", machine: "web1", bytes: 100_000)
        let refusal: WorkerMessage
        switch channel {
        case .commands:
            try client.publish(topic: "cmd.\(worker.id)", big)
            refusal = try client.waitFor("a request_error") { $0.type == "request_error" }
        case .control:
            try client.sendControl([Data(), big])
            refusal = try client.nextReply()
        }
        WorkerExpect.envelope(refusal, worker: worker, type: "request_error", topic: "error.request")
        #expect(refusal.reason == "too_large", "\(refusal)")
        #expect(refusal["detail"]?.stringValue?.isEmpty == false, "\(refusal)")
        let after = try client.run("list")
        #expect(after.data == before.data, "the refused document changed nothing\n before: \(before)\n after: \(after)")

        // A document of exactly the limit is taken.
        let edge = Self.paddedStart(id: "doc-at-limit", machine: "web2", bytes: 65_536)
        switch channel {
        case .commands: try client.publish(topic: "cmd.\(worker.id)", edge)
        case .control: try client.sendControl([Data(), edge])
        }
        let taken = try client.result("doc-at-limit")
        #expect(taken.ok == true && taken.state == "running", "a document of exactly --max-command-bytes is taken: \(taken)")
        #expect(worker.stop() == 0)
    }

    @Test("a document of the default command size limit plus one byte is refused as too_large")
    func documentOverDefaultLimit() async throws {
        try await WorkerTestThread.run { try documentOverDefaultLimitBody() }
    }

    private func documentOverDefaultLimitBody() throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        let big = Self.paddedStart(id: "big-default", machine: "web1", bytes: (1 << 20) + 1)
        try client.sendControl([Data(), big])
        let refusal = try client.nextReply()
        #expect(refusal.type == "request_error" && refusal.reason == "too_large", "\(refusal)")
        try WorkerOperationCase.expectState(client, "web1", "shutoff")
        #expect(worker.stop() == 0)
    }

    @Test("a define whose XML is over the XML limit is refused as too_large, with its id and field", arguments: CommandChannel.allCases)
    func xmlTooLarge(channel: CommandChannel) async throws {
        try await WorkerTestThread.run { try xmlTooLargeBody(channel: channel) }
    }

    private func xmlTooLargeBody(channel: CommandChannel) throws {
        var options = WorkerLaunchOptions()
        options.extraArguments = ["--max-xml-bytes", "4096"]
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()
        let before = try client.run("list")
        let comment = "<!--" + String(repeating: "x", count: 8192) + "-->"
        let xml = WorkerMachine.domainXML(name: "bigxml").replacingOccurrences(of: "<vcpu>", with: comment + "<vcpu>")
        let command = WorkerClient.command("define", id: "big-xml", args: ["xml": .string(xml)])
        try client.send(command, via: channel)
        let refusal = channel == .control
            ? try client.nextReply()
            : try client.waitFor("a request_error") { $0.type == "request_error" }
        #expect(refusal.type == "request_error" && refusal.reason == "too_large", "\(refusal)")
        #expect(refusal.id == "big-xml", "\(refusal)")
        #expect(refusal.field == "args.xml", "\(refusal)")
        try expectNothingRan(client, worker: worker, listBefore: before)
    }

    @Test("commands at the edges of what is valid are taken", arguments: [
        ("id of 128 characters", #"{"v":1,"id":"\#(String(repeating: "i", count: 128))","op":"ping"}"#),
        ("id of one character", #"{"v":1,"id":"i","op":"ping"}"#),
        ("id using every allowed character", #"{"v":1,"id":"Az09._:-","op":"ping"}"#),
        ("unknown top-level fields", #"{"v":1,"id":"u1","op":"ping","extra":{"a":[1,2]},"priority":"high"}"#),
        ("arguments another op would read", #"{"v":1,"id":"u2","op":"ping","args":{"paused":"yes","xml":5}}"#),
        ("unknown arguments", #"{"v":1,"id":"u3","op":"status","machine":"web1","args":{"verbose":true}}"#),
        ("a machine on an op that takes none", #"{"v":1,"id":"u4","op":"list","machine":"web1"}"#),
        ("timeout_ms of 30000", #"{"v":1,"id":"u5","op":"status","machine":"web1","timeout_ms":30000}"#),
        ("null args", #"{"v":1,"id":"u6","op":"status","machine":"web1","args":null}"#),
        ("machine of 255 bytes", #"{"v":1,"id":"u7","op":"status","machine":"\#(String(repeating: "m", count: 255))"}"#),
        ("white space around the document", "\n  {\"v\":1,\"id\":\"u8\",\"op\":\"ping\"}  \n"),
        ("nesting 32 deep (the default limit)", #"{"v":1,"id":"u9","op":"ping","x":"# + String(repeating: "[", count: 31) + String(repeating: "]", count: 31) + "}"),
        ("brackets inside strings do not count as nesting", #"{"v":1,"id":"u10","op":"ping","x":""# + String(repeating: "[{", count: 100) + #""}"#),
    ])
    func validEdges(name: String, payload: String) async throws {
        try await WorkerTestThread.run { try validEdgesBody(name: name, payload: payload) }
    }

    private func validEdgesBody(name: String, payload: String) throws {
        let worker = try WorkerProcess.start()
        let client = try WorkerClient(worker)
        try client.sendControl([Data(), Data(payload.utf8)])
        let reply = try client.nextReply()
        #expect(reply.type == "result", "\(name) is a valid command: \(reply)")
        if reply.ok == false {
            #expect(reply.error?["code_name"] == "VIR_ERR_NO_DOMAIN", "only libvirt may refuse it: \(reply)")
        }
        #expect(worker.stop() == 0)
    }

    // MARK: helpers

    /// A `start` command padded with an unknown field to exactly `bytes` bytes.
    static func paddedStart(id: String, machine: String, bytes: Int) -> Data {
        let head = #"{"v":1,"id":"\#(id)","op":"start","machine":"\#(machine)","pad":""#
        let tail = #""}"#
        return Data((head + String(repeating: "p", count: bytes - head.utf8.count - tail.utf8.count) + tail).utf8)
    }

    /// After a refusal: nothing was acknowledged, no machine changed, and the worker still answers
    /// on both sockets; then it stops cleanly.
    private func expectNothingRan(
        _ client: WorkerClient, worker: WorkerProcess, listBefore: WorkerMessage, allowing allowed: Set<String> = [],
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        try client.barrier()
        let ping = try client.execute(WorkerClient.command("ping", id: "still-there"), via: .control)
        #expect(ping.result.ok == true, sourceLocation: sourceLocation)
        let foreign = client.messages {
            ($0.type == "accepted" || $0.type == "result" || $0.type == "machine.event")
                && !WorkerClient.isHarnessID($0.id) && !($0.id?.hasPrefix("list-") ?? false) && $0.id != "still-there"
                && !allowed.contains($0.id ?? "")
        }
        #expect(foreign.isEmpty, "nothing ran: \(foreign)", sourceLocation: sourceLocation)
        let after = try client.run("list")
        #expect(after.data == listBefore.data, "no machine changed\n before: \(listBefore)\n after: \(after)", sourceLocation: sourceLocation)
        #expect(worker.stop() == 0, "\(worker.logTail())", sourceLocation: sourceLocation)
    }

    private func check(
        _ m: WorkerMessage, _ bad: WorkerBadPayload, worker: WorkerProcess, via channel: CommandChannel,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        WorkerExpect.envelope(m, worker: worker, type: "request_error", topic: "error.request", sourceLocation: sourceLocation)
        #expect(m.reason == bad.reason, "\(channel.rawValue): reason: \(m)", sourceLocation: sourceLocation)
        if let field = bad.field {
            #expect(m.field == field, "\(channel.rawValue): field: \(m)", sourceLocation: sourceLocation)
        }
        switch bad.id {
        case .absent: #expect(m["id"] == nil || m["id"] == .null, "\(channel.rawValue): no id could be read: \(m)", sourceLocation: sourceLocation)
        case .equals(let id): #expect(m.id == id, "\(channel.rawValue): the id is echoed: \(m)", sourceLocation: sourceLocation)
        case .any: break
        }
        #expect(m["detail"]?.stringValue?.isEmpty == false, "\(channel.rawValue): a detail: \(m)", sourceLocation: sourceLocation)
    }
}
