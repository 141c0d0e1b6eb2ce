import ArgumentParser
import ECPProtocol
import Foundation

/// Prints a control reply and turns it into the exit status.
struct ReplyPrinter {
    /// The shared options (`--json`, `--no-color`).
    var options: SharedOptions

    /// The exit status a reply document stands for: 0 for `ok: true`, 1 for `ok: false`, 2 for
    /// a `request_error`; nil for anything else.
    static func status(of document: JSONValue?) -> Int32? {
        switch document?["type"]?.stringValue {
        case "result":
            switch document?["ok"]?.boolValue {
            case true?: return 0
            case false?: return ExitStatus.failed
            case nil: return nil
            }
        case "request_error":
            return ExitStatus.requestError
        default:
            return nil
        }
    }

    /// Prints the reply; returns on success, throws `ExitCode` otherwise.
    func finish(_ raw: Data) throws {
        let document = JSONValue.parse(raw)
        let status = Self.status(of: document)
        if options.json {
            Console.out(json: raw)
            guard let status else {
                Console.err("ecpctl: the reply is not a result or request_error")
                throw ExitCode(ExitStatus.software)
            }
            if status != 0 { throw ExitCode(status) }
            return
        }
        let decoder = JSONDecoder()
        switch (document?["type"]?.stringValue, status) {
        case ("result", _?):
            guard let result = try? decoder.decode(ResultMessage.self, from: raw), let document else {
                throw unreadable(raw)
            }
            if result.ok {
                Console.out(lines: ResultText.lines(result, reply: document))
                return
            }
            Console.err(lines: ResultText.failureLines(result, style: .stderr(noColor: options.noColor)))
            throw ExitCode(ExitStatus.failed)
        case ("request_error", _):
            guard let refusal = try? decoder.decode(RequestErrorMessage.self, from: raw) else { throw unreadable(raw) }
            Console.err(lines: ResultText.requestErrorLines(refusal, style: .stderr(noColor: options.noColor)))
            throw ExitCode(ExitStatus.requestError)
        default:
            throw unreadable(raw)
        }
    }

    private func unreadable(_ raw: Data) -> CtlFailure {
        let text = String(decoding: raw.prefix(400), as: UTF8.self)
        return CtlFailure(ExitStatus.software, "unreadable reply: " + Sanitize.display(text))
    }
}
