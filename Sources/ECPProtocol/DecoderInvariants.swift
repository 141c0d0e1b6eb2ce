import FoundationEssentials

/// What must hold for every input of the command decoder, whatever the bytes: checked by the
/// libFuzzer target (Tests/Fuzz/CommandFuzzer.swift) and by the normal tests' replay of its corpus.
public enum DecoderInvariants {
    /// The decoders under test: the worker's defaults, and small limits so that inputs of a few
    /// hundred bytes reach every limit.
    public static let decoders: [CommandDecoder] = [
        CommandDecoder(),
        CommandDecoder(limits: CommandLimits(maxDocumentBytes: 512, maxXMLBytes: 64, maxDurationMs: 1000, maxDepth: 3)),
    ]

    /// The first invariant `data` breaks, in one line: what kind of failure, then ` | ` and the
    /// instance (escaped); nil when all hold.
    public static func violation(_ data: Data, decoder: CommandDecoder) -> String? {
        let limits = decoder.limits
        let result = decoder.decode(data)
        // Deterministic: the same bytes give the same answer.
        if !same(result, decoder.decode(data)) { return "nondeterministic: two decodings of the same bytes differ | -" }
        switch result {
        case .success(let command):
            if data.count > limits.maxDocumentBytes { return "size: an oversized document accepted | \(data.count) bytes, limit \(limits.maxDocumentBytes)" }
            if let problem = commandProblem(command, limits: limits) { return problem }
            // Re-validates: the command written back as JSON decodes to the very same command.
            let roundTrip = CommandDecoder(limits: CommandLimits(
                maxDocumentBytes: Int.max, maxXMLBytes: limits.maxXMLBytes, maxDurationMs: limits.maxDurationMs,
                maxDepth: max(limits.maxDepth, 2)))
            switch roundTrip.decode(encode(command)) {
            case .success(let again) where again == command: break
            case .success(let again): return "round trip: the command written back decodes differently | \(escaped(String(describing: command))) -> \(escaped(String(describing: again)))"
            case .failure(let error): return "round trip: the command written back is refused | \(escaped(String(describing: command))): \(escaped(error.description))"
            }
        case .failure(let error):
            if let problem = errorProblem(error, data: data, limits: limits) { return problem }
        }
        return nil
    }

    /// Why a decoded command is not one the worker may run.
    static func commandProblem(_ c: Command, limits: CommandLimits) -> String? {
        if !isValidID(c.id) { return "id: an accepted id is not 1 to 128 of [A-Za-z0-9._:-] | \(escaped(c.id))" }
        if CommandDecoder.idProblem(c.id) != nil { return "id: idProblem disagrees with an accepted id | \(escaped(c.id))" }
        if Op(rawValue: c.op.rawValue) != c.op || !Op.allCases.contains(c.op) { return "op: an unknown op accepted | \(c.op.rawValue)" }
        if (c.machine != nil && !c.op.takesMachine) || (c.machine == nil && c.op.needsMachine) {
            return "machine: op \(c.op.rawValue) \(c.op.needsMachine ? "needs a machine and has none" : "takes no machine and has one") | \(c.machine.map(escaped) ?? "nil")"
        }
        if let m = c.machine {
            if m.isEmpty || m.utf8.count > 255 { return "machine: an accepted machine of a bad length | \(m.utf8.count) bytes" }
            if m.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) { return "machine: an accepted machine with a control character | \(escaped(m))" }
            if m.first!.isWhitespace || m.last!.isWhitespace { return "machine: an accepted machine with white space at an end | \(escaped(m))" }
            if CommandDecoder.machineProblem(m) != nil { return "machine: machineProblem disagrees with an accepted machine | \(escaped(m))" }
        }
        if let t = c.timeoutMs, !(1...limits.maxDurationMs).contains(t) { return "timeout_ms: accepted out of range | \(t)" }
        let a = c.args
        if a.paused != nil && c.op != .start { return "args: paused on another op than start | \(c.op.rawValue)" }
        if (a.waitMs != nil || a.force != nil) && c.op != .shutdown { return "args: wait_ms or force on another op than shutdown | \(c.op.rawValue)" }
        if let w = a.waitMs, !(0...limits.maxDurationMs).contains(w) { return "args.wait_ms: accepted out of range | \(w)" }
        if a.force == true && a.waitMs == nil { return "args.force: force without wait_ms accepted | -" }
        if (a.xml != nil) != (c.op == .define) { return "args.xml: present on another op than define, or absent on define | \(c.op.rawValue)" }
        if let x = a.xml, x.isEmpty || x.utf8.count > limits.maxXMLBytes { return "args.xml: empty or over the limit accepted | \(x.utf8.count) bytes, limit \(limits.maxXMLBytes)" }
        return nil
    }

    /// Why a refusal is not one a person and a log can take.
    static func errorProblem(_ e: RequestError, data: Data, limits: CommandLimits) -> String? {
        if e.detail.isEmpty { return "detail: empty | \(e.reason.rawValue)" }
        if let bad = e.detail.unicodeScalars.first(where: { Character($0).isNewline || $0.value < 0x20 || $0.value == 0x7F || (0x80..<0xA0).contains($0.value) }) {
            return "detail: not one line: raw U+\(paddedHex(bad.value, uppercase: true)) in the \(e.reason.rawValue) detail of field \(e.field ?? "-") | \(escaped(e.detail))"
        }
        if [.busy, .unauthorized, .badFrames].contains(e.reason) { return "reason: not a decoder reason | \(e.reason.rawValue)" }
        if let id = e.id, !isValidID(id) { return "id: a refusal carries an invalid id | \(escaped(id))" }
        if let field = e.field, field.isEmpty { return "field: empty field name | -" }
        if data.count > limits.maxDocumentBytes && e.reason != .tooLarge { return "size: an oversized document not refused as too_large | \(data.count) bytes, \(e.reason.rawValue)" }
        return nil
    }

    /// Text with everything but printable ASCII escaped, for one-line messages.
    static func escaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(200) {
            if scalar.value >= 0x20 && scalar.value < 0x7F && scalar != "\\" {
                out.unicodeScalars.append(scalar)
            } else {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            }
        }
        return out
    }

    /// The id pattern, checked without the decoder's own code.
    static func isValidID(_ id: String) -> Bool {
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-".unicodeScalars)
        return (1...128).contains(id.unicodeScalars.count) && id.unicodeScalars.allSatisfy { allowed.contains($0) }
    }

    /// A command as the JSON document a sender would write for it.
    static func encode(_ c: Command) -> Data {
        var object: [String: JSONValue] = ["v": 1, "id": .string(c.id), "op": .string(c.op.rawValue)]
        if let m = c.machine { object["machine"] = .string(m) }
        if let t = c.timeoutMs { object["timeout_ms"] = .int(Int64(t)) }
        var args: [String: JSONValue] = [:]
        if let p = c.args.paused { args["paused"] = .bool(p) }
        if let w = c.args.waitMs { args["wait_ms"] = .int(Int64(w)) }
        if let f = c.args.force { args["force"] = .bool(f) }
        if let x = c.args.xml { args["xml"] = .string(x) }
        if !args.isEmpty { object["args"] = .object(args) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(JSONValue.object(object))) ?? Data()
    }

    static func same(_ a: Result<Command, RequestError>, _ b: Result<Command, RequestError>) -> Bool {
        switch (a, b) {
        case (.success(let x), .success(let y)): return x == y
        case (.failure(let x), .failure(let y)): return x == y
        default: return false
        }
    }
}
