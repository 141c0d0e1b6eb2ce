import ArgumentParser
import ECPProtocol
import Foundation

/// `ecpctl host-stop [--mode M] [--timeout DURATION] [--parallel N]`.
struct HostStopCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "host-stop",
        abstract: "Stop every running machine for a host shutdown, keeping what should run at the next boot.",
        discussion: """
            The worker stops every running or paused machine, in reverse restore order \
            (machines without an `ecpctl policy --order` first, then the highest order), each the way its policy says: shutdown \
            (ACPI power button; destroyed when still on after --timeout), managedsave (memory \
            saved to disk; the next start resumes it where it was), destroy, or none (left \
            running). --mode does the same to every machine instead. Each machine's desired \
            state is kept, so the restore at the next boot brings back what ran. This is what \
            the ecp-host-stop.service unit runs when the host shuts down.

            Waiting: a host stop can take many minutes (every guest's ACPI wait, memory \
            written to disk). ecpctl first checks with a ping that the worker answers within \
            --timeout-ms, so a worker that is down fails at once (exit status 3); it then sends \
            host_stop without a deadline and waits up to 24 hours for its result: the bound \
            that counts is the caller's (systemd's TimeoutStopSec for the unit). The worker \
            publishes each machine's host_stop.outcome and the host_stop.summary on \
            restore.<worker-id> as they come (`ecpctl tail restore.`).

            Output: one line per machine (MACHINE, ORDER, FOUND, MODE, ACTION, DURATION, \
            ERROR), then the counts: shut_down, forced, saved, destroyed, left_running, \
            already_off, failed. --json prints the reply as received (its data is the summary \
            with the outcomes).

            Exit status: 0 when no machine failed; 5 when one or more did (their errors are in \
            the ERROR column; the others were stopped); otherwise as for every subcommand (1: \
            the host stop could not run, 2: refused, 3: no reply).

            Examples:
              ecpctl host-stop
              ecpctl host-stop --mode managedsave --parallel 4
              ecpctl host-stop --timeout 5m
            """)

    /// A mode for every machine at once (none is a policy's only: a host stop that leaves every
    /// machine running needs no command).
    enum Mode: String, ExpressibleByArgument, CaseIterable {
        case shutdown, managedsave, destroy
    }

    /// How long ecpctl waits for the host stop's result: the most --timeout-ms allows.
    static let replyWaitMs = 86_400_000

    @OptionGroup var options: SharedOptions

    @Option(help: ArgumentHelp("Stop every machine this way instead of by its policy: shutdown, managedsave or destroy.", valueName: "mode"))
    var mode: Mode?

    @Option(
        help: ArgumentHelp(
            "How long a shutdown waits for each guest to power off before it is destroyed (default 2m; at most 24h).",
            valueName: "duration"),
        transform: DurationText.parse)
    var timeout: Int?

    @Option(help: ArgumentHelp("How many machines are stopped at once (default: the worker's).", valueName: "n"))
    var parallel: Int?

    func validate() throws {
        if let timeout, timeout < 1 || timeout > Self.replyWaitMs {
            throw ValidationError("--timeout must be between 1ms and 24h, got \(DurationText.format(milliseconds: Int64(timeout)))")
        }
        if let parallel, parallel < 1 {
            throw ValidationError("--parallel must be 1 or more, got \(parallel)")
        }
    }

    /// The `host_stop` args: only what was given, so the worker's defaults apply to the rest.
    var args: [String: JSONValue] {
        var args: [String: JSONValue] = [:]
        if let mode { args["mode"] = .string(mode.rawValue) }
        if let timeout { args["timeout_ms"] = .int(Int64(timeout)) }
        if let parallel { args["parallel"] = .int(Int64(parallel)) }
        return args
    }

    func run() throws {
        try guarded {
            // A worker that is not there would leave the long wait below hanging until the
            // caller gives up: a ping answers within --timeout-ms.
            let ping = try request(opName: Op.ping.rawValue, waitMs: options.timeoutMs)
            if ReplyPrinter.status(of: JSONValue.parse(ping)) != 0 {
                try ReplyPrinter(options: options).finish(ping)
            }
            let reply = try request(
                opName: Op.hostStop.rawValue, args: args, waitMs: max(options.timeoutMs, Self.replyWaitMs))
            try ReplyPrinter(options: options).finish(reply)
            let failed = HostStopText.failedMachines(JSONValue.parse(reply)?["data"] ?? .null)
            if failed.count > 0 {
                let names = failed.names.isEmpty ? "" : ": " + failed.names.joined(separator: ", ")
                throw CtlFailure(
                    ExitStatus.someFailed,
                    "\(failed.count) machine\(failed.count == 1 ? "" : "s") failed to stop\(names)")
            }
        }
    }
}
