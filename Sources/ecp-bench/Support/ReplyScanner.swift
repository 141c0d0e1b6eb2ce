import Foundation

/// The top-level fields of a reply that the load loop needs, read in one pass over the bytes
/// without building the document: at tens of thousands of replies a second, decoding each one
/// whole would cost the bench more CPU than the worker spends on it, on the same cores.
struct ScannedReply {
    /// Byte range of the top-level `id` string's content (escape-free ids only: the bench's own).
    var id: Range<Int>?
    /// The top-level `ok`.
    var ok: Bool?
    /// The top-level `changed`.
    var changed: Bool?
    /// Whether `type` is `request_error`.
    var isRequestError = false
}

enum ReplyScanner {
    /// Scans a JSON object's top level; nil when the bytes are not a well-formed object.
    static func scan(_ bytes: UnsafeRawBufferPointer) -> ScannedReply? {
        var p = Parser(bytes: bytes)
        return p.object()
    }

    /// The numeric suffix of `id` after `prefix` (`<prefix><digits>`), or nil.
    static func index(_ bytes: UnsafeRawBufferPointer, id: Range<Int>, prefix: [UInt8]) -> Int? {
        guard id.count > prefix.count, id.count - prefix.count <= 18 else { return nil }
        for (k, b) in prefix.enumerated() where bytes[id.lowerBound + k] != b { return nil }
        var n = 0
        for i in (id.lowerBound + prefix.count)..<id.upperBound {
            let b = bytes[i]
            guard b >= 0x30, b <= 0x39 else { return nil }
            n = n * 10 + Int(b - 0x30)
        }
        return n
    }

    /// Whether the id's bytes begin with `prefix`.
    static func hasPrefix(_ bytes: UnsafeRawBufferPointer, id: Range<Int>, prefix: [UInt8]) -> Bool {
        guard id.count >= prefix.count else { return false }
        for (k, b) in prefix.enumerated() where bytes[id.lowerBound + k] != b { return false }
        return true
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        var i = 0

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        mutating func space() {
            while i < bytes.count {
                switch bytes[i] {
                case 0x20, 0x09, 0x0A, 0x0D: i += 1
                default: return
                }
            }
        }

        mutating func expect(_ b: UInt8) -> Bool {
            space()
            guard i < bytes.count, bytes[i] == b else { return false }
            i += 1
            return true
        }

        /// A string at `i`: returns its content's range and whether it holds escapes.
        mutating func string() -> (Range<Int>, Bool)? {
            guard i < bytes.count, bytes[i] == 0x22 else { return nil }
            i += 1
            let start = i
            var escaped = false
            while i < bytes.count {
                switch bytes[i] {
                case 0x22:
                    let range = start..<i
                    i += 1
                    return (range, escaped)
                case 0x5C:
                    escaped = true
                    i += 2
                default:
                    i += 1
                }
            }
            return nil
        }

        /// Skips any value: strings, numbers, literals, and nested containers.
        mutating func skipValue() -> Bool {
            space()
            guard i < bytes.count else { return false }
            switch bytes[i] {
            case 0x22:
                return string() != nil
            case 0x7B, 0x5B:
                var depth = 0
                while i < bytes.count {
                    switch bytes[i] {
                    case 0x22:
                        guard string() != nil else { return false }
                        continue
                    case 0x7B, 0x5B:
                        depth += 1
                    case 0x7D, 0x5D:
                        depth -= 1
                        if depth == 0 {
                            i += 1
                            return true
                        }
                    default:
                        break
                    }
                    i += 1
                }
                return false
            default:
                let start = i
                while i < bytes.count {
                    switch bytes[i] {
                    case 0x2C, 0x7D, 0x5D, 0x20, 0x09, 0x0A, 0x0D: return i > start
                    default: i += 1
                    }
                }
                return i > start
            }
        }

        /// `true`, `false`, or nil for anything else (skipped).
        mutating func bool() -> Bool? {
            space()
            if matches("true") { return true }
            if matches("false") { return false }
            _ = skipValue()
            return nil
        }

        mutating func matches(_ literal: StaticString) -> Bool {
            let n = literal.utf8CodeUnitCount
            guard i + n <= bytes.count else { return false }
            let base = literal.utf8Start
            for k in 0..<n where bytes[i + k] != base[k] { return false }
            i += n
            return true
        }

        func equals(_ range: Range<Int>, _ literal: StaticString) -> Bool {
            let n = literal.utf8CodeUnitCount
            guard range.count == n else { return false }
            let base = literal.utf8Start
            for k in 0..<n where bytes[range.lowerBound + k] != base[k] { return false }
            return true
        }

        mutating func object() -> ScannedReply? {
            guard expect(0x7B) else { return nil }
            var reply = ScannedReply()
            space()
            if i < bytes.count, bytes[i] == 0x7D { return reply }
            while true {
                space()
                guard let (key, _) = string(), expect(0x3A) else { return nil }
                space()
                if equals(key, "id") {
                    if i < bytes.count, bytes[i] == 0x22 {
                        guard let (value, escaped) = string() else { return nil }
                        if !escaped { reply.id = value }
                    } else if !skipValue() {
                        return nil
                    }
                } else if equals(key, "ok") {
                    reply.ok = bool()
                } else if equals(key, "changed") {
                    reply.changed = bool()
                } else if equals(key, "type") {
                    if i < bytes.count, bytes[i] == 0x22 {
                        guard let (value, _) = string() else { return nil }
                        reply.isRequestError = equals(value, "request_error")
                    } else if !skipValue() {
                        return nil
                    }
                } else if !skipValue() {
                    return nil
                }
                space()
                guard i < bytes.count else { return nil }
                if bytes[i] == 0x2C {
                    i += 1
                    continue
                }
                if bytes[i] == 0x7D { return reply }
                return nil
            }
        }
    }
}
