import Foundation

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
            throw CtlFailure(ExitStatus.usage, "cannot read \(what) from \(Sanitize.display(path)): \(fileErrorReason(error))")
        }
    }
    guard let text = String(data: data, encoding: .utf8) else {
        throw CtlFailure(ExitStatus.usage, "the \(what) in \(path == "-" ? "standard input" : Sanitize.display(path)) is not UTF-8 text")
    }
    return text
}

/// A short reason for a file error: the system's words for its errno, when there is one.
func fileErrorReason(_ error: any Error) -> String {
    let nsError = error as NSError
    if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    if nsError.domain == NSCocoaErrorDomain && nsError.code == NSFileReadNoSuchFileError {
        return "no such file"
    }
    return Sanitize.display(nsError.localizedDescription)
}
