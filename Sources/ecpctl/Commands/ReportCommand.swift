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

            From a worker that keeps policies (`ecpctl policy`), the outcomes also show each \
            machine's ORDER and ATTEMPTS (tries the restore took), ACTION says "(from save)" \
            for a machine resumed from its managed save, and the machines show their \
            effective policy: ORDER, UP-DELAY, RETRIES, HOST-STOP. Columns a worker does not \
            send are left out.

            Example:
              ecpctl report
            """)

    @OptionGroup var options: SharedOptions

    func run() throws {
        try perform(.report)
    }
}
