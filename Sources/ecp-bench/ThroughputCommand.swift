import ArgumentParser

struct ThroughputCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "throughput",
        abstract: "Keeps a window of commands in flight and measures commands/s and latency percentiles.",
        discussion: """
            The bench handshakes with the worker first: it sends ping until one is answered (a \
            subscriber that joins late misses the first messages of PUB/SUB), for at most 30 s. It \
            reads each machine's state with status, then sends --count commands, never more than \
            --window unanswered, and counts every result: ok, failed (by error code), and the time \
            from send to result.

            Mix: --mix op=weight,... becomes a fixed cycle (status=8,suspend=1,resume=1: eight \
            status spread around one suspend and one resume); ops that need a machine take \
            --machines in turn. With both suspend and resume in the mix they are sent as pairs per \
            machine: each is whatever flips that machine (suspend when the bench left it running, \
            resume when it left it paused). The worker runs one machine's commands in arrival \
            order, so every pair changes the state even with 64 in flight, and a machine left \
            paused at the end is resumed (outside the figures).

            With --worker-pid (or --spawn) it reads the worker's resident memory (VmRSS) before \
            and after.

            With --spawn --uri qemu:///system --guests N the started worker runs on that libvirt \
            daemon, and the bench first defines and starts N tiny guests of its own, which the ops \
            that need a machine take in turn; it destroys and undefines them at the end, also on \
            failure or interruption.

            Examples:
              ecp-bench throughput --spawn
              ecp-worker --worker-id w1 &     # default endpoints, test driver
              ecp-bench throughput --worker-id w1 --worker-pid $! --window 128
              ecp-bench throughput --spawn --mix status=1 --json
              ecp-bench throughput --spawn --uri qemu:///system --guests 8 --mix status=1
            """)

    @Option(help: "Commands to send.")
    var count = 100_000

    @Option(help: "Commands in flight at most (sent and not yet answered).")
    var window = 64

    @OptionGroup(title: "Worker") var target: TargetOptions
    @OptionGroup(title: "Started worker") var spawn: SpawnOptions
    @OptionGroup(title: "Real host") var host: HostOptions
    @OptionGroup(title: "Load") var load: LoadOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        try spawn.check(against: target)
        try host.check(spawn: target.spawn, testMachines: spawn.testMachines)
        try LoadBounds.check(count: count, window: window)
    }

    func run() throws {
        try guarded {
            let report = try LoadRunner(
                target: target, spawn: spawn, load: load, count: count, window: window, label: "throughput", host: host
            ).run()
            emitLoad(report, name: "throughput", asJSON: output.json)
            return report.exitStatus
        }
    }
}

/// Prints a throughput or latency report.
func emitLoad(_ report: LoadReport, name: String, asJSON: Bool) {
    let who = (report.spawned ? "started worker '\(report.workerID)'" : "worker '\(report.workerID)'")
        + (report.workerPID.map { ", pid \($0)" } ?? "")
    let list = report.plan.machines
    let named = list.count <= 4 ? list.joined(separator: ",") : "\(list[0]) ... \(list[list.count - 1]) (\(list.count))"
    let machines = report.plan.mix.needsMachine ? ", machines \(named)" : ""
    var table = Table("ecp-bench \(name): \(who), window \(report.plan.window), mix \(report.plan.mix)\(machines)")
    if let host = report.host { table.add("host", host.summary) }
    report.rows(into: &table)
    if let m = report.memory {
        table.add("rss before", Format.kib(m.before))
        table.add("rss after", Format.kib(m.after) + "  " + Format.kibDelta(m.growth))
    }
    var json = report.json
    json.benchmark = name
    emit(table, json: json, asJSON: asJSON)
}
