import ArgumentParser
import ECPProtocol
import Foundation

/// `ecpctl define FILE.xml` (or `-` for standard input).
struct DefineCommand: ControlSubcommand {
    static let configuration = CommandConfiguration(
        commandName: "define",
        abstract: "Define (or redefine) a persistent machine from its libvirt domain XML.",
        discussion: """
            The XML is sent as it is; the worker answers with the machine's name and UUID.

            Examples:
              ecpctl define web1.xml
              virsh dumpxml web1 | ecpctl define -
            """)

    @OptionGroup var options: SharedOptions

    @Argument(help: ArgumentHelp("The domain XML file, or - to read it from standard input.", valueName: "file.xml"))
    var file: String

    func run() throws {
        try guarded {
            let xml = try readText(file, what: "domain XML")
            guard !xml.isEmpty else { throw CtlFailure(ExitStatus.usage, "the domain XML is empty") }
            try perform(.define, args: ["xml": .string(xml)])
        }
    }
}
