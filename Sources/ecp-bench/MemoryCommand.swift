import ArgumentParser

struct MemoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memory",
        abstract: "Starts a worker, runs many commands through it and measures how its resident memory grows.",
        discussion: """
            The bench starts a worker (libvirt test driver, machine 'test', free ports), waits 1 s, \
            reads its resident memory (VmRSS, /proc/<pid>/status), runs --count commands through it \
            with --window in flight, samples the memory every second, reads it again right after the \
            last result and 2 s later, and reports the growth, per command too, and the kernel's \
            high-water mark (VmHWM). A worker whose memory keeps growing with the count holds on to \
            something per command.

            With --warmup N it first runs N commands (same mix and window) and rests 1 s more: the \
            memory the worker fills up to a bound, such as the de-duplication memory of recent \
            ids and results, is then in place, and the growth measured is what the run itself adds. \
            The idle figure is still read before the warm-up.

            Examples:
              ecp-bench memory
              ecp-bench memory --count 200000 --mix status=1 --json
              ecp-bench memory --warmup 100000 --count 1000000 --mix status=1
            """)

    @Option(help: "Commands to send.")
    var count = 1_000_000

    @Option(help: "Commands in flight at most.")
    var window = 64

    @Option(help: "Commands run before the growth is measured (none by default).")
    var warmup = 0

    @OptionGroup(title: "Started worker") var spawn: SpawnOptions
    @OptionGroup(title: "Load") var load: LoadOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        try LoadBounds.check(count: count, window: window)
        if warmup < 0 { throw ValidationError("--warmup must be 0 or more, got \(warmup)") }
    }

    func run() throws {
        try guarded {
            let report = try LoadRunner(
                spawnWorker: true, commands: nil, events: nil, workerID: nil, workerPID: nil, binary: spawn.binary,
                workerArgs: spawn.workerArg, load: load, count: count, window: window, settleBeforeMs: 1000,
                settleAfterMs: 2000, label: "memory", defaultTimeoutS: 600, warmup: warmup,
                testMachines: spawn.testMachines
            ).run()
            var table = Table(
                "ecp-bench memory: started worker, pid \(report.workerPID ?? 0), \(count) commands, window \(window), mix \(report.plan.mix)")
            guard let m = report.memory else { throw BenchFailure(2, "cannot read the worker's memory from /proc") }
            let perCommand = report.outcome.answered > 0 ? Double(m.growth) * 1024 / Double(report.outcome.answered) : 0
            if let idle = m.idle {
                table.add("rss idle", Format.kib(idle))
                table.add("rss warmed", Format.kib(m.before) + "  " + Format.kibDelta(m.before - idle) + " after \(warmup) commands")
            } else {
                table.add("rss idle", Format.kib(m.before))
            }
            table.add("rss after", Format.kib(m.after))
            table.add("growth", Format.kibDelta(m.growth) + ", " + String(format: "%.1f", perCommand) + " bytes per command")
            if let settled = m.settled {
                table.add(
                    "rss 2 s later",
                    Format.kib(settled) + "  " + Format.kibDelta(settled - m.before) + (m.idle == nil ? " from idle" : " from warmed"))
            }
            table.add("rss peak", Format.kib(m.sampledPeak) + " sampled, " + Format.kib(m.highWater) + " VmHWM")
            report.rows(into: &table)
            var json = MemoryJSON(load: report.json, bytesPerCommand: Format.tenth(perCommand))
            json.load.benchmark = "memory"
            emit(table, json: json, asJSON: output.json)
            return report.exitStatus
        }
    }
}

/// The load fields and the memory figures.
struct MemoryJSON: Encodable {
    var load: LoadJSON
    var bytesPerCommand: Double

    enum CodingKeys: String, CodingKey {
        case bytesPerCommand = "growth_bytes_per_command"
    }

    func encode(to encoder: any Encoder) throws {
        try load.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(bytesPerCommand, forKey: .bytesPerCommand)
    }
}
