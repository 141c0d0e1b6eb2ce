import ArgumentParser
import ECPProtocol

/// `ecpctl status NAME`.
struct StatusCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a machine's state and resources.",
        discussion: """
            Prints state, vCPUs, memory, CPU time, persistence and autostart as aligned `key: value` lines.

            Example:
              ecpctl status web1
            """)

    @OptionGroup var options: SharedOptions

    @Argument(help: "The machine's name or UUID.")
    var machine: String

    func validate() throws { try validateMachine(machine) }

    func run() throws {
        try perform(.status, machine: machine)
    }
}
