import ArgumentParser
import ECPProtocol
import Foundation

/// `ecpctl send JSON`: a raw command document, for debugging.
struct SendCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send a raw command document to the control socket (for debugging).",
        discussion: """
            The document is sent exactly as given: nothing is added or checked (--id does not \
            apply), so the worker's own validation answers. The reply is printed like that of \
            the matching subcommand.

            Examples:
              ecpctl send '{"v": 1, "id": "dbg-1", "op": "status", "machine": "web1"}'
              ecpctl send --json - < command.json
            """)

    @OptionGroup var options: SharedOptions

    @Argument(help: ArgumentHelp("The command document, or - to read it from standard input.", valueName: "json"))
    var document: String

    func run() throws {
        try guarded {
            let text = document == "-" ? try readText("-", what: "command document") : document
            let payload = Data(text.utf8)
            guard !payload.isEmpty else { throw CtlFailure(ExitStatus.usage, "the command document is empty") }
            let id = JSONValue.parse(payload)?["id"]?.stringValue
            let reply = try ControlClient.request(payload, expectedID: id, options: options, waitMs: options.timeoutMs)
            try ReplyPrinter(options: options).finish(reply)
        }
    }
}
