import ArgumentParser
import ECPProtocol

/// `ecpctl start NAME [--paused]`.
struct StartCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "start",
        abstract: "Start (boot) a defined machine.",
        discussion: """
            Starting a machine that is already running succeeds without a change.

            Examples:
              ecpctl start web1
              ecpctl start --paused 6695eb01-f6a4-8304-79aa-97f2502e193f
            """)

    @OptionGroup var options: SharedOptions

    @Argument(help: "The machine's name or UUID.")
    var machine: String

    @Flag(help: "Boot with the vCPUs paused (resume it later with `ecpctl resume`).")
    var paused = false

    func validate() throws { try validateMachine(machine) }

    func run() throws {
        try perform(.start, machine: machine, args: paused ? ["paused": true] : nil)
    }
}
