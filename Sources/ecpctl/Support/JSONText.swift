import ECPProtocol
import Foundation

extension JSONValue {
    /// The value for a person, sanitized: strings as they are (escaped), numbers as numbers,
    /// `null` as `-`, arrays and objects as compact JSON.
    var displayText: String {
        switch self {
        case .null: return "-"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return Self.format(d)
        case .string(let s): return Sanitize.display(s)
        case .array, .object: return Sanitize.display(compactJSON)
        }
    }

    /// The value as compact JSON with sorted keys.
    var compactJSON: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self) else { return "?" }
        return String(decoding: data, as: UTF8.self)
    }

    /// A string member, sanitized, or `-`.
    func text(_ key: String) -> String {
        self[key]?.displayText ?? "-"
    }

    /// A number without a needless `.0` tail.
    static func format(_ d: Double) -> String {
        if d.rounded() == d && abs(d) < 1e15 { return String(Int64(d)) }
        return String(d)
    }

    /// Decodes a document, or nil when it is not JSON.
    static func parse(_ data: Data) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: data)
    }
}

/// Durations and sizes for a person.
enum Human {
    /// `1h 02m 03s`, `4m 05s`, `6.2s`.
    static func duration(seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        if seconds < 60 { return String(format: "%.1fs", seconds) }
        let total = Int(seconds)
        let (days, hours, minutes, secs) = (total / 86_400, total / 3600 % 24, total / 60 % 60, total % 60)
        if days > 0 { return String(format: "%dd %02dh %02dm %02ds", days, hours, minutes, secs) }
        if hours > 0 { return String(format: "%dh %02dm %02ds", hours, minutes, secs) }
        return String(format: "%dm %02ds", minutes, secs)
    }

    /// `512.0 MiB`, `2.0 GiB` from KiB.
    static func size(kib: Int64) -> String {
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var value = Double(kib)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return String(format: "%.1f", value) + " " + units[unit]
    }
}
