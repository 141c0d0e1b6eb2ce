import ECPProtocol
import Foundation
import Testing
import ZeroMQ

/// Text from a peer (machine names, ids) may hold line breaks, terminal escape sequences, quotes
/// or bytes that are not UTF-8. None of it may break a log line, reach a terminal raw, or make a
/// published message invalid JSON.
@Suite("Security: hostile text in logs and messages")
struct SecurityHostileTextTests {
    /// Machine names the decoder takes: they reach libvirt (which finds no such machine), so they
    /// appear in results, E2LibvirtError records and log records.
    static let acceptedNames: [String] = [
        "we\"b'1",
        #"back\slash"#,
        "csi\u{9B}31mred",  // C1 control sequence introducer
        "nel\u{85}next",  // C1 next line
        "ls\u{2028}ps\u{2029}x",  // Unicode line and paragraph separators
        "rlo\u{202E}txt.exe",  // right-to-left override
        "{\"json\":1}",
    ]

    /// Machine names the decoder refuses (control characters); the refusal quotes them.
    static let refusedNames: [String] = [
        "line\nbreak",
        "esc\u{1B}[31mred\u{1B}[0m",
        "title\u{1B}]0;pwned\u{07}",
        "cr\rreturn",
        "nul\u{0}byte",
        "del\u{7F}x",
    ]

    /// Ids, all refused: the pattern is `[A-Za-z0-9._:-]`.
    static let refusedIDs: [String] = [
        "id\nnext", "id\u{1B}[2J", "id\"quote", "id\u{9B}c", "id\u{2028}x",
    ]

