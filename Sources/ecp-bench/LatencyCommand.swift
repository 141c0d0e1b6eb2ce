import ArgumentParser

struct LatencyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency",
        abstract: "Sends one command at a time (window 1) and measures the round trip: send to result.",
        discussion: """
            The same run as throughput with one command in flight: each command is sent when the \
            previous result has arrived, so the figures are the worker's unloaded response times \
            through ZeroMQ and libvirt. Mix, machines and memory as for throughput.

            With --spawn --uri qemu:///system --guests N the started worker runs on that libvirt \
            daemon, and the bench first defines and starts N tiny guests of its own, which the ops \
            that need a machine take in turn; it destroys and undefines them at the end, also on \
            failure or interruption.

            Examples:
              ecp-bench latency --spawn
              ecp-bench latency --spawn --uri qemu:///system --guests 8 --mix status=1
              ecp-bench latency --worker-id host1 --mix status=1 --machine web1 --count 2000 --json
            """)

    @Option(help: "Commands to send.")
    var count = 10_000

    @OptionGroup(title: "Worker") var target: TargetOptions
    @OptionGroup(title: "Started worker") var spawn: SpawnOptions
    @OptionGroup(title: "Real host") var host: HostOptions
    @OptionGroup(title: "Load") var load: LoadOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        try spawn.check(against: target)
        try host.check(spawn: target.spawn, testMachines: spawn.testMachines)
        try LoadBounds.check(count: count, window: 1)
    }

    func run() throws {
        try guarded {
            let report = try LoadRunner(
                target: target, spawn: spawn, load: load, count: count, window: 1, label: "latency", host: host
            ).run()
            emitLoad(report, name: "latency", asJSON: output.json)
            return report.exitStatus
        }
    }
}
