import ArgumentParser

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Measures `stats` of every machine: the round trip of one bulk sample, one at a time.",
        discussion: """
            Starts a worker on a generated test-driver host of --test-machines running machines \
            (its periodic samples off, so that only the bench's commands sample), and sends `stats` \
            of all machines with one command in flight: each result carries every machine, so the \
            figures are the cost of one sample, its encoding and its trip through ZeroMQ.

            Examples:
              ecp-bench stats --test-machines 1000
              ecp-bench stats --test-machines 1000 --count 50 --json
            """)

    @Option(help: "Samples to ask for.")
    var count = 200

    @Option(help: "Running machines on the generated test-driver host.")
    var testMachines = 1000

    @Option(help: ArgumentHelp("The ecp-worker executable to start (default: ecp-worker next to ecp-bench).", valueName: "path"))
    var worker: String?

    @Option(help: "Stop after this many seconds in all, and report what came back.")
    var timeoutS: Double = 300

    @Flag(help: "One JSON object instead of the table.")
    var json = false

    func validate() throws {
        if !(1...10_000).contains(testMachines) { throw ValidationError("--test-machines must be between 1 and 10000") }
        try LoadBounds.check(count: count, window: 1)
    }

    func run() throws {
        try guarded {
            let target = try TargetOptions.parse(["--spawn"])
            let spawn = try SpawnOptions.parse(
                ["--test-machines", "\(testMachines)", "--worker-arg=--stats-interval-ms=0"] + (worker.map { ["--worker", $0] } ?? []))
            let load = try LoadOptions.parse(["--mix", "stats=1", "--timeout-s", "\(timeoutS)"])
            let host = try HostOptions.parse([])
            let report = try LoadRunner(
                target: target, spawn: spawn, load: load, count: count, window: 1, label: "stats", host: host
            ).run()
            emitLoad(report, name: "stats", asJSON: json)
            return report.exitStatus
        }
    }
}
