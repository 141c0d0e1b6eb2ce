import ECPProtocol
import Foundation

/// The table of `ecpctl stats`: one row per machine. With an earlier sample, disk and network
/// columns are rates over the time between the two; without one, totals since each machine started.
enum StatsTable {
    static func lines(_ data: JSONValue, before: JSONValue?, seconds: Double) -> [String] {
        let machines = data["machines"]?.arrayValue ?? []
        let rates = before != nil && seconds > 0
        var earlier: [String: JSONValue] = [:]
        for m in before?["machines"]?.arrayValue ?? [] { earlier[m.text("uuid")] = m }
        let io = rates ? ["DISK READ/s", "DISK WRITE/s", "NET RX/s", "NET TX/s"] : ["DISK READ", "DISK WRITE", "NET RX", "NET TX"]
        var table = TextTable(headers: ["NAME", "STATE", "CPU %", "VCPUS", "MEMORY"] + io)
        for m in machines {
            let cpu = m["cpu_percent"]?.doubleValue.map { String(format: "%.1f", $0) } ?? "-"
            let vcpus = m["vcpus"]?.intValue.map(String.init) ?? "-"
            let memory: String
            switch (m["memory_kib"]?.intValue, m["max_memory_kib"]?.intValue) {
            case let (current?, max?): memory = "\(Human.size(kib: current)) / \(Human.size(kib: max))"
            case let (current?, nil): memory = Human.size(kib: current)
            case let (nil, max?): memory = "- / \(Human.size(kib: max))"
            default: memory = "-"
            }
            let totals = [
                sum(m["block"], "rd_bytes"), sum(m["block"], "wr_bytes"), sum(m["net"], "rx_bytes"), sum(m["net"], "tx_bytes"),
            ]
            var cells: [String]
            if rates {
                let prior = earlier[m.text("uuid")]
                let then = [
                    sum(prior?["block"], "rd_bytes"), sum(prior?["block"], "wr_bytes"),
                    sum(prior?["net"], "rx_bytes"), sum(prior?["net"], "tx_bytes"),
                ]
                cells = zip(totals, then).map { now, then in
                    guard let now, let then, now >= then else { return "-" }
                    return bytes(Double(now - then) / seconds) + "/s"
                }
            } else {
                cells = totals.map { $0.map { bytes(Double($0)) } ?? "-" }
            }
            table.rows.append([Sanitize.cell(m.text("name")), m.text("state"), cpu, vcpus, memory] + cells)
        }
        table.rows.sort { $0[0] < $1[0] }
        return table.render() + (machines.isEmpty ? ["(no machines)"] : [])
    }

    /// The sum of one counter over a machine's disks or interfaces; nil when none reports it.
    static func sum(_ list: JSONValue?, _ key: String) -> Int64? {
        let values = (list?.arrayValue ?? []).compactMap { $0[key]?.intValue }
        return values.isEmpty ? nil : values.reduce(0, +)
    }

    /// `0 B`, `12.3 KiB`, `1.0 GiB`.
    static func bytes(_ value: Double) -> String {
        if value < 1024 { return String(format: "%.0f B", value) }
        return Human.size(kib: Int64(value / 1024))
    }
}
