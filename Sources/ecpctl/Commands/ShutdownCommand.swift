import ArgumentParser
import ECPProtocol

/// `ecpctl shutdown NAME [--wait-ms N] [--force]`.
struct ShutdownCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "shutdown",
        abstract: "Ask a machine's guest to power off (ACPI).",
        discussion: """
            Without --wait-ms the command returns once the guest was asked. With --wait-ms it \
            waits until the machine is off; with --force as well, the machine is destroyed when \
            it is not off by then. ecpctl waits for the reply at least --wait-ms plus 5 seconds, \
            even when --timeout-ms is smaller. A machine that is already off succeeds without a \
            change.

            Examples:
              ecpctl shutdown web1
              ecpctl shutdown --wait-ms 60000 --force web1
            """)

    @OptionGroup var options: SharedOptions

    @Argument(help: "The machine's name or UUID.")
    var machine: String

    @Option(name: .customLong("wait-ms"), help: ArgumentHelp("Wait this many milliseconds for the machine to be off.", valueName: "ms"))
    var waitMs: Int?

    @Flag(help: "Destroy the machine when it is not off after --wait-ms.")
    var force = false

    func validate() throws {
        try validateMachine(machine)
        if let waitMs, waitMs < 0 || waitMs > 86_400_000 {
            throw ValidationError("--wait-ms must be between 0 and 86400000, got \(waitMs)")
        }
        if force && waitMs == nil {
            throw ValidationError("--force needs --wait-ms: how long to wait before destroying the machine")
        }
    }

    func run() throws {
        var args: [String: JSONValue] = [:]
        if let waitMs { args["wait_ms"] = .int(Int64(waitMs)) }
        if force { args["force"] = true }
        try perform(.shutdown, machine: machine, args: args.isEmpty ? nil : args, minimumWaitMs: (waitMs ?? 0) + 5000)
    }
}
