import FoundationEssentials

/// Limits the decoder enforces on a command before and while reading it.
public struct CommandLimits: Sendable, Equatable {
    /// The largest command document, in bytes.
    public var maxDocumentBytes: Int
    /// The largest domain XML in `define`, in bytes.
    public var maxXMLBytes: Int
    /// The largest `timeout_ms` and `wait_ms` accepted (one day by default).
    public var maxDurationMs: Int
    /// The deepest nesting of arrays and objects accepted.
    public var maxDepth: Int

    public init(maxDocumentBytes: Int = 1 << 20, maxXMLBytes: Int = 512 << 10, maxDurationMs: Int = 86_400_000, maxDepth: Int = 32) {
        self.maxDocumentBytes = maxDocumentBytes
        self.maxXMLBytes = maxXMLBytes
        self.maxDurationMs = maxDurationMs
        self.maxDepth = maxDepth
    }

    public static let `default` = CommandLimits()

    /// The most machines a `host_stop` stops at once.
    public static let maxParallel = 256
}

/// Turns a command frame into a `Command` or the `RequestError` that says exactly what is wrong.
///
/// Known fields are type-checked; unknown fields are ignored, so newer senders keep working.
public struct CommandDecoder: Sendable {
    public var limits: CommandLimits

    public init(limits: CommandLimits = .default) {
        self.limits = limits
    }

    /// Decodes and validates one command document.
    public func decode(_ data: Data) -> Result<Command, RequestError> {
        if data.count > limits.maxDocumentBytes {
            return .failure(RequestError(
                reason: .tooLarge,
                detail: "command is \(data.count) bytes, the limit is \(limits.maxDocumentBytes)"))
        }
        if data.isEmpty {
            return .failure(RequestError(reason: .malformedJSON, detail: "command frame is empty"))
        }
        // The members the protocol names are picked as they are read (the parser refuses a name
        // that repeats); unknown ones are read and dropped.
        var v: JSONValue?, id: JSONValue?, op: JSONValue?, machine: JSONValue?, timeout: JSONValue?, args: JSONValue?
        let parsed: Result<JSONValue?, JSONSyntax.Problem> = data.withUnsafeBytes { buffer in
            Result { () throws(JSONSyntax.Problem) -> JSONValue? in
                try JSONSyntax.parseMembers(buffer, maxDepth: limits.maxDepth) { name, value in
                    switch name {
                    case "v": v = value
                    case "id": id = value
                    case "op": op = value
                    case "machine": machine = value
                    case "timeout_ms": timeout = value
                    case "args": args = value
                    default: break
                    }
                }
            }
        }
        switch parsed {
        case .success(nil):
            break
        case .success(let document?):
            return .failure(RequestError(reason: .notAnObject, detail: "command must be a JSON object, got \(document.typeDescription)"))
        case .failure(.tooDeep(let depth)):
            return .failure(RequestError(
                reason: .tooLarge,
                detail: "command nests arrays and objects more than \(limits.maxDepth) deep (reached \(depth))"))
        case .failure(.duplicateMember(let name, let offset)):
            return .failure(RequestError(
                reason: .malformedJSON,
                detail: "command names the member \(Self.quote(name)) twice in one object (at byte \(offset)); a member may appear only once"))
        case .failure(.syntax(let what, let offset)):
            return .failure(RequestError(reason: .malformedJSON, detail: "command is not valid JSON: \(what) at byte \(offset)"))
        }
        let raw = RawCommand(v: v, id: id, op: op, machine: machine, timeoutMs: timeout, args: args)
        return validate(raw)
    }

