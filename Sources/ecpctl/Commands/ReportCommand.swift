import ArgumentParser
import ECPProtocol

/// `ecpctl report`.
struct ReportCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Show the last state restore and the worker's state table.",
        discussion: """
            Prints the last restore's summary, a table of its outcomes (MACHINE, DESIRED, FOUND, \
            ACTION, ERROR), and the state table's machines (NAME, UUID, DESIRED, OBSERVED, \
            UPDATED).

            Example:
              ecpctl report
            """)

    @OptionGroup var options: SharedOptions

    func run() throws {
        try perform(.report)
    }
}
