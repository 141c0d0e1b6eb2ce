import ArgumentParser
import ECPProtocol

/// `ecpctl list`.
struct ListCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List every machine libvirt knows, with its state.",
        discussion: """
            Prints a table NAME / STATE / UUID, sorted by name.

            Example:
              ecpctl list
            """)

    @OptionGroup var options: SharedOptions

    func run() throws {
        try perform(.list)
    }
}
