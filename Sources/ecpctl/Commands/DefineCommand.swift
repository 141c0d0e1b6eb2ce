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

/// Reads a UTF-8 file, or standard input for `-`.
///
/// - Throws: ``CtlFailure`` (usage) when it cannot be read or is not UTF-8.
func readText(_ path: String, what: String) throws -> String {
    let data: Data
    if path == "-" {
        data = FileHandle.standardInput.readDataToEndOfFile()
    } else {
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw CtlFailure(ExitStatus.usage, "cannot read \(what) from \(Sanitize.display(path)): \(KeyFile.reason(error))")
        }
    }
    guard let text = String(data: data, encoding: .utf8) else {
        throw CtlFailure(ExitStatus.usage, "the \(what) in \(path == "-" ? "standard input" : Sanitize.display(path)) is not UTF-8 text")
    }
    return text
}
