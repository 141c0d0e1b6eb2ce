import ArgumentParser
import ECPProtocol
import Foundation

/// `ecpctl stats [NAME]`.
struct StatsCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show what the machines use: CPU, vCPUs, memory, disk and network.",
        discussion: """
            Prints a table NAME / STATE / CPU % / VCPUS / MEMORY (current / maximum) and the disk \
            read and write and network receive and send rates, sorted by name. Rates need two \
            samples: ecpctl asks twice, --interval-ms apart, and CPU % is the share between the \
            two (100 = one host core). With --totals it asks once and shows the counters since \
            each machine started. A figure libvirt does not give (a shut-off machine's CPU) is `-`. \
            --json prints the raw result of one `stats`.

            Examples:
              ecpctl stats
              ecpctl stats web1 --interval-ms 5000
              ecpctl stats --totals
            """)

    @OptionGroup var options: SharedOptions

    @Argument(help: "The machine's name or UUID; every machine when left out.")
    var machine: String?

    @Option(help: "Milliseconds between the two samples that rates are worked out from.")
    var intervalMs = 1000

    @Flag(help: "One sample: counters since each machine started instead of rates.")
    var totals = false

    func validate() throws {
        if let machine { try validateMachine(machine) }
        if intervalMs < 100 || intervalMs > 600_000 {
            throw ValidationError("--interval-ms must be between 100 and 600000, got \(intervalMs)")
        }
    }

    func run() throws {
        if options.json || totals {
            try perform(.stats, machine: machine)
            return
        }
        try guarded {
            let first = try request()
            guard ReplyPrinter.status(of: JSONValue.parse(first)) == 0 else {
                try ReplyPrinter(options: options).finish(first)
                return
            }
            usleep(useconds_t(intervalMs) * 1000)
            let second = try request()
            guard let now = JSONValue.parse(second), ReplyPrinter.status(of: now) == 0,
                let data = now["data"], let before = JSONValue.parse(first)?["data"]
            else {
                try ReplyPrinter(options: options).finish(second)
                return
            }
            let seconds = Self.seconds(from: before.text("collected_at"), to: data.text("collected_at")) ?? Double(intervalMs) / 1000
            Console.out(lines: StatsTable.lines(data, before: before, seconds: seconds))
        }
    }

    private func request() throws -> Data {
        let id = options.makeCommandID()
        let payload = try CommandDocument(id: id, op: Op.stats.rawValue, machine: machine, args: nil).encoded()
        return try ControlClient.request(payload, expectedID: id, options: options, waitMs: options.timeoutMs)
    }

    /// The time between two samples, from the worker's own clock.
    static func seconds(from start: String, to end: String) -> Double? {
        guard let a = EventText.parse(start), let b = EventText.parse(end) else { return nil }
        let span = Double(b.0 - a.0) + Double(b.1 - a.1) / 1000
        return span > 0 ? span : nil
    }
}
