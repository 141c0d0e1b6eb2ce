import CZeroMQ
import FoundationEssentials
import Glibc

/// A CURVE key file: UTF-8 text, blank lines and `#` comments ignored, other lines
/// `name = value` with the names `public-key` and `secret-key` (each at most once), each value a
/// 40-character Z85 key.
///
/// ```
/// # CURVE key pair (Z85). Secret: keep this file private (mode 0600).
/// public-key = <40 Z85 characters>
/// secret-key = <40 Z85 characters>
/// ```
///
/// A secret key file holds both lines (the public one is derived when absent, and must match
/// when present); a public key file holds only `public-key`.
public struct CurveKeyFile: Sendable, Equatable {
    /// The Z85 public key.
    public var publicKey: String
    /// The Z85 secret key, for a secret key file.
    public var secretKey: String?

    public init(publicKey: String, secretKey: String? = nil) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// Why a key file cannot be used; the message names the file and the line.
    public struct Error: Swift.Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
        public init(_ message: String) { self.message = message }
    }

    /// The characters of ZeroMQ's Z85 alphabet.
    public static let z85Alphabet = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")

    /// Whether `text` is 40 characters of the Z85 alphabet.
    public static func isZ85Key(_ text: String) -> Bool {
        text.count == CurveKeyPair.z85Length && text.allSatisfy { z85Alphabet.contains($0) }
    }

    /// Parses a key file's text; `origin` names the file in error messages.
    public static func parse(_ text: String, origin: String) throws(CurveKeyFile.Error) -> CurveKeyFile {
        var publicKey: String?
        var secretKey: String?
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = trimmed(rawLine, where: isBlankOrLineEnd)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let at = "\(origin), line \(index + 1)"
            guard let equals = line.firstIndex(of: "=") else {
                throw Error("\(at): expected `public-key = ...` or `secret-key = ...`")
            }
            let name = trimmed(line[..<equals], where: isBlank)
            let value = trimmed(line[line.index(after: equals)...], where: isBlank)
            switch name {
            case "public-key", "secret-key": break
            default: throw Error("\(at): unknown name \(name.debugDescription); a key file has public-key and secret-key")
            }
            guard isZ85Key(value) else { throw Error("\(at): \(name) is not a 40-character Z85 CURVE key") }
            if name == "public-key" {
                guard publicKey == nil else { throw Error("\(at): public-key given twice") }
                publicKey = value
            } else {
                guard secretKey == nil else { throw Error("\(at): secret-key given twice") }
                secretKey = value
            }
        }
        if let secret = secretKey {
            let derived: String
            do {
                derived = try CurveKeyPair.publicKey(forSecretKey: secret)
            } catch {
                throw Error("\(origin): the secret key is not usable: \(error)")
            }
            if let given = publicKey, given != derived { throw Error("\(origin): public-key does not belong to secret-key") }
            publicKey = derived
        }
        guard let publicKey else { throw Error("\(origin): no public-key or secret-key line") }
        return CurveKeyFile(publicKey: publicKey, secretKey: secretKey)
    }

    /// Whether a Unicode scalar counts as a blank around a name or a value: a tab, a space
    /// separator (general category Zs) or a zero-width space.
    private static func isBlank(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "\t" || scalar == "\u{200B}" || scalar.properties.generalCategory == .spaceSeparator
    }

    /// Whether a Unicode scalar counts as a blank around a line: a blank, or any other Unicode
    /// white space (the line ends among them).
    private static func isBlankOrLineEnd(_ scalar: Unicode.Scalar) -> Bool {
        isBlank(scalar) || scalar.properties.isWhitespace
    }

    /// The text without the leading and trailing Unicode scalars that `isTrimmed` accepts.
    private static func trimmed(_ text: Substring, where isTrimmed: (Unicode.Scalar) -> Bool) -> String {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isTrimmed($0) }),
            let last = scalars.lastIndex(where: { !isTrimmed($0) })
        else { return "" }
        return String(scalars[first...last])
    }

    /// Reads a key file. With `requirePrivate`, a file that others than its owner can read (or
    /// write) is refused: a secret key must stay secret.
    public static func read(path: String, requirePrivate: Bool = false) throws(CurveKeyFile.Error) -> CurveKeyFile {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw Error("cannot read key file \(path): \(String(cString: strerror(errno)))")
        }
        if requirePrivate && info.st_mode & 0o077 != 0 {
            throw Error(
                "key file \(path) is readable by others than its owner (mode \(String(info.st_mode & 0o777, radix: 8))); "
                    + "make it private: chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Error("cannot read key file \(path)")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw Error("key file \(path) is not UTF-8 text") }
        return try parse(text, origin: "key file \(path)")
    }

    /// The text of a secret key file.
    public static func secretText(_ pair: CurveKeyPair) -> String {
        "# CURVE key pair (Z85). Secret: keep this file private (mode 0600).\npublic-key = \(pair.publicKey)\nsecret-key = \(pair.secretKey)\n"
    }

    /// The text of a public key file.
    public static func publicText(_ pair: CurveKeyPair) -> String {
        "# CURVE public key (Z85).\npublic-key = \(pair.publicKey)\n"
    }
}

/// ZeroMQ's Z85 encoding of binary keys.
public enum Z85 {
    /// Encodes bytes whose count is a multiple of 4 (a 32-byte CURVE key gives 40 characters).
    public static func encode(_ data: Data) -> String? {
        guard data.count % 4 == 0 else { return nil }
        var out = [CChar](repeating: 0, count: data.count * 5 / 4 + 1)
        let ok = data.withUnsafeBytes { buf in
            zmq_z85_encode(&out, buf.bindMemory(to: UInt8.self).baseAddress, buf.count) != nil
        }
        return ok ? out.withUnsafeBufferPointer { String(cString: $0.baseAddress!) } : nil
    }

    /// Decodes Z85 text whose length is a multiple of 5.
    public static func decode(_ text: String) -> Data? {
        guard text.utf8.count % 5 == 0 else { return nil }
        var out = [UInt8](repeating: 0, count: text.utf8.count * 4 / 5)
        let ok = text.withCString { zmq_z85_decode(&out, $0) != nil }
        return ok ? Data(out) : nil
    }
}
