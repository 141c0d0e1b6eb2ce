import ArgumentParser
import ECPProtocol

/// `ecpctl suspend NAME`.
struct SuspendCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "suspend",
        abstract: "Pause a running machine's vCPUs.",
        discussion: """
            Suspending a paused machine succeeds without a change.

            Example:
              ecpctl suspend web1
            """)

    @OptionGroup var options: SharedOptions

    @Argument(help: "The machine's name or UUID.")
    var machine: String

    func validate() throws { try validateMachine(machine) }

    func run() throws {
        try perform(.suspend, machine: machine)
    }
}
