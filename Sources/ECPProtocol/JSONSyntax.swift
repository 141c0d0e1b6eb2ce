/// A strict, one-pass JSON parser (RFC 8259) for command documents.
///
/// Foundation's decoder is lenient (it takes trailing commas and raw control characters in
/// strings) and, measured, the largest cost of a command; this parser is strict, bounds the
/// nesting depth as it goes, says where a document goes wrong, and builds the values directly.
enum JSONSyntax {
    /// What is wrong, at which byte offset.
    enum Problem: Error, Equatable {
        case syntax(String, offset: Int)
        case tooDeep(Int)
        /// An object names a member twice: readers disagree on which one counts (RFC 7493 §2.3),
        /// so a command saying two things is refused rather than read one way.
        case duplicateMember(String, offset: Int)
    }

    /// Parses a document. When it is an object, its members go to `member` in order instead of
    /// into a dictionary, and the result is nil; any other document is returned as its value.
    /// Commands are objects of a few known members: this reads them without building and then
    /// searching a dictionary. A name repeated in any object of the document is a problem.
    static func parseMembers(
        _ bytes: UnsafeRawBufferPointer, maxDepth: Int, member: (String, JSONValue) -> Void
    ) throws(Problem) -> JSONValue? {
        var p = Parser(bytes: bytes, maxDepth: maxDepth)
        p.skipSpace()
        guard p.i < bytes.count, bytes[p.i] == UInt8(ascii: "{") else { return try p.run() }
        var seen = Set<String>(minimumCapacity: 8)
        try p.members { name, value in
            guard seen.insert(name).inserted else { return false }
            member(name, value)
            return true
        }
        p.skipSpace()
        if p.i < bytes.count { throw p.fail("unexpected \(p.describe(p.i)) after the document") }
        return nil
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        let maxDepth: Int
        var i = 0
        var depth = 0

        init(bytes: UnsafeRawBufferPointer, maxDepth: Int) {
            self.bytes = bytes
            self.maxDepth = maxDepth
        }

        mutating func run() throws(Problem) -> JSONValue {
            skipSpace()
            let v = try value()
            skipSpace()
            if i < bytes.count { throw fail("unexpected \(describe(i)) after the document") }
            return v
        }

        func describe(_ at: Int) -> String {
            guard at < bytes.count else { return "end of input" }
            let b = bytes[at]
            if b >= 0x21 && b < 0x7f { return "'\(Character(UnicodeScalar(b)))'" }
            return "byte 0x\(String(b, radix: 16, uppercase: true))"
        }

        func fail(_ what: String) -> Problem { .syntax(what, offset: i) }

        mutating func skipSpace() {
            while i < bytes.count {
                switch bytes[i] {
                case 0x20, 0x09, 0x0a, 0x0d: i += 1
                default: return
                }
            }
        }

        mutating func value() throws(Problem) -> JSONValue {
            guard i < bytes.count else { throw fail("unexpected end of input, expected a value") }
            switch bytes[i] {
            case UInt8(ascii: "{"): return try object()
            case UInt8(ascii: "["): return try array()
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw fail("unexpected \(describe(i)), expected a value")
            }
        }

        mutating func literal(_ word: StaticString) throws(Problem) {
            let n = word.utf8CodeUnitCount
            guard i + n <= bytes.count else { throw fail("unexpected end of input in a literal") }
            for k in 0..<n where bytes[i + k] != word.utf8Start[k] {
                throw fail("unexpected \(describe(i + k)) in a literal")
            }
            i += n
        }

        mutating func enter() throws(Problem) {
            depth += 1
            if depth > maxDepth { throw .tooDeep(depth) }
        }

        mutating func object() throws(Problem) -> JSONValue {
            // Commands have a handful of members: one allocation, no rehashing as they are added.
            var object: [String: JSONValue] = Dictionary(minimumCapacity: 8)
            try members { object.updateValue($1, forKey: $0) == nil }
            return .object(object)
        }

        /// Reads an object, handing each member to `visit` in order; `visit` answers false for a
        /// name it has had already.
        mutating func members(_ visit: (String, JSONValue) -> Bool) throws(Problem) {
            try enter()
            i += 1
            skipSpace()
            if i < bytes.count && bytes[i] == UInt8(ascii: "}") {
                i += 1
                depth -= 1
                return
            }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else {
                    throw fail("unexpected \(describe(i)), expected a member name in quotes")
                }
                let nameOffset = i
                let name = try string()
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else {
                    throw fail("unexpected \(describe(i)), expected ':'")
                }
                i += 1
                skipSpace()
                let v = try value()
                guard visit(name, v) else { throw .duplicateMember(name, offset: nameOffset) }
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end of input in an object") }
                if bytes[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                if bytes[i] == UInt8(ascii: "}") {
                    i += 1
                    depth -= 1
                    return
                }
                throw fail("unexpected \(describe(i)), expected ',' or '}'")
            }
        }

        mutating func array() throws(Problem) -> JSONValue {
            try enter()
            var elements: [JSONValue] = []
            i += 1
            skipSpace()
            if i < bytes.count && bytes[i] == UInt8(ascii: "]") {
                i += 1
                depth -= 1
                return .array(elements)
            }
            while true {
                skipSpace()
                let v = try value()
                elements.append(v)
                skipSpace()
                guard i < bytes.count else { throw fail("unexpected end of input in an array") }
                if bytes[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                if bytes[i] == UInt8(ascii: "]") {
                    i += 1
                    depth -= 1
                    return .array(elements)
                }
                throw fail("unexpected \(describe(i)), expected ',' or ']'")
            }
        }

        /// A string: checked, and built when escapes are present (otherwise a straight copy).
        mutating func string() throws(Problem) -> String {
            i += 1
            let start = i
            runStart = i
            var escaped: [UInt8]?
            while i < bytes.count {
                let b = bytes[i]
                switch b {
                case UInt8(ascii: "\""):
                    let text: String
                    if var e = escaped {
                        e.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<i]))
                        text = String(decoding: e, as: UTF8.self)
                    } else {
                        text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
                    }
                    i += 1
                    return text
                case UInt8(ascii: "\\"):
                    if escaped == nil { escaped = [] }
                    escaped!.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[runStart..<i]))
                    i += 1
                    guard i < bytes.count else { throw fail("unexpected end of input in an escape") }
                    let e = bytes[i]
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"):
                        escaped!.append(e)
                        i += 1
                    case UInt8(ascii: "b"): escaped!.append(0x08); i += 1
                    case UInt8(ascii: "f"): escaped!.append(0x0c); i += 1
                    case UInt8(ascii: "n"): escaped!.append(0x0a); i += 1
                    case UInt8(ascii: "r"): escaped!.append(0x0d); i += 1
                    case UInt8(ascii: "t"): escaped!.append(0x09); i += 1
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xd800...0xdbff).contains(scalar) {
                            // A high surrogate must be followed by an escaped low one.
                            guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                                throw fail("invalid \\u escape (a high surrogate without its low half)")
                            }
                            i += 1
                            let low = try hex4()
                            guard (0xdc00...0xdfff).contains(low) else {
                                throw fail("invalid \\u escape (a high surrogate without its low half)")
                            }
                            scalar = 0x10000 + ((scalar - 0xd800) << 10) + (low - 0xdc00)
                        } else if (0xdc00...0xdfff).contains(scalar) {
                            throw fail("invalid \\u escape (a lone low surrogate)")
                        }
                        escaped!.append(contentsOf: Array(String(Character(Unicode.Scalar(scalar)!)).utf8))
                    default:
                        throw fail("invalid escape \\\(describe(i))")
                    }
                    runStart = i
                case 0x00..<0x20:
                    throw fail("raw control character (byte 0x\(String(b, radix: 16, uppercase: true))) in a string; it must be escaped")
                case 0x80...0xff:
                    try utf8()
                default:
                    i += 1
                }
            }
            throw fail("unexpected end of input in a string")
        }

        /// Where the current run of unescaped bytes in a string began.
        private var runStartStorage = 0
        var runStart: Int {
            get { runStartStorage }
            set { runStartStorage = newValue }
        }

        /// Four hex digits after `\u` (i is at the `u`); leaves i after them.
        mutating func hex4() throws(Problem) -> UInt32 {
            guard i + 4 < bytes.count else { throw fail("unexpected end of input in a \\u escape") }
            var v: UInt32 = 0
            for k in 1...4 {
                let c = bytes[i + k]
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
                default:
                    i += k
                    throw fail("invalid \\u escape")
                }
                v = v << 4 | d
            }
            i += 5
            return v
        }

        func isHex(_ b: UInt8) -> Bool {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(b)
                || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(b)
        }

        /// One multi-byte UTF-8 sequence, well-formed (no overlongs, no surrogates, ≤ U+10FFFF).
        mutating func utf8() throws(Problem) {
            let b0 = bytes[i]
            let length: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xbf
            switch b0 {
            case 0xc2...0xdf: length = 2
            case 0xe0: length = 3; low = 0xa0
            case 0xe1...0xec, 0xee...0xef: length = 3
            case 0xed: length = 3; high = 0x9f
            case 0xf0: length = 4; low = 0x90
            case 0xf1...0xf3: length = 4
            case 0xf4: length = 4; high = 0x8f
            default: throw fail("invalid UTF-8 in a string")
            }
            guard i + length <= bytes.count else { throw fail("invalid UTF-8 in a string (truncated)") }
            let b1 = bytes[i + 1]
            guard b1 >= low && b1 <= high else { throw fail("invalid UTF-8 in a string") }
            for k in 2..<length where bytes[i + k] & 0xc0 != 0x80 {
                throw fail("invalid UTF-8 in a string")
            }
            i += length
        }

        mutating func number() throws(Problem) -> JSONValue {
            let start = i
            var integral = true
            if bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, isDigit(bytes[i]) else { throw fail("invalid number") }
            if bytes[i] == UInt8(ascii: "0") {
                i += 1
                if i < bytes.count && isDigit(bytes[i]) { throw fail("invalid number (leading zero)") }
            } else {
                while i < bytes.count && isDigit(bytes[i]) { i += 1 }
            }
            if i < bytes.count && bytes[i] == UInt8(ascii: ".") {
                integral = false
                i += 1
                guard i < bytes.count, isDigit(bytes[i]) else { throw fail("invalid number (no digits after '.')") }
                while i < bytes.count && isDigit(bytes[i]) { i += 1 }
            }
            if i < bytes.count && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
                integral = false
                i += 1
                if i < bytes.count && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) { i += 1 }
                guard i < bytes.count, isDigit(bytes[i]) else { throw fail("invalid number (no exponent digits)") }
                while i < bytes.count && isDigit(bytes[i]) { i += 1 }
            }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
            if integral, let n = Int64(text) { return .int(n) }
            return .double(Double(text) ?? .nan)
        }

        func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
    }
}
