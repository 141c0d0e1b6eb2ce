import ArgumentParser
import ECPProtocol

/// `ecpctl policy NAME [--order N | --clear-order] [--up-delay DURATION] [--retries N] [--host-stop MODE]`.
struct PolicyCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Show or change a machine's restore and host-stop policy.",
        discussion: """
            A policy says how the worker brings a machine back after a host reboot, and how \
            a host stop (`ecpctl host-stop`, run at host shutdown) stops it:

              order       its place when a restore starts machines, lowest first,
                          machines without one last (0 to 1000); a host stop
                          goes the other way round
              up-delay    after starting this machine, how long a restore waits
                          before it starts the next order (0 to 10m)
              retries     how often a restore tries again after a retryable
                          failure (0 to 10)
              host-stop   shutdown: the ACPI power button, destroyed when still
                          on after the host stop's --timeout; managedsave: its
                          memory saved to disk, and the next start resumes it
                          where it was; destroy: power cut; none: left running

            Only the options given change; the others keep their values. Without an \
            option the policy is shown unchanged. --clear-order takes the order away. The \
            defaults: no order, no up delay, the worker's --restore-retries (2), shutdown. \
            Durations take a unit: 500ms, 5s, 2m, 1h30m.

            Output: the machine's whole effective policy, defaults included; with --json \
            the reply as received (data: {"policy": {"order": ..., "up_delay_ms": ..., \
            "retries": ..., "host_stop": ...}}). The worker keeps policies in its state \
            table: a result marked "not saved" changed the policy, but a host reboot now \
            would use the previous one.

            Examples:
              ecpctl policy web1
              ecpctl policy web1 --order 10 --up-delay 5s --retries 3 \\
                  --host-stop managedsave
              ecpctl policy db1 --order 0 --up-delay 30s
              ecpctl policy scratch --clear-order --host-stop destroy
            """)

    /// What a host stop does to a machine.
    enum HostStopMode: String, ExpressibleByArgument, CaseIterable {
        case shutdown, managedsave, destroy, none
    }

    /// The bounds the worker accepts.
    static let orderRange = 0...1000
    static let upDelayRange = 0...600_000
    static let retriesRange = 0...10

    @OptionGroup var options: SharedOptions

    @Argument(help: "The machine's name or UUID.")
    var machine: String

    @Option(help: ArgumentHelp("Restore order, 0 to 1000: lower orders are started first and stopped last.", valueName: "n"))
    var order: Int?

    @Flag(name: .customLong("clear-order"), help: "Take the machine's order away (back to the default: no order).")
    var clearOrder = false

    @Option(
        name: .customLong("up-delay"),
        help: ArgumentHelp("After starting the machine, a restore waits this long before it starts the next order (0 to 10m, e.g. 5s).", valueName: "duration"),
        transform: DurationText.parse)
    var upDelayMs: Int?

    @Option(help: ArgumentHelp("Restore attempts after a retryable failure, 0 to 10.", valueName: "n"))
    var retries: Int?

    @Option(
        name: .customLong("host-stop"),
        help: ArgumentHelp("What a host stop does to the machine: shutdown, managedsave, destroy or none.", valueName: "mode"))
    var hostStop: HostStopMode?

    func validate() throws {
        try validateMachine(machine)
        if let order {
            if clearOrder { throw ValidationError("--order and --clear-order exclude each other: give one") }
            if !Self.orderRange.contains(order) {
                throw ValidationError("--order must be between 0 and 1000, got \(order)")
            }
        }
        if let upDelayMs, !Self.upDelayRange.contains(upDelayMs) {
            throw ValidationError(
                "--up-delay must be between 0 and 10m (600000 ms), got \(DurationText.format(milliseconds: Int64(upDelayMs)))")
        }
        if let retries, !Self.retriesRange.contains(retries) {
            throw ValidationError("--retries must be between 0 and 10, got \(retries)")
        }
    }

    /// The `set_policy` args: the members given; an empty object asks for the policy as it is.
    var args: [String: JSONValue] {
        var args: [String: JSONValue] = [:]
        if let order { args["order"] = .int(Int64(order)) }
        if clearOrder { args["order"] = .null }
        if let upDelayMs { args["up_delay_ms"] = .int(Int64(upDelayMs)) }
        if let retries { args["retries"] = .int(Int64(retries)) }
        if let hostStop { args["host_stop"] = .string(hostStop.rawValue) }
        return args
    }

    func run() throws {
        try perform(opName: Op.setPolicy.rawValue, machine: machine, args: args)
    }
}
