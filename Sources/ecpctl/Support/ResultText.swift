import ECPProtocol
import Foundation

/// The words a person reads for results, by op.
enum ResultText {
    // MARK: success

    /// The lines for a successful result.
    static func lines(_ result: ResultMessage, reply: JSONValue) -> [String] {
        let data = result.data ?? .object([:])
        var lines: [String]
        switch Op(rawValue: result.op) {
        case .start?, .shutdown?, .destroy?, .reboot?, .suspend?, .resume?, .undefine?:
            lines = [machineChange(result)]
        case .define?:
            let name = data["name"]?.displayText ?? Sanitize.cell(result.machine)
            lines = ["\(name): defined (uuid \(data.text("uuid")))"]
        case .status?:
            lines = statusLines(result, data: data)
        case .list?:
            lines = listLines(data)
        case .ping?:
            let uptime = data["uptime_s"]?.doubleValue
            let worker = reply["worker"]?.displayText ?? "worker"
            lines = ["\(worker): up \(uptime.map { Human.duration(seconds: $0) } ?? "?") (uptime_s \(data.text("uptime_s")))"]
        case .restore?:
            lines = restoreSummaryLines(data, title: "restore")
        case .report?:
            lines = reportLines(data)
        case .stats?:
            lines = StatsTable.lines(data, before: nil, seconds: 0)
        case .replay?:
            let count = data["messages"]?.arrayValue?.count ?? 0
            lines = ["replay: \(count) message\(count == 1 ? "" : "s"), next_seq \(data.text("next_seq")), more \(data.text("more")), oldest_seq \(data.text("oldest_seq")), truncated \(data.text("truncated"))"]
        case .setPolicy?:
            lines = PolicyText.lines(result, data: data)
        case .hostStop?:
            lines = HostStopText.lines(data)
        case nil:
            lines = ["\(Sanitize.display(result.op)): ok"] + (data == .object([:]) ? [] : ["  data: " + data.displayText])
        }
        if result.duplicate == true {
            lines[0] += " [duplicate id: the result of the first run]"
        }
        if result.saved == false {
            let previous = result.op == Op.setPolicy.rawValue ? "use the previous policy" : "restore the previous state"
            lines[0] += " [not saved: the state table could not be written; a host reboot now would \(previous)]"
        }
        return lines
    }

    /// `web1: started (running)` or `web1: already running (no change)`.
    static func machineChange(_ result: ResultMessage) -> String {
        let name = Sanitize.cell(result.machine)
        let state = result.state.map(Sanitize.display)
        if result.changed == false {
            return "\(name): already \(words(forState: state)) (no change)"
        }
        let done: String
        switch Op(rawValue: result.op) {
        case .start?: done = "started"
        case .shutdown?: done = state == "shutoff" ? "shut down" : "asked to shut down"
        case .destroy?: done = "destroyed"
        case .reboot?: done = "asked to reboot"
        case .suspend?: done = "suspended"
        case .resume?: done = "resumed"
        case .undefine?: done = "undefined"
        default: done = Sanitize.display(result.op) + " done"
        }
        return "\(name): \(done) (\(state ?? "state unknown"))"
    }

    /// A state name as words: `shutoff` is "shut off".
    static func words(forState state: String?) -> String {
        switch state {
        case "shutoff"?: return "shut off"
        case "pmsuspended"?: return "suspended to memory"
        case let state?: return state
        case nil: return "in that state"
        }
    }

    static func statusLines(_ result: ResultMessage, data: JSONValue) -> [String] {
        var fields = data.objectValue ?? [:]
        var pairs: [(String, String)] = [("machine", Sanitize.cell(result.machine))]
        if fields["state"] == nil, let state = result.state { fields["state"] = .string(state) }
        let order = ["state", "reason", "vcpus", "memory_kib", "max_memory_kib", "cpu_time_ns", "persistent", "autostart"]
        for key in order + fields.keys.filter({ !order.contains($0) }).sorted() {
            guard let value = fields[key] else { continue }
            var text: String
            switch value {
            case .bool(let b): text = b ? "yes" : "no"
            default: text = value.displayText
            }
            if key.hasSuffix("memory_kib"), let kib = value.intValue {
                text += " (\(Human.size(kib: kib)))"
            } else if key == "cpu_time_ns", let ns = value.doubleValue {
                text += " (\(Human.duration(seconds: ns / 1e9)))"
            }
            pairs.append((Sanitize.display(key), text))
        }
        return alignedPairs(pairs)
    }

    static func listLines(_ data: JSONValue) -> [String] {
        let machines = data["machines"]?.arrayValue ?? []
        var table = TextTable(headers: ["NAME", "STATE", "UUID"])
        table.rows = machines
            .map { [$0.text("name"), $0.text("state"), $0.text("uuid")] }
            .sorted { $0[0] < $1[0] }
        return table.render() + (machines.isEmpty ? ["(no machines)"] : [])
    }

