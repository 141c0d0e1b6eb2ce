import Foundation
import ZeroMQ

/// The CURVE key file format shared by ecpctl and the worker.
///
/// A key file is UTF-8 text. Blank lines and lines starting with `#` are ignored; every other
/// line is `name = value`, with white space around the name and the value ignored. The names
/// are `public-key` and `secret-key`, each at most once, and each value is a 40-character Z85
/// CURVE key (ZeroMQ's encoding):
///
/// ```
/// # ECP CURVE key pair (Z85). Secret: keep this file private (mode 0600).
/// public-key = <40 Z85 characters>
/// secret-key = <40 Z85 characters>
/// ```
///
/// A secret key file (`NAME.key`, mode 0600) holds both lines; a public key file (`NAME.pub`)
/// holds only `public-key`. When a file holds both, the public key must be the one that
/// belongs to the secret key.
struct KeyFile: Equatable {
    /// The Z85 public key, when the file has one (or it was derived from the secret key).
    var publicKey: String?
    /// The Z85 secret key, when the file has one.
    var secretKey: String?

    /// The characters of ZeroMQ's Z85 alphabet.
    static let z85Alphabet = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")

    /// Whether `text` looks like a Z85 CURVE key: 40 characters of the Z85 alphabet.
    static func isZ85Key(_ text: String) -> Bool {
        text.count == CurveKeyPair.z85Length && text.allSatisfy { z85Alphabet.contains($0) }
    }

    /// Parses a key file's text. `origin` names the file in error messages.
    ///
    /// - Throws: ``CtlFailure`` (usage) naming the line that is wrong.
    static func parse(_ text: String, origin: String) throws -> KeyFile {
        var file = KeyFile()
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let at = "\(origin), line \(index + 1)"
            guard let equals = line.firstIndex(of: "=") else {
                throw CtlFailure(ExitStatus.usage, "\(at): expected `public-key = ...` or `secret-key = ...`")
            }
            let name = line[..<equals].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            guard isZ85Key(value) else {
                throw CtlFailure(
                    ExitStatus.usage, "\(at): \(Sanitize.display(name)) is not a 40-character Z85 CURVE key")
            }
            switch name {
            case "public-key":
                guard file.publicKey == nil else { throw CtlFailure(ExitStatus.usage, "\(at): public-key given twice") }
                file.publicKey = value
            case "secret-key":
                guard file.secretKey == nil else { throw CtlFailure(ExitStatus.usage, "\(at): secret-key given twice") }
                file.secretKey = value
            default:
                throw CtlFailure(
                    ExitStatus.usage,
                    "\(at): unknown name \(Sanitize.display(name)); a key file has public-key and secret-key")
            }
        }
        if let secret = file.secretKey {
            let derived: String
            do {
                derived = try CurveKeyPair.publicKey(forSecretKey: secret)
            } catch {
                throw CtlFailure(ExitStatus.usage, "\(origin): the secret key is not usable: \(error)")
            }
            if let given = file.publicKey, given != derived {
                throw CtlFailure(ExitStatus.usage, "\(origin): public-key does not belong to secret-key")
            }
            file.publicKey = derived
        }
        guard file.publicKey != nil else {
            throw CtlFailure(ExitStatus.usage, "\(origin): no public-key or secret-key line")
        }
        return file
    }

    /// Reads and parses a key file.
    static func read(path: String) throws -> KeyFile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw CtlFailure(ExitStatus.usage, "cannot read key file \(Sanitize.display(path)): \(Self.reason(error))")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CtlFailure(ExitStatus.usage, "key file \(Sanitize.display(path)) is not UTF-8 text")
        }
        return try parse(text, origin: "key file \(Sanitize.display(path))")
    }

    /// The text of a secret key file.
    static func secretText(_ pair: CurveKeyPair) -> String {
        """
        # ECP CURVE key pair (Z85). Secret: keep this file private (mode 0600).
        public-key = \(pair.publicKey)
        secret-key = \(pair.secretKey)

        """
    }

    /// The text of a public key file.
    static func publicText(_ pair: CurveKeyPair) -> String {
        """
        # ECP CURVE public key (Z85).
        public-key = \(pair.publicKey)

        """
    }

    /// A short reason for a file error.
    static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if nsError.domain == NSCocoaErrorDomain && nsError.code == NSFileReadNoSuchFileError {
            return "no such file"
        }
        return Sanitize.display(nsError.localizedDescription)
    }
}
