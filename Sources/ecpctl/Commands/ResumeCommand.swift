import ArgumentParser
import ECPProtocol

/// `ecpctl resume NAME`.
struct ResumeCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Unpause a suspended machine.",
        discussion: """
            Resuming a running machine succeeds without a change.

            Example:
              ecpctl resume web1
            """)

    @OptionGroup var options: SharedOptions

    @Argument(help: "The machine's name or UUID.")
    var machine: String

    func validate() throws { try validateMachine(machine) }

    func run() throws {
        try perform(.resume, machine: machine)
    }
}
