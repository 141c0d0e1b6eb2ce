import ArgumentParser
import ECPProtocol

/// `ecpctl ping`.
struct PingCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "ping",
        abstract: "Check that the worker answers, and show its uptime.",
        discussion: """
            Exit status 0 when the worker answered, 3 when it did not within --timeout-ms: \
            a readiness probe for scripts.

            Examples:
              ecpctl ping
              ecpctl ping --timeout-ms 1000 || echo "worker down"
            """)

    @OptionGroup var options: SharedOptions

    func run() throws {
        try perform(.ping)
    }
}
