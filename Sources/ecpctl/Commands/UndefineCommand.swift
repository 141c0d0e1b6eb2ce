import ArgumentParser
import ECPProtocol

/// `ecpctl undefine NAME`.
struct UndefineCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "undefine",
        abstract: "Remove a machine's definition.",
        discussion: """
            A running machine keeps running, as a transient machine, until it is shut down.

            Example:
              ecpctl undefine web1
            """)

    @OptionGroup var options: SharedOptions

    @Argument(help: "The machine's name or UUID.")
    var machine: String

    func validate() throws { try validateMachine(machine) }

    func run() throws {
        try perform(.undefine, machine: machine)
    }
}
