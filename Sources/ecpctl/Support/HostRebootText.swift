import ECPProtocol
import Foundation

/// The words for a machine's policy (`set_policy`, and `report`'s machines).
enum PolicyText {
    /// The members of a policy in the order they are printed; others a newer worker adds
    /// follow, sorted.
    static let members = ["order", "up_delay_ms", "retries", "host_stop"]

    /// `web1: policy` and the policy's members, aligned.
    static func lines(_ result: ResultMessage, data: JSONValue) -> [String] {
        let name = Sanitize.cell(result.machine)
        guard let policy = data["policy"]?.objectValue else {
            return ["\(name): policy (the worker sent none)"] + (data == .object([:]) ? [] : ["  data: " + data.displayText])
        }
        var pairs: [(String, String)] = []
        for key in members + policy.keys.filter({ !members.contains($0) }).sorted() {
            guard let value = policy[key] else { continue }
            pairs.append((Sanitize.display(key), text(key, value)))
        }
        return ["\(name): policy"] + alignedPairs(pairs, indent: "  ")
    }

    /// One member's value for a person: `none` for no order, a duration with its unit.
    static func text(_ key: String, _ value: JSONValue) -> String {
        switch (key, value) {
        case ("order", .null): return "none"
        case ("up_delay_ms", _):
            guard let ms = value.intValue else { return value.displayText }
            return ms == 0 ? "0 (none)" : "\(ms) (\(DurationText.format(milliseconds: ms)))"
        default: return value.displayText
        }
    }

    /// A policy's cells for the report's machine table: ORDER, UP-DELAY, RETRIES, HOST-STOP.
    static func cells(_ policy: JSONValue?) -> [String] {
        guard let policy, policy.objectValue != nil else { return ["-", "-", "-", "-"] }
        let upDelay = policy["up_delay_ms"].map { value in
            value.intValue.map { DurationText.format(milliseconds: $0) } ?? value.displayText
        }
        return [policy.text("order"), upDelay ?? "-", policy.text("retries"), policy.text("host_stop")]
    }
}

/// The words for a host stop's result: its outcomes and counts.
enum HostStopText {
    /// The actions of a host stop in the order their counts are printed.
    static let actions = ["shut_down", "forced", "saved", "destroyed", "left_running", "already_off", "failed"]

    /// A line for the host stop, a table of its outcomes, and its counts.
    static func lines(_ summary: JSONValue) -> [String] {
        let total = summary["total"]?.intValue ?? Int64(summary["outcomes"]?.arrayValue?.count ?? 0)
        var lines = [
            "host stop \(summary.text("host_stop_id")): \(total) machine\(total == 1 ? "" : "s"), \(durationText(summary["duration_ms"]))"
        ]
        let outcomes = summary["outcomes"]?.arrayValue ?? []
        var table = TextTable(headers: ["MACHINE", "ORDER", "FOUND", "MODE", "ACTION", "DURATION", "ERROR"])
        table.rows = outcomes.map { outcome in
            [
                outcome.text("machine"), outcome.text("order"), outcome.text("found"), outcome.text("mode"),
                outcome.text("action"), durationText(outcome["duration_ms"]), errorSummary(outcome["error"]),
            ]
        }
        lines += table.render()
        if outcomes.isEmpty { lines.append("(no running machines)") }
        let counts = summary["counts"]?.objectValue ?? [:]
        var pairs: [(String, String)] = []
        for key in actions + counts.keys.filter({ !actions.contains($0) }).sorted() {
            pairs.append((Sanitize.display(key), counts[key]?.displayText ?? "0"))
        }
        lines += alignedPairs(pairs, indent: "  ")
        return lines
    }

    /// The machines whose outcome is `failed`: their count (the summary's, or the outcomes')
    /// and their names.
    static func failedMachines(_ summary: JSONValue) -> (count: Int, names: [String]) {
        let names = (summary["outcomes"]?.arrayValue ?? [])
            .filter { $0["action"]?.stringValue == "failed" }
            .map { $0.text("machine") }
        let counted = summary["counts"]?["failed"]?.intValue.map { Int(clamping: $0) } ?? 0
        return (max(counted, names.count), names)
    }

    /// `0.8s`, `2m 05s` from milliseconds; `-` when absent.
    static func durationText(_ value: JSONValue?) -> String {
        guard let ms = value?.doubleValue else { return "-" }
        return Human.duration(seconds: ms / 1000)
    }

    /// An error object's summary (an E2LibvirtError or a worker error), or its text; `-` for none.
    static func errorSummary(_ error: JSONValue?) -> String {
        guard let error, error != .null else { return "-" }
        return error["summary"]?.displayText ?? error.displayText
    }
}