    private func validate(_ raw: RawCommand) -> Result<Command, RequestError> {
        // The id comes first, so every later error can carry it.
        let id: String
        switch raw.id {
        case .absent:
            return .failure(RequestError(reason: .missingField, field: "id", detail: "id is required"))
        case .wrongType(let t), .outOfRange(let t):
            return .failure(RequestError(reason: .invalidField, field: "id", detail: "id must be a string, got \(t)"))
        case .value(let s):
            if let problem = Self.idProblem(s) {
                return .failure(RequestError(reason: .invalidField, field: "id", detail: problem))
            }
            id = s
        }
        func fail(_ reason: RequestErrorReason, _ field: String?, _ detail: String) -> Result<Command, RequestError> {
            .failure(RequestError(reason: reason, id: id, field: field, detail: detail))
        }

        switch raw.v {
        case .absent: return fail(.missingField, "v", "v (the protocol version) is required; this worker speaks 1")
        case .wrongType(let t): return fail(.invalidField, "v", "v must be the integer 1, got \(t)")
        case .outOfRange(let text): return fail(.invalidField, "v", "v must be the integer 1, got \(text), out of range")
        case .value(let v) where v != 1:
            return fail(.unsupportedVersion, "v", "protocol version \(v) is not supported; this worker speaks 1")
        case .value: break
        }

        let op: Op
        switch raw.op {
        case .absent: return fail(.missingField, "op", "op is required")
        case .wrongType(let t), .outOfRange(let t): return fail(.invalidField, "op", "op must be a string, got \(t)")
        case .value(let s):
            guard let known = Op(rawValue: s) else {
                return fail(.unknownOp, "op", "unknown op \(Self.quote(s)); known ops: \(Op.allNames)")
            }
            op = known
        }

        var machine: String?
        switch raw.machine {
        case .absent:
            if op.needsMachine { return fail(.missingField, "machine", "op \(op.rawValue) needs a machine (a name or UUID)") }
        case .wrongType(let t), .outOfRange(let t):
            if op.needsMachine || t != "null" {
                return fail(.invalidField, "machine", "machine must be a name or UUID string, got \(t)")
            }
        case .value(let s):
            if let problem = Self.machineProblem(s) { return fail(.invalidField, "machine", problem) }
            machine = op.takesMachine ? s : nil
        }

        var timeoutMs: Int?
        switch raw.timeoutMs {
        case .absent: break
        case .wrongType(let t):
            if t != "null" { return fail(.invalidField, "timeout_ms", "timeout_ms must be a positive integer, got \(t)") }
        case .outOfRange(let text):
            return fail(.invalidField, "timeout_ms", "timeout_ms must be between 1 and \(limits.maxDurationMs), got \(text), out of range")
        case .value(let t):
            guard t >= 1, t <= limits.maxDurationMs else {
                return fail(.invalidField, "timeout_ms", "timeout_ms must be between 1 and \(limits.maxDurationMs), got \(t)")
            }
            timeoutMs = t
        }

        var args = Command.Arguments()
        switch raw.args {
        case .absent: break
        case .wrongType(let t), .outOfRange(let t):
            if t != "null" { return fail(.invalidField, "args", "args must be an object, got \(t)") }
        case .value(let object):
            switch decodeArguments(object, op: op) {
            case .success(let a): args = a
            case .failure(let e):
                var error = RequestError(reason: e.reason, id: id, field: e.field, detail: e.detail)
                error.op = op
                return .failure(error)
            }
        }
        if op == .define && args.xml == nil {
            return fail(.missingField, "args.xml", "op define needs args.xml, the domain XML")
        }
        return .success(Command(id: id, op: op, machine: machine, args: args, timeoutMs: timeoutMs))
    }

