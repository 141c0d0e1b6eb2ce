import ECPProtocol
import Foundation

/// One page of the worker's `replay` answer.
struct ReplayPage {
    /// A replayed message: its topic and its bytes exactly as the worker published them.
    struct Message {
        var topic: String
        var raw: Data
        /// The message decoded, for its `seq` and `id`.
        var document: JSONValue?
        var seq: UInt64? { document?["seq"]?.intValue.flatMap { $0 >= 0 ? UInt64($0) : nil } }
    }

    var run: String
    var messages: [Message]
    var nextSeq: UInt64
    var more: Bool
    var oldestSeq: UInt64
    var truncated: Bool

    /// Reads a successful `replay` reply; nil when it is not one.
    ///
    /// The messages are cut out of the reply's bytes rather than re-encoded, so they print
    /// exactly as published and as `tail --json` prints them live.
    init?(reply: Data) {
        guard let document = JSONValue.parse(reply), ReplyPrinter.status(of: document) == 0,
            let data = document["data"], let run = data["run"]?.stringValue,
            let next = data["next_seq"]?.intValue, let more = data["more"]?.boolValue,
            let oldest = data["oldest_seq"]?.intValue, let truncated = data["truncated"]?.boolValue
        else { return nil }
        let bytes = [UInt8](reply)
        let scanner = RawJSONScanner(bytes: bytes)
        guard let dataRange = scanner.member("data", in: 0..<bytes.count),
            let listRange = scanner.member("messages", in: dataRange)
        else { return nil }
        var messages: [Message] = []
        for element in scanner.elements(in: listRange) {
            guard let topicRange = scanner.member("topic", in: element),
                let topic = JSONValue.parse(Data(bytes[topicRange]))?.stringValue,
                let messageRange = scanner.member("message", in: element)
            else { return nil }
            let raw = Data(bytes[messageRange])
            messages.append(Message(topic: topic, raw: raw, document: JSONValue.parse(raw)))
        }
        self.run = run
        self.messages = messages
        self.nextSeq = UInt64(max(0, next))
        self.more = more
        self.oldestSeq = UInt64(max(0, oldest))
        self.truncated = truncated
    }

    /// Asks the worker's control socket for one page.
    ///
    /// - Returns: The reply's raw bytes (a result or a request error; the caller reads it).
    /// - Throws: ``CtlFailure`` as ``ControlClient/request(_:expectedID:options:waitMs:)`` does.
    static func request(since: UInt64, limit: Int, topics: [String], options: SharedOptions) throws -> Data {
        let id = options.makeCommandID()
        var args: [String: JSONValue] = ["since_seq": .int(Int64(clamping: since)), "limit": .int(Int64(limit))]
        if !topics.isEmpty { args["topics"] = .array(topics.map { .string($0) }) }
        let payload = try CommandDocument(id: id, op: Op.replay.rawValue, args: args).encoded()
        return try ControlClient.request(payload, expectedID: id, options: options, waitMs: options.timeoutMs)
    }

    /// The sentence for messages a `replay` could not give back: `from...through` of `run`.
    /// With topic prefixes, the worker cannot tell whether those seqs were of the topics asked for.
    static func lostLine(from: UInt64, through: UInt64, run: String, filtered: Bool = false) -> String {
        let range = from == through ? "message \(from)" : "messages \(from)..\(through)"
        return "ecpctl: \(range) of run \(Sanitize.display(run))\(filtered ? " (of any topic)" : "") are lost and could not be recovered (the worker no longer holds them)"
    }
}

/// Finds members and elements of a JSON document by byte range, without decoding it, so a
/// nested value can be taken out exactly as it was written. The document is assumed to be
/// valid JSON (it was decoded before); a malformed one yields nothing.
struct RawJSONScanner {
    let bytes: [UInt8]

    /// The range of the value of `key` in the object spanning `range`.
    func member(_ key: String, in range: Range<Int>) -> Range<Int>? {
        var i = skipSpace(range.lowerBound, range.upperBound)
        guard i < range.upperBound, bytes[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        while true {
            i = skipSpace(i, range.upperBound)
            guard i < range.upperBound, bytes[i] == UInt8(ascii: "\"") else { return nil }
            guard let keyEnd = valueEnd(i, range.upperBound) else { return nil }
            let name = JSONValue.parse(Data(bytes[i..<keyEnd]))?.stringValue
            i = skipSpace(keyEnd, range.upperBound)
            guard i < range.upperBound, bytes[i] == UInt8(ascii: ":") else { return nil }
            let start = skipSpace(i + 1, range.upperBound)
            guard let end = valueEnd(start, range.upperBound) else { return nil }
            if name == key { return start..<end }
            i = skipSpace(end, range.upperBound)
            guard i < range.upperBound, bytes[i] == UInt8(ascii: ",") else { return nil }
            i += 1
        }
    }

    /// The ranges of the elements of the array spanning `range`.
    func elements(in range: Range<Int>) -> [Range<Int>] {
        var i = skipSpace(range.lowerBound, range.upperBound)
        guard i < range.upperBound, bytes[i] == UInt8(ascii: "[") else { return [] }
        i = skipSpace(i + 1, range.upperBound)
        var result: [Range<Int>] = []
        if i < range.upperBound, bytes[i] == UInt8(ascii: "]") { return [] }
        while i < range.upperBound {
            guard let end = valueEnd(i, range.upperBound) else { return result }
            result.append(i..<end)
            i = skipSpace(end, range.upperBound)
            guard i < range.upperBound, bytes[i] == UInt8(ascii: ",") else { return result }
            i = skipSpace(i + 1, range.upperBound)
        }
        return result
    }

    private func skipSpace(_ start: Int, _ limit: Int) -> Int {
        var i = start
        while i < limit, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
        return i
    }

    /// Where the value starting at `start` ends (exclusive).
    private func valueEnd(_ start: Int, _ limit: Int) -> Int? {
        guard start < limit else { return nil }
        var i = start
        var depth = 0
        var inString = false
        while i < limit {
            let b = bytes[i]
            if inString {
                if b == UInt8(ascii: "\\") {
                    i += 1
                } else if b == UInt8(ascii: "\"") {
                    inString = false
                    if depth == 0 { return i + 1 }
                }
            } else {
                switch b {
                case UInt8(ascii: "\""): inString = true
                case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    if depth == 0 { return i }
                    depth -= 1
                    if depth == 0 { return i + 1 }
                case UInt8(ascii: ","), 0x20, 0x09, 0x0A, 0x0D:
                    if depth == 0 { return i }
                default: break
                }
            }
            i += 1
        }
        return depth == 0 && !inString ? i : nil
    }
}
