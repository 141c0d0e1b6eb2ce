/// A strict, one-pass check of JSON syntax (RFC 8259) that allocates nothing.
///
/// Foundation's decoder is lenient (it takes trailing commas and raw control characters in
/// strings); a command must be strict JSON, so this check runs first. It also bounds the nesting
/// depth before any recursive parser sees the document.
enum JSONSyntax {
    /// What is wrong, at which byte offset.
    enum Problem: Equatable {
        case syntax(String, offset: Int)
        case tooDeep(Int)
    }

    static func check(_ bytes: UnsafeRawBufferPointer, maxDepth: Int) -> Problem? {
        var p = Parser(bytes: bytes, maxDepth: maxDepth)
        return p.run()
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

        mutating func run() -> Problem? {
            skipSpace()
            if let p = value() { return p }
            skipSpace()
            if i < bytes.count { return fail("unexpected \(describe(i)) after the document") }
            return nil
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

        mutating func value() -> Problem? {
            guard i < bytes.count else { return fail("unexpected end of input, expected a value") }
            switch bytes[i] {
            case UInt8(ascii: "{"): return object()
            case UInt8(ascii: "["): return array()
            case UInt8(ascii: "\""): return string()
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number()
            default: return fail("unexpected \(describe(i)), expected a value")
            }
        }

        mutating func literal(_ word: StaticString) -> Problem? {
            let n = word.utf8CodeUnitCount
            guard i + n <= bytes.count else { return fail("unexpected end of input in a literal") }
            for k in 0..<n where bytes[i + k] != word.utf8Start[k] {
                return fail("unexpected \(describe(i + k)) in a literal")
            }
            i += n
            return nil
        }

        mutating func enter() -> Problem? {
            depth += 1
            return depth > maxDepth ? .tooDeep(depth) : nil
        }

        mutating func object() -> Problem? {
            if let p = enter() { return p }
            i += 1
            skipSpace()
            if i < bytes.count && bytes[i] == UInt8(ascii: "}") {
                i += 1
                depth -= 1
                return nil
            }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else {
                    return fail("unexpected \(describe(i)), expected a member name in quotes")
                }
                if let p = string() { return p }
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else {
                    return fail("unexpected \(describe(i)), expected ':'")
                }
                i += 1
                skipSpace()
                if let p = value() { return p }
                skipSpace()
                guard i < bytes.count else { return fail("unexpected end of input in an object") }
                if bytes[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                if bytes[i] == UInt8(ascii: "}") {
                    i += 1
                    depth -= 1
                    return nil
                }
                return fail("unexpected \(describe(i)), expected ',' or '}'")
            }
        }

        mutating func array() -> Problem? {
            if let p = enter() { return p }
            i += 1
            skipSpace()
            if i < bytes.count && bytes[i] == UInt8(ascii: "]") {
                i += 1
                depth -= 1
                return nil
            }
            while true {
                skipSpace()
                if let p = value() { return p }
                skipSpace()
                guard i < bytes.count else { return fail("unexpected end of input in an array") }
                if bytes[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                if bytes[i] == UInt8(ascii: "]") {
                    i += 1
                    depth -= 1
                    return nil
                }
                return fail("unexpected \(describe(i)), expected ',' or ']'")
            }
        }

        mutating func string() -> Problem? {
            i += 1
            while i < bytes.count {
                let b = bytes[i]
                switch b {
                case UInt8(ascii: "\""):
                    i += 1
                    return nil
                case UInt8(ascii: "\\"):
                    i += 1
                    guard i < bytes.count else { return fail("unexpected end of input in an escape") }
                    switch bytes[i] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
                        UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        i += 1
                    case UInt8(ascii: "u"):
                        guard i + 4 < bytes.count else { return fail("unexpected end of input in a \\u escape") }
                        for k in 1...4 where !isHex(bytes[i + k]) {
                            i += k
                            return fail("invalid \\u escape")
                        }
                        i += 5
                    default:
                        return fail("invalid escape \\\(describe(i))")
                    }
                case 0x00..<0x20:
                    return fail("raw control character (byte 0x\(String(b, radix: 16, uppercase: true))) in a string; it must be escaped")
                case 0x80...0xff:
                    if let p = utf8() { return p }
                default:
                    i += 1
                }
            }
            return fail("unexpected end of input in a string")
        }

        func isHex(_ b: UInt8) -> Bool {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(b)
                || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(b)
        }

        /// One multi-byte UTF-8 sequence, well-formed (no overlongs, no surrogates, ≤ U+10FFFF).
        mutating func utf8() -> Problem? {
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
            default: return fail("invalid UTF-8 in a string")
            }
            guard i + length <= bytes.count else { return fail("invalid UTF-8 in a string (truncated)") }
            let b1 = bytes[i + 1]
            guard b1 >= low && b1 <= high else { return fail("invalid UTF-8 in a string") }
            for k in 2..<length where bytes[i + k] & 0xc0 != 0x80 {
                return fail("invalid UTF-8 in a string")
            }
            i += length
            return nil
        }

        mutating func number() -> Problem? {
            if bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, isDigit(bytes[i]) else { return fail("invalid number") }
            if bytes[i] == UInt8(ascii: "0") {
                i += 1
                if i < bytes.count && isDigit(bytes[i]) { return fail("invalid number (leading zero)") }
            } else {
                while i < bytes.count && isDigit(bytes[i]) { i += 1 }
            }
            if i < bytes.count && bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard i < bytes.count, isDigit(bytes[i]) else { return fail("invalid number (no digits after '.')") }
                while i < bytes.count && isDigit(bytes[i]) { i += 1 }
            }
            if i < bytes.count && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
                i += 1
                if i < bytes.count && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) { i += 1 }
                guard i < bytes.count, isDigit(bytes[i]) else { return fail("invalid number (no exponent digits)") }
                while i < bytes.count && isDigit(bytes[i]) { i += 1 }
            }
            return nil
        }

        func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }
    }
}
