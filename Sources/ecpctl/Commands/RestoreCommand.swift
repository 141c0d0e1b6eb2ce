import ArgumentParser
import ECPProtocol

/// `ecpctl restore`.
struct RestoreCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Run the worker's state restore now, and show its counts.",
        discussion: """
            The worker compares its state table (each machine's desired state) with libvirt and \
            starts or resumes the machines that should run; it never stops a machine. The \
            per-machine outcomes go out on the events socket (`ecpctl tail restore.`) and are \
            shown by `ecpctl report`.

            Example:
              ecpctl restore
            """)

    @OptionGroup var options: SharedOptions

    func run() throws {
        try perform(.restore)
    }
}