    private func decodeArguments(_ object: [String: JSONValue], op: Op) -> Result<Command.Arguments, RequestError> {
        var args = Command.Arguments()
        func bad(_ name: String, _ detail: String) -> Result<Command.Arguments, RequestError> {
            .failure(RequestError(reason: .invalidField, field: "args.\(name)", detail: detail))
        }
        // Only the arguments of this op are read; the rest are ignored like any unknown field.
        switch op {
        case .start:
            if let v = object["paused"], v != .null {
                guard let b = v.boolValue else { return bad("paused", "args.paused must be a boolean, got \(v.typeDescription)") }
                args.paused = b
            }
        case .shutdown:
            switch integer(object, "wait_ms", 0...limits.maxDurationMs) {
            case .success(let n): args.waitMs = n
            case .failure(let e): return .failure(e)
            }
            if let v = object["force"], v != .null {
                guard let b = v.boolValue else { return bad("force", "args.force must be a boolean, got \(v.typeDescription)") }
                args.force = b
            }
            if args.force == true && args.waitMs == nil {
                return bad("force", "args.force needs args.wait_ms: how long to wait before destroying the machine")
            }
        case .define:
            if let v = object["xml"], v != .null {
                guard let s = v.stringValue else { return bad("xml", "args.xml must be a string, got \(v.typeDescription)") }
                guard !s.isEmpty else { return bad("xml", "args.xml is empty") }
                guard s.utf8.count <= limits.maxXMLBytes else {
                    return .failure(RequestError(
                        reason: .tooLarge, field: "args.xml",
                        detail: "args.xml is \(s.utf8.count) bytes, the limit is \(limits.maxXMLBytes)"))
                }
                if Self.hasDocumentTypeDeclaration(s) {
                    return bad("xml", "args.xml has a document type declaration (<!DOCTYPE); domain XML never needs one, and the entities it declares expand past any size limit")
                }
                args.xml = s
            }
        case .replay:
            if let v = object["since_seq"], v != .null {
                if let text = RawCommand.outOfRangeInteger(v) {
                    return bad("since_seq", "args.since_seq must be an integer of 0 or more, got \(text), out of range")
                }
                guard case .int(let n) = v else { return bad("since_seq", "args.since_seq must be an integer, got \(v.typeDescription)") }
                guard n >= 0 else { return bad("since_seq", "args.since_seq must be 0 or more, got \(n)") }
                args.sinceSeq = UInt64(n)
            }
            switch integer(object, "limit", 1...ReplayLimits.maxPage) {
            case .success(let n): args.limit = n
            case .failure(let e): return .failure(e)
            }
            if let v = object["topics"], v != .null {
                guard let list = v.arrayValue else { return bad("topics", "args.topics must be an array of topic prefixes, got \(v.typeDescription)") }
                guard list.count <= ReplayLimits.maxTopics else {
                    return bad("topics", "args.topics holds \(list.count) prefixes, the limit is \(ReplayLimits.maxTopics)")
                }
                var topics: [String] = []
                for (i, item) in list.enumerated() {
                    guard let t = item.stringValue else { return bad("topics", "args.topics[\(i)] must be a string, got \(item.typeDescription)") }
                    guard t.utf8.count <= ReplayLimits.maxTopicBytes else {
                        return bad("topics", "args.topics[\(i)] is \(t.utf8.count) bytes, the limit is \(ReplayLimits.maxTopicBytes)")
                    }
                    topics.append(t)
                }
                args.topics = topics
            }
        case .setPolicy:
            var change = PolicyChange()
            func integer(_ name: String, _ range: ClosedRange<Int>) -> Result<PolicyChange.Member<Int>, RequestError> {
                guard let v = object[name] else { return .success(.keep) }
                if v == .null { return .success(.clear) }
                let expected = "args.\(name) must be an integer between \(range.lowerBound) and \(range.upperBound), or null to clear it"
                if let text = RawCommand.outOfRangeInteger(v) {
                    return .failure(RequestError(reason: .invalidField, field: "args.\(name)", detail: "\(expected), got \(text), out of range"))
                }
                guard case .int(let n) = v, range.contains(Int(clamping: n)) else {
                    let got = if case .int(let n) = v { "\(n)" } else { v.typeDescription }
                    return .failure(RequestError(reason: .invalidField, field: "args.\(name)", detail: "\(expected), got \(got)"))
                }
                return .success(.set(Int(n)))
            }
            switch integer("order", RestorePolicy.orderRange) {
            case .success(let m): change.order = m
            case .failure(let e): return .failure(e)
            }
            switch integer("up_delay_ms", RestorePolicy.upDelayRange) {
            case .success(let m): change.upDelayMs = m
            case .failure(let e): return .failure(e)
            }
            switch integer("retries", RestorePolicy.retriesRange) {
            case .success(let m): change.retries = m
            case .failure(let e): return .failure(e)
            }
            if let v = object["host_stop"] {
                if v == .null {
                    change.hostStop = .clear
                } else {
                    guard let s = v.stringValue, let mode = HostStopMode(rawValue: s) else {
                        let got = v.stringValue.map { Self.quote($0) } ?? v.typeDescription
                        return bad("host_stop", "args.host_stop must be one of \(HostStopMode.allNames), or null to clear it, got \(got)")
                    }
                    change.hostStop = .set(mode)
                }
            }
            args.policy = change
        case .hostStop:
            if let v = object["mode"], v != .null {
                guard let s = v.stringValue, let mode = HostStopMode(rawValue: s), mode != .none else {
                    let got = v.stringValue.map { Self.quote($0) } ?? v.typeDescription
                    return bad("mode", "args.mode must be one of shutdown, managedsave, destroy, got \(got)")
                }
                args.hostStopMode = mode
            }
            switch integer(object, "timeout_ms", 0...limits.maxDurationMs) {
            case .success(let n): args.hostStopTimeoutMs = n
            case .failure(let e): return .failure(e)
            }
            switch integer(object, "parallel", 1...CommandLimits.maxParallel) {
            case .success(let n): args.parallel = n
            case .failure(let e): return .failure(e)
            }
        default:
            break
        }
        return .success(args)
    }

    /// An integer argument within `range`; nil when absent or null.
    private func integer(_ object: [String: JSONValue], _ name: String, _ range: ClosedRange<Int>) -> Result<Int?, RequestError> {
        guard let v = object[name], v != .null else { return .success(nil) }
        func bad(_ detail: String) -> Result<Int?, RequestError> {
            .failure(RequestError(reason: .invalidField, field: "args.\(name)", detail: detail))
        }
        let between = "args.\(name) must be between \(range.lowerBound) and \(range.upperBound)"
        if let text = RawCommand.outOfRangeInteger(v) { return bad("\(between), got \(text), out of range") }
        guard case .int(let n) = v else { return bad("args.\(name) must be an integer, got \(v.typeDescription)") }
        guard range.contains(Int(clamping: n)) else { return bad("\(between), got \(n)") }
        return .success(Int(n))
    }

