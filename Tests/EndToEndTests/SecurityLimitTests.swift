import ECPProtocol
import Foundation
import Testing
import ZeroMQ

/// Every limit a peer could push against, at its edge and one past it, with small values: the
/// document size, the nesting depth, the domain XML size, the frame size, the queue of waiting
/// commands, and the memory of command ids.
@Suite("Security: limits at their edges")
struct SecurityLimitTests {
    // MARK: document, depth, XML

    @Test("--max-command-bytes: a document of exactly the limit runs, one byte more is too_large", arguments: CommandChannel.allCases)
    func commandBytes(channel: CommandChannel) async throws {
        try await WorkerTestThread.run("sec-command-bytes") { try commandBytesBody(channel: channel) }
    }

    private func commandBytesBody(channel: CommandChannel) throws {
        let limit = 300
        let worker = try WorkerProcess.start(Self.options(["--max-command-bytes", "\(limit)"]))
        let client = try WorkerClient(worker)
        try client.sync()

        let atLimit = Self.padded(id: "doc-edge", op: "start", machine: "web1", bytes: limit)
        try #require(atLimit.count == limit)
        let taken = try Self.answer(client, atLimit, id: "doc-edge", via: channel)
        #expect(taken.type == "result" && taken.ok == true && taken.state == "running", "a document of exactly \(limit) bytes runs: \(taken)")

        let over = Self.padded(id: "doc-over", op: "start", machine: "web2", bytes: limit + 1)
        let refused = try Self.refusal(client, over, via: channel)
        #expect(refused.reason == "too_large", "\(limit + 1) bytes: \(refused)")
        #expect(refused["detail"]?.stringValue?.contains("\(limit + 1) bytes") == true, "\(refused)")
        try WorkerOperationCase.expectState(client, "web2", "shutoff")
        #expect(client.messages { $0.id == "doc-over" && $0.type != "request_error" }.isEmpty, "nothing acknowledged for the refused document")
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    @Test("--max-depth: nesting of exactly the limit runs, one level more is too_large", arguments: ["[", "{"])
    func depth(opener: String) async throws {
        try await WorkerTestThread.run("sec-depth") { try depthBody(opener: opener) }
    }

    private func depthBody(opener: String) throws {
        let limit = 4
        let worker = try WorkerProcess.start(Self.options(["--max-depth", "\(limit)"]))
        let client = try WorkerClient(worker)
        try client.sync()

        // The command object is level 1; `x` holds the rest.
        func nested(_ levels: Int) -> String {
            opener == "["
                ? String(repeating: "[", count: levels) + "1" + String(repeating: "]", count: levels)
                : String(repeating: #"{"a":"#, count: levels) + "1" + String(repeating: "}", count: levels)
        }
        let atLimit = Data(#"{"v":1,"id":"depth-edge","op":"start","machine":"web1","x":\#(nested(limit - 1))}"#.utf8)
        let taken = try Self.answer(client, atLimit, id: "depth-edge", via: .control)
        #expect(taken.type == "result" && taken.ok == true && taken.state == "running", "depth \(limit) runs: \(taken)")

        let over = Data(#"{"v":1,"id":"depth-over","op":"start","machine":"web2","x":\#(nested(limit))}"#.utf8)
        let refused = try Self.refusal(client, over, via: .control)
        #expect(refused.reason == "too_large", "depth \(limit + 1): \(refused)")

        // Deep nesting inside the arguments counts the same.
        let inArgs = Data(#"{"v":1,"id":"depth-args","op":"start","machine":"web2","args":{"paused":false,"x":\#(nested(limit - 1))}}"#.utf8)
        let refusedArgs = try Self.refusal(client, inArgs, via: .control)
        #expect(refusedArgs.reason == "too_large", "depth \(limit + 1) inside args: \(refusedArgs)")
        try WorkerOperationCase.expectState(client, "web2", "shutoff")
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    @Test("--max-xml-bytes: a define with XML of exactly the limit goes to libvirt, one byte more is too_large on args.xml", arguments: CommandChannel.allCases)
    func xmlBytes(channel: CommandChannel) async throws {
        try await WorkerTestThread.run("sec-xml-bytes") { try xmlBytesBody(channel: channel) }
    }

    private func xmlBytesBody(channel: CommandChannel) throws {
        let limit = 400
        let worker = try WorkerProcess.start(Self.options(["--max-xml-bytes", "\(limit)"]))
        let client = try WorkerClient(worker)
        try client.sync()

        let exact = Self.domainXML(name: "xml-edge", bytes: limit)
        try #require(exact.utf8.count == limit)
        let defined = try client.execute(WorkerClient.command("define", id: "xml-edge", args: ["xml": .string(exact)]), via: channel).result
        #expect(defined.ok == true && defined.data?["name"] == "xml-edge", "XML of exactly \(limit) bytes is defined by libvirt: \(defined)")

        // The limit counts bytes, not characters: two-byte characters push it over.
        let exactMultibyte = Self.domainXML(name: "xml-edge-2", bytes: limit, filler: "é")
        try #require(exactMultibyte.utf8.count == limit)
        let definedMultibyte = try client.execute(
            WorkerClient.command("define", id: "xml-edge-2", args: ["xml": .string(exactMultibyte)]), via: channel).result
        #expect(definedMultibyte.ok == true, "\(definedMultibyte)")

        for (id, xml) in [
            ("xml-over", Self.domainXML(name: "xml-over", bytes: limit + 1)),
            ("xml-over-2", Self.domainXML(name: "xml-over-2", bytes: limit + 1, filler: "é")),
        ] {
            try #require(xml.utf8.count == limit + 1)
            let command = WorkerClient.encode(WorkerClient.command("define", id: id, args: ["xml": .string(xml)]))
            let refused = try Self.refusal(client, command, via: channel)
            #expect(refused.reason == "too_large", "\(refused)")
            #expect(refused.field == "args.xml", "\(refused)")
            #expect(refused.id == id, "\(refused)")
        }
        let list = try client.run("list")
        let names = list.data?["machines"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        #expect(names.contains("xml-edge") && names.contains("xml-edge-2"), "\(names)")
        #expect(!names.contains("xml-over") && !names.contains("xml-over-2"), "the refused definitions never reached libvirt: \(names)")
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    // MARK: frames

    @Test("--max-frame-bytes: a frame of exactly the limit runs; a larger one gets its peer dropped, runs nothing, and others are still served", arguments: CommandChannel.allCases)
    func frameBytes(channel: CommandChannel) async throws {
        try await WorkerTestThread.run("sec-frame-bytes") { try frameBytesBody(channel: channel) }
    }

    private func frameBytesBody(channel: CommandChannel) throws {
        let limit = 1024
        var options = Self.options(["--max-command-bytes", "\(limit)", "--max-xml-bytes", "512"])
        options.maxFrameBytes = limit
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()

        let atLimit = Self.padded(id: "frame-edge", op: "start", machine: "web1", bytes: limit)
        let taken = try Self.answer(client, atLimit, id: "frame-edge", via: channel)
        #expect(taken.type == "result" && taken.ok == true && taken.state == "running", "a frame of exactly \(limit) bytes runs: \(taken)")

        // Another peer sends a frame one byte over the limit.
        let context = try Context()
        let intruder = try context.makeSocket(channel == .control ? .dealer : .pub)
        defer { intruder.close() }
        try intruder.setLinger(milliseconds: 0)
        try intruder.connect(channel == .control ? worker.controlAddress : worker.commandsAddress)
        let over = Self.padded(id: "frame-over", op: "start", machine: "web2", bytes: limit + 1)
        switch channel {
        case .control:
            try intruder.send([Data(), over])
        case .commands:
            // A PUB sends only once the subscription has arrived: keep sending for a while.
            for _ in 0..<10 {
                try intruder.send([Data("cmd.\(worker.id)".utf8), over])
                try client.collect(for: .milliseconds(50))
            }
        }
        try client.collect(for: .milliseconds(300))
        if channel == .control {
            let events = try poll([.socket(intruder)], timeoutMs: 200)
            #expect(!events[0].contains(.readable), "no answer to the oversized frame: libzmq drops the peer")
        }
        #expect(worker.isRunning, "\(worker.logTail())")
        #expect(client.messages { $0.id == "frame-over" }.isEmpty, "nothing about the oversized command: \(client.messages { $0.id == "frame-over" })")
        try client.barrier()
        try WorkerOperationCase.expectState(client, "web2", "shutoff")
        let ping = try client.execute(WorkerClient.command("ping", id: "after-frame"), via: .control)
        #expect(ping.result.ok == true)
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    // MARK: the queue

    @Test("--max-queue: a burst on one machine past the bound is answered busy; every command gets exactly one answer")
    func queueBound() async throws {
        try await WorkerTestThread.run("sec-queue") { try queueBoundBody() }
    }

    private func queueBoundBody() throws {
        let worker = try WorkerProcess.start(Self.options(["--max-queue", "8", "--max-parallel", "1", "--log-level", "info"]))
        let client = try WorkerClient(worker)
        try client.sync()

        // One machine: every command waits in its lane behind the one running. A state change
        // also waits, after it ran, until the state table is on disk before it is answered (and
        // counts as waiting until then); `status` alone runs about as fast as the worker reads
        // commands, so the burst alternates suspend and resume.
        let count = 200
        let ids = (1...count).map { "burst-\($0)" }
        for (n, id) in ids.enumerated() {
            try client.sendControl(WorkerClient.command(n % 2 == 0 ? "suspend" : "resume", id: id, machine: "db1"))
        }
        var replies: [String: [WorkerMessage]] = [:]
        let until = ContinuousClock.now + .seconds(60)
        while replies.count < count && ContinuousClock.now < until {
            guard let reply = try client.awaitReply(timeout: .seconds(1)) else { continue }
            replies[reply.id ?? "(no id)", default: []].append(reply)
        }
        // A few more moments, so that a second answer to any command would show.
        try client.collect(for: .milliseconds(300))
        while let reply = try client.awaitReply(timeout: .milliseconds(1)) {
            replies[reply.id ?? "(no id)", default: []].append(reply)
        }

        #expect(Set(replies.keys) == Set(ids), "every command is answered, by id: missing \(Set(ids).subtracting(replies.keys).sorted().prefix(10))")
        let doubles = replies.filter { $0.value.count != 1 }
        #expect(doubles.isEmpty, "exactly one answer per command: \(doubles.prefix(3))")
        let answers = replies.values.compactMap(\.first)
        let results = answers.filter { $0.type == "result" }
        let busy = answers.filter { $0.type == "request_error" && $0.reason == "busy" }
        let other = answers.filter { !($0.type == "result" || ($0.type == "request_error" && $0.reason == "busy")) }
        print("max-queue burst: \(count) commands on one machine, \(results.count) results, \(busy.count) busy, \(other.count) other")
        #expect(other.isEmpty, "only results and busy refusals: \(other.prefix(3))")
        #expect(!busy.isEmpty, "a burst of \(count) on one machine with --max-queue 8 overflows the queue")
        #expect(!results.isEmpty)
        #expect(results.allSatisfy { $0.ok == true }, "\(results.filter { $0.ok != true }.prefix(3))")
        #expect(busy.allSatisfy { $0["detail"]?.stringValue?.isEmpty == false }, "a busy refusal says why")

        // Refused commands were never acknowledged; accepted ones were, once.
        try client.barrier()
        let acked = Dictionary(grouping: client.messages { $0.type == "accepted" && ($0.id ?? "").hasPrefix("burst-") }, by: { $0.id ?? "" })
        #expect(Set(acked.keys) == Set(results.compactMap(\.id)), "acks exactly for the commands that ran")
        #expect(acked.values.allSatisfy { $0.count == 1 })
        // Once the burst is over, the worker takes commands again.
        let after = try client.execute(WorkerClient.command("status", id: "after-burst", machine: "db1"), via: .control)
        #expect(after.result.ok == true)
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    @Test("a flood of 200,000 commands with a small id memory (--dedupe-ids 1000 --dedupe-window-s 1): every one answered, resident memory grows less than 20 MiB")
    func floodMemory() async throws {
        try await WorkerTestThread.run("sec-flood") {
            let rss = try floodBody(arguments: ["--dedupe-ids", "1000", "--dedupe-window-s", "1"], phases: 2)
            #expect(rss.last! - rss.first! < 20 * 1024, "resident memory grows less than 20 MiB over 200,000 commands: \(rss)")
            #expect(rss[2] - rss[1] < 6 * 1024, "the second 100,000 commands add (almost) nothing: \(rss)")
        }
    }

    @Test("a flood of 300,000 commands with the default settings: every one answered, resident memory grows less than 20 MiB and levels off")
    func floodMemoryDefaultDedupe() async throws {
        try await WorkerTestThread.run("sec-flood-default") {
            // The worker remembers recent ids with their results, within a bounded memory:
            // memory grows until that bound, and no further.
            let rss = try floodBody(arguments: [], phases: 3)
            #expect(rss[3] - rss[0] < 20 * 1024, "resident memory grows less than 20 MiB over 300,000 commands: \(rss)")
            #expect(rss[3] - rss[2] < 6 * 1024, "the third 100,000 commands add (almost) nothing: \(rss)")
        }
    }

    @Test("20,000 pings with a day's timeout_ms: once answered they hold nothing, resident memory grows less than 4 MiB")
    func finishedCommandsWithLongTimeouts() async throws {
        try await WorkerTestThread.run("sec-long-timeouts") {
            // A tiny id memory, so that what is measured is what the deadlines keep.
            let rss = try floodBody(
                arguments: ["--dedupe-ids", "1", "--dedupe-window-s", "0"], phases: 1, phaseSize: 20_000,
                commands: { Data(#"{"v":1,"id":"long-\#($0)","op":"ping","timeout_ms":86400000}"#.utf8) })
            #expect(rss[1] - rss[0] < 4 * 1024, "20,000 answered pings with a 24 h timeout add less than 4 MiB: \(rss)")
        }
    }

    /// Sends `phases` × `phaseSize` commands (after 5,000 to warm up) over the control socket, at
    /// most 256 unanswered at a time, checks every one is answered, prints the figures and
    /// returns the worker's VmRSS in KiB: after the warm-up, then after each phase. The commands
    /// are a mix of valid and refused ones, or `commands(n)` for the n-th.
    private func floodBody(
        arguments: [String], phases: Int, phaseSize: Int = 100_000, commands: ((Int) -> Data)? = nil
    ) throws -> [Int] {
        let worker = try WorkerProcess.start(Self.options(["--max-queue", "64", "--log-level", "info"] + arguments))
        let client = try WorkerClient(worker, subscriptions: ["heartbeat."])
        let dealer = client.dealer
        let machines = ["web1", "web2", "db1", "cache1", "nosuch"]
        var sequence = 0
        var answered = 0
        var busy = 0
        var refused = 0

        func payload(_ n: Int) -> Data {
            if let commands { return commands(n) }
            let id = "flood-\(n)"
            switch n % 8 {
            case 0: return Data(#"{"v":1,"id":"\#(id)","op":"ping"}"#.utf8)
            case 1: return Data(#"{"v":1,"id":"\#(id)","op":"status","#.utf8)  // malformed
            case 2: return Data(#"{"v":1,"id":"\#(id)","op":"explode","machine":"web1"}"#.utf8)  // unknown op
            default: return Data(#"{"v":1,"id":"\#(id)","op":"status","machine":"\#(machines[n % machines.count])"}"#.utf8)
            }
        }
        func flood(_ count: Int, window: Int = 256) throws {
            let first = sequence
            let target = sequence + count
            let startAnswered = answered
            let until = ContinuousClock.now + .seconds(600)
            while answered - startAnswered < count {
                while sequence < target && (sequence - first) - (answered - startAnswered) < window {
                    sequence += 1
                    try dealer.send([Data(), payload(sequence)])
                }
                let events = try poll([.socket(dealer)], timeoutMs: 1000)
                if events[0].contains(.readable) {
                    while let frames = try dealer.receive(dontWait: true) {
                        answered += 1
                        let body = frames.last ?? Data()
                        if body.range(of: Data(#""reason":"busy""#.utf8)) != nil {
                            busy += 1
                        } else if body.range(of: Data(#""type":"request_error""#.utf8)) != nil {
                            refused += 1
                        }
                    }
                }
                guard ContinuousClock.now < until, worker.isRunning else {
                    throw WorkerHarnessError(description: "the flood stalled at \(answered) answers\n\(worker.logTail())")
                }
            }
        }
        func rss() throws -> Int { try #require(SecurityProc.residentKiB(pid: worker.pid)) }

        try flood(5_000)  // warm up: threads, caches, first allocations
        Thread.sleep(forTimeInterval: 0.5)
        var figures = [try rss()]
        let started = ContinuousClock.now
        for _ in 0..<phases {
            try flood(phaseSize)
            figures.append(try rss())
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print(
            "flood \(arguments.isEmpty ? "(default id memory)" : arguments.joined(separator: " ")): "
                + "\(phases * phaseSize) commands in \(String(format: "%.1f", seconds)) s (\(Int(Double(phases * phaseSize) / seconds))/s), "
                + "\(busy) busy, \(refused) other refusals; VmRSS KiB after warm-up \(figures[0]), "
                + figures.dropFirst().enumerated().map { "after \(($0.offset + 1) * phaseSize) \($0.element) (+\($0.element - figures[0]))" }.joined(separator: ", "))
        #expect(answered == sequence && sequence == 5_000 + phases * phaseSize, "every command answered: \(answered) of \(sequence)")
        #expect(worker.isRunning)
        try client.sendControl(WorkerClient.command("ping", id: "after-flood"))
        #expect(try client.nextReply(matching: "after-flood").ok == true)
        #expect(worker.stop() == 0, "\(worker.logTail())")
        return figures
    }

    // MARK: remembered ids

    /// An id reused after `others` other commands, with `--dedupe-ids 10` and a time window.
    struct DedupeCase: Sendable, CustomTestStringConvertible {
        var window: Int
        var others: Int
        var runsAgain: Bool
        var testDescription: String { "--dedupe-window-s \(window), reused after \(others) other ids: \(runsAgain ? "runs again" : "duplicate")" }
    }

    @Test(
        "--dedupe-ids 10: an id reused within the last 10 is a duplicate; past them it runs again, unless its time window keeps it",
        arguments: [
            DedupeCase(window: 0, others: 20, runsAgain: true),
            DedupeCase(window: 0, others: 12, runsAgain: true),
            // Within the window, beyond the 10 ids (and within the bounded memory the window may use).
            DedupeCase(window: 600, others: 12, runsAgain: false),
        ])
    func dedupe(_ testCase: DedupeCase) async throws {
        try await WorkerTestThread.run("sec-dedupe") { try dedupeBody(testCase) }
    }

    private func dedupeBody(_ testCase: DedupeCase) throws {
        let worker = try WorkerProcess.start(Self.options(["--dedupe-ids", "10", "--dedupe-window-s", "\(testCase.window)"]))
        let client = try WorkerClient(worker)
        try client.sync()
        let start = WorkerClient.command("start", id: "reused", machine: "web1")
        // Every command below goes over the control socket: ids the worker sees are exactly these.
        func control(_ op: String, _ id: String, machine: String? = nil) throws -> WorkerMessage {
            try client.sendControl(WorkerClient.command(op, id: id, machine: machine))
            return try client.nextReply(matching: id)
        }

        try client.sendControl(start)
        let first = try client.nextReply(matching: "reused")
        #expect(first.ok == true && first.changed == true, "\(first)")
        try #require(try control("destroy", "undo", machine: "web1").ok == true)

        // One other id since: answered with the first result, not run.
        try client.sendControl(start)
        let again = try client.nextReply(matching: "reused")
        #expect(again["duplicate"] == true, "\(again)")
        #expect(try control("status", "check-1", machine: "web1").state == "shutoff")

        // `others` other ids in all since `reused`.
        for n in 1...(testCase.others - 2) {
            _ = try control("ping", "filler-\(n)")
        }
        try client.sendControl(start)
        let late = try client.nextReply(matching: "reused")
        let after = try control("status", "check-2", machine: "web1")
        try client.barrier()
        let acks = client.messages { $0.type == "accepted" && $0.id == "reused" }
        if testCase.runsAgain {
            #expect(late["duplicate"] == nil, "forgotten after \(testCase.others) other ids: it runs again: \(late)")
            #expect(late.ok == true && late.changed == true && late.state == "running", "\(late)")
            #expect(acks.count == 2, "acknowledged again: \(acks)")
            #expect(after.state == "running", "\(after)")
        } else {
            #expect(late["duplicate"] == true, "still remembered within the window: \(late)")
            #expect(acks.count == 1, "\(acks)")
            #expect(after.state == "shutoff", "\(after)")
        }
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    // MARK: helpers

    static func options(_ extra: [String]) -> WorkerLaunchOptions {
        var options = WorkerLaunchOptions()
        options.extraArguments = extra
        return options
    }

    /// A command padded with an unknown string field to exactly `bytes` bytes.
    static func padded(id: String, op: String, machine: String, bytes: Int) -> Data {
        let head = #"{"v":1,"id":"\#(id)","op":"\#(op)","machine":"\#(machine)","pad":""#
        let tail = #""}"#
        return Data((head + String(repeating: "p", count: bytes - head.utf8.count - tail.utf8.count) + tail).utf8)
    }

    /// Domain XML of exactly `bytes` UTF-8 bytes: a comment of `filler` characters (then ASCII to
    /// reach the count) pads a minimal definition.
    static func domainXML(name: String, bytes: Int, filler: Character = "x") -> String {
        let base = WorkerMachine.domainXML(name: name)
        let comment = { (body: String) in "<!--\(body)-->" }
        let room = bytes - base.utf8.count - comment("").utf8.count
        precondition(room >= 0, "the base XML is larger than \(bytes) bytes")
        let width = String(filler).utf8.count
        var body = String(repeating: filler, count: room / width)
        body += String(repeating: "x", count: room - body.utf8.count)
        return base.replacingOccurrences(of: "<vcpu>", with: comment(body) + "<vcpu>")
    }

    /// Sends a raw document and returns what it came to: the reply (control) or the result or
    /// request_error published for it (commands).
    static func answer(_ client: WorkerClient, _ document: Data, id: String, via channel: CommandChannel) throws -> WorkerMessage {
        switch channel {
        case .control:
            try client.sendControl([Data(), document])
            return try client.nextReply(matching: id)
        case .commands:
            try client.publish(topic: "cmd.\(client.worker.id)", document)
            return try client.waitFor("the answer to \(id)") { ($0.type == "result" || $0.type == "request_error") && $0.id == id }
        }
    }

    /// Sends a raw document that must be refused, and returns the refusal.
    static func refusal(_ client: WorkerClient, _ document: Data, via channel: CommandChannel) throws -> WorkerMessage {
        switch channel {
        case .control:
            try client.sendControl([Data(), document])
            let reply = try client.nextReply()
            #expect(reply.type == "request_error", "\(reply)")
            return reply
        case .commands:
            let before = client.messages { $0.type == "request_error" }.count
            try client.publish(topic: "cmd.\(client.worker.id)", document)
            try client.barrier()
            return try client.waitForCount(before + 1, "request errors") { $0.type == "request_error" }.last!
        }
    }
}
