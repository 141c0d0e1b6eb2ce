import FoundationEssentials

/// Writes JSON text straight into a byte buffer, for the messages every command produces (its
/// ack and its result): measured, Foundation's generic encoder costs several times the rest of
/// a command's path. Other messages use `Codable`.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// A member name; the value written next belongs to it.
    public mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        Self.append("\":", to: &bytes)
        needsComma = false
    }

    /// A member name known only at run time (escaped as needed). `key(_:)` with a literal takes
    /// the static text as it is.
    public mutating func key(dynamic name: String) {
        separate()
        appendEscaped(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func string(_ s: String) {
        separate()
        appendEscaped(s)
        needsComma = true
    }

    public mutating func bool(_ b: Bool) {
        separate()
        if b {
            Self.append("true", to: &bytes)
        } else {
            Self.append("false", to: &bytes)
        }
        needsComma = true
    }

    public mutating func null() {
        separate()
        Self.append("null", to: &bytes)
        needsComma = true
    }

    public mutating func int(_ i: Int64) {
        separate()
        appendDecimal(i)
        needsComma = true
    }

    private mutating func appendDecimal(_ i: Int64) {
        Self.appendDecimal(i, to: &bytes)
    }

    /// An integer's decimal digits, written without an intermediate string.
    public static func appendDecimal(_ i: Int64, to bytes: inout [UInt8]) {
        if i < 0 { bytes.append(UInt8(ascii: "-")) }
        var magnitude = i.magnitude
        if magnitude < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(magnitude))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var n = 20
            while magnitude > 0 {
                n -= 1
                digits[n] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: digits[n...]))
        }
    }

    public mutating func double(_ d: Double) {
        separate()
        if d.isFinite {
            let thousandths = (d * 1000).rounded()
            if d == d.rounded(.towardZero) && abs(d) < 1e15 {
                appendDecimal(Int64(d))
            } else if abs(thousandths) < 1e15 && thousandths / 1000 == d {
                // Durations in milliseconds, rounded to microseconds: `12.345`, written directly.
                let t = Int64(thousandths)
                if t < 0 { bytes.append(UInt8(ascii: "-")) }
                appendDecimal(Int64(t.magnitude / 1000))
                var fraction = Int(t.magnitude % 1000)
                bytes.append(UInt8(ascii: "."))
                var divisor = 100
                while fraction > 0 {
                    bytes.append(UInt8(ascii: "0") + UInt8(fraction / divisor))
                    fraction %= divisor
                    divisor /= 10
                }
            } else {
                bytes.append(contentsOf: d.description.utf8)
            }
        } else {
            bytes.append(contentsOf: Array("null".utf8))
        }
        needsComma = true
    }

    /// Bytes that are already a complete JSON value.
    public mutating func raw(_ json: [UInt8]) {
        separate()
        bytes.append(contentsOf: json)
        needsComma = true
    }

    /// Bytes that are already a complete JSON value.
    public mutating func raw(_ json: Data) {
        separate()
        bytes.append(contentsOf: json)
        needsComma = true
    }

    public mutating func value(_ v: JSONValue) {
        switch v {
        case .null: null()
        case .bool(let b): bool(b)
        case .int(let i): int(i)
        case .double(let d): double(d)
        case .string(let s): string(s)
        case .array(let a):
            beginArray()
            for element in a { value(element) }
            endArray()
        case .object(let o):
            beginObject()
            for (k, element) in o {
                key(dynamic: k)
                value(element)
            }
            endObject()
        }
    }

    /// Appends ASCII text known at compile time, without an intermediate array.
    @inline(__always)
    public static func append(_ text: StaticString, to bytes: inout [UInt8]) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    private static func hex(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    private mutating func appendEscaped(_ s: String) {
        Self.appendQuoted(s, to: &bytes)
    }

    /// Appends `s` as a quoted JSON string (what JSON requires escaped, escaped).
    public static func appendQuoted(_ s: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            var start = 0
            for (i, b) in utf8.enumerated() where b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<i]))
                switch b {
                case UInt8(ascii: "\""): Self.append("\\\"", to: &bytes)
                case UInt8(ascii: "\\"): Self.append("\\\\", to: &bytes)
                case 0x0a: Self.append("\\n", to: &bytes)
                case 0x0d: Self.append("\\r", to: &bytes)
                case 0x09: Self.append("\\t", to: &bytes)
                default:
                    Self.append("\\u00", to: &bytes)
                    bytes.append(Self.hex(b >> 4))
                    bytes.append(Self.hex(b & 0x0f))
                }
                start = i + 1
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...]))
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

extension AcceptedMessage {
    /// The message as JSON, written directly.
    public func jsonData() -> Data { Data(jsonBytes()) }

    /// The message as JSON bytes, written directly.
    public func jsonBytes() -> [UInt8] {
        var w = JSONWriter(capacity: 96)
        w.beginObject()
        w.key("type"); w.string(type)
        w.key("id"); w.string(id)
        w.key("op"); w.string(op)
        if let machine { w.key("machine"); w.string(machine) }
        w.endObject()
        return w.bytes
    }
}

extension ResultMessage {
    /// The message as JSON, written directly; the inline error (rare) goes through `Codable`.
    public func jsonData() -> Data { Data(jsonBytes()) }

    /// The message as JSON bytes, written directly.
    public func jsonBytes() -> [UInt8] {
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.key("type"); w.string(type)
        w.key("id"); w.string(id)
        w.key("op"); w.string(op)
        if let machine { w.key("machine"); w.string(machine) }
        w.key("ok"); w.bool(ok)
        if let changed { w.key("changed"); w.bool(changed) }
        if let state { w.key("state"); w.string(state) }
        if let data {
            w.key("data"); w.value(data)
        } else if let dataJSON {
            w.key("data"); w.raw(dataJSON)
        }
        if let error {
            w.key("error")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.withoutEscapingSlashes]
            w.raw((try? encoder.encode(error)) ?? Data("null".utf8))
        }
        w.key("duration_ms"); w.double(durationMs)
        if let duplicate { w.key("duplicate"); w.bool(duplicate) }
        if let saved { w.key("saved"); w.bool(saved) }
        w.endObject()
        return w.bytes
    }
}

extension MachineEventMessage {
    /// The message as JSON, written directly (one per lifecycle event); the same fields as its
    /// `Codable` form, which leaves out a nil `state`.
    public func jsonData() -> Data { Data(jsonBytes()) }

    /// The message as JSON bytes, written directly.
    public func jsonBytes() -> [UInt8] {
        var w = JSONWriter(capacity: 160)
        w.beginObject()
        w.key("type"); w.string(type)
        w.key("machine"); w.string(machine)
        w.key("uuid"); w.string(uuid)
        w.key("event"); w.string(event)
        w.key("detail"); w.string(detail)
        if let state { w.key("state"); w.string(state) }
        w.endObject()
        return w.bytes
    }
}