    /// The lines of a `restore.summary` object.
    static func restoreSummaryLines(_ summary: JSONValue, title: String) -> [String] {
        let total = summary["total"]?.intValue ?? 0
        var lines = [
            "\(title) \(summary.text("restore_id")) (trigger \(summary.text("trigger"))): table \(summary.text("table")), "
                + "\(total) machine\(total == 1 ? "" : "s"), \(summary.text("duration_ms")) ms"
        ]
        var pairs: [(String, String)] = [("state_file", summary.text("state_file"))]
        if let error = summary["error"] {
            if error["summary"] != nil {
                pairs.append(("error", error.text("summary")))
                if error["file"] != nil { pairs.append(("kept_aside_as", error.text("file"))) }
            } else {
                pairs.append(("error", summary.text("error")))
            }
        }
        let counts = summary["counts"]?.objectValue ?? [:]
        let order = ["started", "resumed", "already_running", "missing", "skipped", "failed"]
        for key in order + counts.keys.filter({ !order.contains($0) }).sorted() {
            pairs.append((Sanitize.display(key), counts[key]?.displayText ?? "0"))
        }
        lines += alignedPairs(pairs, indent: "  ")
        return lines
    }

    static func reportLines(_ data: JSONValue) -> [String] {
        var lines: [String] = []
        if let summary = data["restore"], summary != .null {
            lines += restoreSummaryLines(summary, title: "last restore")
        } else {
            lines.append("last restore: none")
        }
        let outcomes = data["outcomes"]?.arrayValue ?? []
        // ORDER and ATTEMPTS only when a worker with policies sent them; a restored
        // managed save says so in ACTION.
        let withOrder = outcomes.contains { $0["order"] != nil }
        let withAttempts = outcomes.contains { $0["attempts"] != nil }
        var outcomeTable = TextTable(
            headers: ["MACHINE"] + (withOrder ? ["ORDER"] : []) + ["DESIRED", "FOUND", "ACTION"]
                + (withAttempts ? ["ATTEMPTS"] : []) + ["ERROR"])
        outcomeTable.rows = outcomes.map { outcome in
            var action = outcome.text("action")
            if outcome["from_save"]?.boolValue == true { action += " (from save)" }
            return [outcome.text("machine")] + (withOrder ? [outcome.text("order")] : [])
                + [outcome.text("desired"), outcome.text("found"), action]
                + (withAttempts ? [outcome.text("attempts")] : [])
                + [outcome["error"]?["summary"]?.displayText ?? "-"]
        }
        lines.append("")
        lines += outcomeTable.render()
        if outcomes.isEmpty { lines.append("(no outcomes)") }

        let machines = data["machines"]?.objectValue ?? [:]
        lines.append("")
        lines.append("state table: \(machines.count) machine\(machines.count == 1 ? "" : "s")")
        // The policy columns only when the worker keeps policies (it then sends every
        // machine's effective one).
        let withPolicy = machines.values.contains { $0["policy"] != nil }
        var machineTable = TextTable(
            headers: ["NAME", "UUID", "DESIRED", "OBSERVED"]
                + (withPolicy ? ["ORDER", "UP-DELAY", "RETRIES", "HOST-STOP"] : []) + ["UPDATED"])
        machineTable.rows = machines
            .map { uuid, entry in
                [entry.text("name"), Sanitize.display(uuid), entry.text("desired"), entry.text("observed")]
                    + (withPolicy ? PolicyText.cells(entry["policy"]) : []) + [entry.text("updated_at")]
            }
            .sorted { ($0[0], $0[1]) < ($1[0], $1[1]) }
        lines += machineTable.render()
        return lines
    }

    // MARK: failure

    /// The lines for a failed result: the summary first, then the details.
    static func failureLines(_ result: ResultMessage, style: Style) -> [String] {
        let command = [result.id, result.op, result.machine ?? ""].map(Sanitize.display).joined(separator: " ")
            .trimmingCharacters(in: .whitespaces)
        switch result.error {
        case .libvirt(let e)?:
            return [style.red(Sanitize.display(e.summary))]
                + alignedPairs(
                    [
                        ("code_name", "\(Sanitize.display(e.codeName)) (\(e.code))"),
                        ("domain", "\(Sanitize.display(e.domainName)) (\(e.domain))"),
                        ("category", Sanitize.display(e.category)),
                        ("retryable", e.retryable ? "yes" : "no"),
                        ("libvirt", Sanitize.cell(e.message)),
                        ("command", command),
                    ], indent: "  ")
        case .worker(let w)?:
            var pairs = [
                ("type", Sanitize.display(w.type)),
                ("category", Sanitize.display(w.category)),
                ("retryable", w.retryable ? "yes" : "no"),
                ("message", Sanitize.display(w.message)),
            ]
            if let timeout = w.timeoutMs { pairs.append(("timeout_ms", String(timeout))) }
            pairs.append(("command", command))
            return [style.red(Sanitize.display(w.summary))] + alignedPairs(pairs, indent: "  ")
        case nil:
            return [style.red("\(command): failed, and the worker gave no error record")]
        }
    }

    /// The lines for a `request_error`.
    static func requestErrorLines(_ refusal: RequestErrorMessage, style: Style) -> [String] {
        var pairs = [("reason", Sanitize.display(refusal.reason))]
        pairs.append(("field", Sanitize.cell(refusal.field)))
        pairs.append(("detail", Sanitize.display(refusal.detail)))
        pairs.append(("id", Sanitize.cell(refusal.id)))
        return [style.red("the worker refused the request: " + Sanitize.display(refusal.detail))]
            + alignedPairs(pairs, indent: "  ")
    }
}
