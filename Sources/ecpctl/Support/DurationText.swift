import ArgumentParser
import Foundation

/// Durations on the command line, `500ms`, `5s`, `2m`, `1h30m`, and back for a person.
enum DurationText {
    /// The units a duration may use, longest suffix first (so `ms` is never read as `m`).
    private static let units: [(suffix: String, milliseconds: Double)] = [
        ("ms", 1), ("h", 3_600_000), ("m", 60_000), ("s", 1000),
    ]

    /// What a duration looks like, for error messages.
    static let examples = "a number and a unit (ms, s, m, h), e.g. 500ms, 5s, 2m, 1h30m"

    /// Milliseconds from `500ms`, `5s`, `1.5s`, `2m`, `1h`, or parts of them one after the
    /// other (`1m30s`); nil for anything else, a bare number included (seconds or
    /// milliseconds? the unit is never guessed).
    static func milliseconds(_ text: String) -> Int? {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        guard !rest.isEmpty else { return nil }
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
            guard !number.isEmpty, number.first != ".", number.last != ".", let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            guard let unit = units.first(where: { rest.hasPrefix($0.suffix) }) else { return nil }
            rest = rest.dropFirst(unit.suffix.count)
            total += value * unit.milliseconds
            guard total <= Double(Int32.max) * 1000 else { return nil }
        }
        return Int(total.rounded())
    }

    /// Reads a duration option's value: milliseconds, or a usage error saying the forms
    /// accepted (ArgumentParser names the option and the value before it).
    @Sendable static func parse(_ text: String) throws -> Int {
        guard let ms = milliseconds(text) else { throw ValidationError("give " + examples) }
        return ms
    }

    /// Milliseconds in the largest unit that says them exactly: `0`, `500ms`, `5s`, `2m`,
    /// `1h`, `1500ms` (what ``milliseconds(_:)`` reads back).
    static func format(milliseconds ms: Int64) -> String {
        if ms == 0 { return "0" }
        if ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }
}
