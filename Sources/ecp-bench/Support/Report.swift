import Foundation
import Histogram

/// A result as a person reads it: a title line, then one aligned `label  value` row per figure.
struct Table {
    var title: String
    var rows: [(label: String, value: String)] = []

    init(_ title: String) { self.title = title }

    mutating func add(_ label: String, _ value: String) { rows.append((label, value)) }

    func render() -> String {
        let width = rows.map(\.label.count).max() ?? 0
        var out = title + "\n"
        for row in rows {
            out += "  " + row.label + String(repeating: " ", count: width - row.label.count + 2) + row.value + "\n"
        }
        return out
    }
}

/// Prints the result: the table, or with `json` one JSON object on one line.
func emit<T: Encodable>(_ table: Table, json value: T, asJSON: Bool) {
    if asJSON {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        try? FileHandle.standardOutput.write(contentsOf: data + Data("\n".utf8))
    } else {
        try? FileHandle.standardOutput.write(contentsOf: Data(table.render().utf8))
    }
}

/// A line on standard error.
func note(_ text: String) {
    try? FileHandle.standardError.write(contentsOf: Data("ecp-bench: \(text)\n".utf8))
}

/// Latency percentiles in microseconds, from a histogram of nanoseconds.
struct LatencySummary: Codable {
    var count: UInt64
    var min: Double
    var mean: Double
    var p50: Double
    var p90: Double
    var p99: Double
    var p999: Double
    var max: Double

    enum CodingKeys: String, CodingKey {
        case count, min, mean, p50, p90, p99, max
        case p999 = "p99_9"
    }

    init(_ h: Histogram<UInt64>) {
        func us(_ ns: UInt64) -> Double { (Double(ns) / 100).rounded() / 10 }
        count = h.totalCount
        guard count > 0 else {
            min = 0; mean = 0; p50 = 0; p90 = 0; p99 = 0; p999 = 0; max = 0
            return
        }
        min = us(h.min)
        mean = (h.mean / 100).rounded() / 10
        p50 = us(h.valueAtPercentile(50))
        p90 = us(h.valueAtPercentile(90))
        p99 = us(h.valueAtPercentile(99))
        p999 = us(h.valueAtPercentile(99.9))
        max = us(h.maxRecorded)
    }

    /// Table rows: `latency p50  123.4 µs` …
    func rows(into table: inout Table) {
        guard count > 0 else {
            table.add("latency", "no results")
            return
        }
        let values = [("p50", p50), ("p90", p90), ("p99", p99), ("p99.9", p999), ("max", max)]
        let width = values.map { Format.us($0.1).count }.max() ?? 0
        for (name, value) in values {
            let text = Format.us(value)
            table.add("latency \(name)", String(repeating: " ", count: width - text.count) + text + " µs")
        }
    }
}

/// Number formatting for tables.
enum Format {
    static func us(_ value: Double) -> String { String(format: "%.1f", value) }
    static func ms(_ value: Double) -> String { String(format: "%.1f ms", value) }
    static func ms(_ value: Double?) -> String { value.map { ms($0) } ?? "not seen" }
    static func seconds(_ value: Double) -> String { String(format: "%.3f s", value) }
    static func rate(_ value: Double) -> String { String(format: "%.0f", value) }

    /// KiB as `12.3 MiB (12595 KiB)`.
    static func kib(_ value: Int) -> String { String(format: "%.1f MiB (%d KiB)", Double(value) / 1024, value) }

    /// A signed KiB difference: `+1.2 MiB (+1228 KiB)`.
    static func kibDelta(_ value: Int) -> String {
        let sign = value < 0 ? "-" : "+"
        return sign + String(format: "%.1f MiB (", Double(abs(value)) / 1024) + sign + "\(abs(value)) KiB)"
    }

    /// The median of some values (the mean of the middle two for an even count).
    static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// Rounds to a tenth, for JSON.
    static func tenth(_ value: Double) -> Double { (value * 10).rounded() / 10 }
}