    /// Raw documents whose strings are not UTF-8.
    static let invalidUTF8: [(String, Data)] = [
        ("machine", Data(#"{"v":1,"id":"utf8-m","op":"status","machine":"web"#.utf8) + Data([0xC3, 0x28, 0xFF]) + Data(#""}"#.utf8)),
        ("id", Data(#"{"v":1,"id":"utf8-"#.utf8) + Data([0xED, 0xA0, 0x80]) + Data(#"","op":"ping"}"#.utf8)),
        ("overlong", Data(#"{"v":1,"id":"utf8-o","op":"status","machine":""#.utf8) + Data([0xC0, 0xAF, 0x1B]) + Data(#""}"#.utf8)),
    ]

    @Test("JSON logs: every stderr line is one JSON object, hostile text appears JSON-escaped, every published message is valid JSON")
    func jsonLog() async throws {
        try await WorkerTestThread.run("sec-hostile-json") { try hostileBody(format: "json") }
    }

    @Test("text logs: one line per record, no raw ESC byte")
    func textLog() async throws {
        try await WorkerTestThread.run("sec-hostile-text") { try hostileBody(format: "text") }
    }

    private func hostileBody(format: String) throws {
        var options = WorkerLaunchOptions()
        options.extraArguments = ["--log-format", format]
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()

        var n = 0
        /// Sends a document on both channels (the control reply and the published messages), each
        /// under an id of its own so the second is no duplicate of the first.
        func send(_ document: (String) -> Data) throws {
            n += 1
            try client.sendControl([Data(), document("hostile-\(n)-control")])
            try client.publish(topic: "cmd.\(worker.id)", document("hostile-\(n)-commands"))
        }
        for name in Self.acceptedNames + Self.refusedNames {
            try send { WorkerClient.encode(WorkerClient.command("status", id: $0, machine: name)) }
        }
        for id in Self.refusedIDs {
            try send { _ in WorkerClient.encode(WorkerClient.command("status", id: id, machine: "web1")) }
        }
        for (_, document) in Self.invalidUTF8 { try send { _ in document } }

        // A machine whose own name is hostile, defined through libvirt: its name comes back in
        // results, machine events and the state table.
        let hostileMachine = "we\"b\u{9B}[1m\u{2028}x"
        let escapedName = hostileMachine.replacingOccurrences(of: "\"", with: "&quot;")
        let xml = WorkerMachine.domainXML(name: "PLACEHOLDER").replacingOccurrences(of: "PLACEHOLDER", with: escapedName)
        let defined = try client.run("define", args: ["xml": .string(xml)])
        #expect(defined.ok == true && defined.data?["name"]?.stringValue == hostileMachine, "\(defined)")
        let started = try client.run("start", machine: hostileMachine)
        #expect(started.ok == true && started["machine"]?.stringValue == hostileMachine && started.state == "running", "\(started)")
        _ = try client.waitFor("the machine event of the hostile machine") {
            $0.type == "machine.event" && $0["machine"]?.stringValue == hostileMachine && $0["event"] == "started"
        }

        // Every command got its answer on the control socket (2 sockets × n, plus define and start).
        let total = Self.acceptedNames.count + Self.refusedNames.count + Self.refusedIDs.count + Self.invalidUTF8.count
        while client.allReplies.count < total + 2, try client.awaitReply(timeout: .seconds(5)) != nil {}
        try client.barrier()
        #expect(client.allReplies.count >= total + 2, "every hostile command was answered: \(client.allReplies.count) of \(total + 2)")

        // Published messages and replies: strict JSON, and the text comes back intact.
        for m in client.received + client.allReplies {
            #expect(SecurityJSON.problem(m.body) == nil, "\(SecurityJSON.problem(m.body) ?? ""): \(m)")
        }
        for name in Self.acceptedNames {
            let failures = client.messages { $0.type == "E2LibvirtError" && $0["machine"]?.stringValue == name }
            #expect(failures.count == 2, "the E2LibvirtError for \(SecurityText.escaped(name)), once per socket, with the name intact")
        }
        let refusals = client.messages { $0.type == "request_error" }
        #expect(refusals.count == 2 * (Self.refusedNames.count + Self.refusedIDs.count + Self.invalidUTF8.count), "\(refusals.count) refusals")
        for refusal in refusals {
            let detail = refusal["detail"]?.stringValue ?? ""
            #expect(!detail.isEmpty && !detail.contains(where: \.isNewline), "a one-line detail: \(SecurityText.escaped(detail))")
            #expect(!detail.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }, "no raw control character: \(SecurityText.escaped(detail))")
        }
        #expect(worker.stop() == 0, "\(worker.logTail())")

        let log = worker.log
        let bytes = Data(log.utf8)
        #expect(!bytes.contains(0x1B), "no raw ESC byte in the log")
        #expect(!bytes.contains { $0 < 0x20 && $0 != 0x0A }, "no raw control byte but the line ends")
        #expect(bytes.last == 0x0A, "the log ends with a whole line")
        // Lines as people and tools see them: no other line break than the newline, no C1
        // control (a terminal may take U+009B as an escape sequence).
        let breaks = log.unicodeScalars.filter { [0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029].contains($0.value) }
        #expect(breaks.isEmpty, "no raw line-breaking character in the \(format) log: \(breaks.map { String($0.value, radix: 16) })\n\(Self.offendingLines(log))")
        let c1 = log.unicodeScalars.filter { (0x80..<0xA0).contains($0.value) }
        #expect(c1.isEmpty, "no raw C1 control character in the \(format) log: \(c1.map { String($0.value, radix: 16) })\n\(Self.offendingLines(log))")

        let lines = log.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        if format == "json" {
            let records = SecurityLog.records(log)
            #expect(records.count == lines.count)
            // The accepted names are logged with the failure, decoded back to the very same text.
            for name in Self.acceptedNames {
                #expect(records.contains { $0["machine.name"] as? String == name }, "a log record names \(SecurityText.escaped(name))")
            }
            #expect(records.contains { $0["machine.name"] as? String == hostileMachine && $0["msg"] as? String == "machine lifecycle event" })
            // The refused ones are quoted in the refusal's detail: `\u001b`, never ESC.
            let details = records.compactMap { $0["request.detail"] as? String }
            #expect(details.contains { $0.contains(#"esc\u001b[31mred\u001b[0m"#) }, "\(details)")
            #expect(details.contains { $0.contains(#"line\nbreak"#) }, "\(details)")
            #expect(details.contains { $0.contains(#"id\"quote"#) }, "\(details)")
        } else {
            // Each record is one line that starts with its time and level.
            for line in lines {
                #expect(
                    line.wholeMatch(of: #/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (TRACE|DEBUG|INFO|NOTICE|WARNING|ERROR|CRITICAL) +\S[^\n]*/#) != nil,
                    "one record per line: \(SecurityText.escaped(line))")
            }
        }
    }

    /// Where the log holds a line-breaking or C1 character: up to four excerpts around one,
    /// escaped for the failure message.
    static func offendingLines(_ log: String) -> String {
        func offending(_ scalar: Unicode.Scalar) -> Bool {
            [0x0B, 0x0C, 0x0D, 0x85, 0x2028, 0x2029].contains(scalar.value) || (0x80..<0xA0).contains(scalar.value)
        }
        var excerpts: [String] = []
        for line in log.split(separator: "\n") where excerpts.count < 4 {
            let scalars = Array(line.unicodeScalars)
            guard let at = scalars.firstIndex(where: offending) else { continue }
            let window = scalars[max(0, at - 40)..<min(scalars.count, at + 30)]
            var text = ""
            text.unicodeScalars.append(contentsOf: window)
            excerpts.append("  …" + SecurityText.escaped(text) + "…")
        }
        return excerpts.joined(separator: "\n")
    }
}
