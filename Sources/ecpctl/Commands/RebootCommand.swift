import ArgumentParser
import ECPProtocol

/// `ecpctl reboot NAME`.
struct RebootCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "reboot",
        abstract: "Ask a machine's guest to reboot.",
        discussion: """
            The command returns once the guest was asked; follow the reboot with `ecpctl tail machine.`.

            Example:
              ecpctl reboot web1
            """)

    @OptionGroup var options: SharedOptions

    @Argument(help: "The machine's name or UUID.")
    var machine: String

    func validate() throws { try validateMachine(machine) }

    func run() throws {
        try perform(.reboot, machine: machine)
    }
}