    /// Whether `xml` holds `<!DOCTYPE`, in any case. It is looked for anywhere, not only in the
    /// prolog: a reader that tolerates junk before the root must not find one either.
    public static func hasDocumentTypeDeclaration(_ xml: String) -> Bool {
        let word = Array("DOCTYPE".utf8)
        var utf8 = xml.utf8.makeIterator()
        // A small matcher over the bytes: "<!" then the word, letters compared without case.
        var matched = 0
        while let b = utf8.next() {
            switch matched {
            case 0: matched = b == UInt8(ascii: "<") ? 1 : 0
            case 1: matched = b == UInt8(ascii: "!") ? 2 : (b == UInt8(ascii: "<") ? 1 : 0)
            default:
                let upper = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) ? b - 32 : b
                if upper == word[matched - 2] {
                    matched += 1
                    if matched == word.count + 2 { return true }
                } else {
                    matched = b == UInt8(ascii: "<") ? 1 : 0
                }
            }
        }
        return false
    }

    /// Why an id is not acceptable, or nil.
    public static func idProblem(_ id: String) -> String? {
        if id.isEmpty { return "id must be 1 to 128 characters of [A-Za-z0-9._:-], got an empty string" }
        if id.utf8.count > 128 { return "id must be 1 to 128 characters of [A-Za-z0-9._:-], got \(id.utf8.count)" }
        for b in id.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: ":"), UInt8(ascii: "-"):
                continue
            default:
                return "id must be 1 to 128 characters of [A-Za-z0-9._:-], got \(quote(id))"
            }
        }
        return nil
    }

    /// Why a machine reference is not acceptable, or nil.
    public static func machineProblem(_ machine: String) -> String? {
        if machine.isEmpty { return "machine must be a name or UUID, got an empty string" }
        if machine.utf8.count > 255 { return "machine must be at most 255 bytes, got \(machine.utf8.count)" }
        if machine.utf8.contains(where: { $0 < 0x20 || $0 == 0x7f }) {
            return "machine must not contain control characters, got \(quote(machine))"
        }
        // Printable ASCII at both ends (the usual name) cannot be white space; anything else is
        // asked of Unicode.
        let printable: ClosedRange<UInt8> = 0x21...0x7e
        if printable.contains(machine.utf8.first!) && printable.contains(machine.utf8.last!) { return nil }
        if machine.first!.isWhitespace || machine.last!.isWhitespace {
            return "machine must not begin or end with white space, got \(quote(machine))"
        }
        return nil
    }

    /// A string as a JSON literal, so control characters never reach a log or a dialog raw.
    public static func quote(_ s: String, limit: Int = 80) -> String {
        let clipped = s.count > limit ? String(s.prefix(limit)) + "…" : s
        var out = ""
        JSONQuoting.append(clipped, to: &out)
        return out
    }

}

/// A field as found: missing, of the wrong JSON type, or a value of the expected type.
enum Field<T: Sendable>: Sendable {
    case absent
    case wrongType(String)
    /// An integer too large for any field (the number as read).
    case outOfRange(String)
    case value(T)
}

/// The command's known fields, read without failing on any one of them.
struct RawCommand {
    var v: Field<Int>
    var id: Field<String>
    var op: Field<String>
    var machine: Field<String>
    var args: Field<[String: JSONValue]>
    var timeoutMs: Field<Int>

    init(v: JSONValue?, id: JSONValue?, op: JSONValue?, machine: JSONValue?, timeoutMs: JSONValue?, args: JSONValue?) {
        self.v = Self.integer(v)
        self.id = Self.string(id)
        self.op = Self.string(op)
        self.machine = Self.string(machine)
        self.timeoutMs = Self.integer(timeoutMs)
        switch args {
        case .none: self.args = .absent
        case .object(let o)?: self.args = .value(o)
        case let other?: self.args = .wrongType(other.typeDescription)
        }
    }

    static func string(_ value: JSONValue?) -> Field<String> {
        switch value {
        case .none: return .absent
        case .string(let s)?: return .value(s)
        case let other?: return .wrongType(other.typeDescription)
        }
    }

    static func integer(_ value: JSONValue?) -> Field<Int> {
        switch value {
        case .none: return .absent
        case let v? where v.intValue != nil:
            guard let n = Int(exactly: v.intValue!) else { return .outOfRange("\(v.intValue!)") }
            return .value(n)
        case let v? where outOfRangeInteger(v) != nil:
            return .outOfRange(outOfRangeInteger(v)!)
        case .double?: return .wrongType("a non-integer number")
        case let other?: return .wrongType(other.typeDescription)
        }
    }

    /// The number as read, when it is a whole number too large to be taken as an integer: an
    /// integer past 64 bits reaches the decoder as a double, and is then no "non-integer number".
    static func outOfRangeInteger(_ value: JSONValue) -> String? {
        guard case .double(let d) = value, d.isFinite, d.rounded() == d, abs(d) >= 9.0e15 else { return nil }
        return "\(d)"
    }
}
