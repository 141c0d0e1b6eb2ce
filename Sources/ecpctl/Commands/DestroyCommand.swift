import ArgumentParser
import ECPProtocol

/// `ecpctl destroy NAME`.
struct DestroyCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "destroy",
        abstract: "Power a machine off at once (like pulling the plug).",
        discussion: """
            Destroying a machine that is already off succeeds without a change.

            Example:
              ecpctl destroy web1
            """)

    @OptionGroup var options: SharedOptions

    @Argument(help: "The machine's name or UUID.")
    var machine: String

    func validate() throws { try validateMachine(machine) }

    func run() throws {
        try perform(.destroy, machine: machine)
    }
}
