import ECPProtocol
import FoundationEssentials
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where log lines go: one line per record, written whole.
public final class LogOutput: Sendable {
    /// Holds nothing: it keeps two records' lines from interleaving.
    private let lock = Mutex(())
    private let write: @Sendable (String) -> Void

    /// Standard error.
    public static let standardError = LogOutput { line in
        var bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
    }

    public init(_ write: @escaping @Sendable (String) -> Void) {
        self.write = write
    }

    func emit(_ line: String) {
        lock.withLock { _ in write(line) }
    }
}

/// A `LogHandler` writing one JSON object per line: `ts`, `level`, `label`, `msg`, then the
/// metadata under its own (dotted) keys. Strings are JSON-escaped, so no input can break a line.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: LogOutput

    public init(label: String, level: Logger.Level = .info, output: LogOutput = .standardError) {
        self.label = label
        self.logLevel = level
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var line = "{\"ts\":\"\(Timestamp.now())\",\"level\":\"\(event.level.rawValue)\",\"label\":"
        JSONText.appendString(label, to: &line)
        line += ",\"msg\":"
        JSONText.appendString(event.message.description, to: &line)
        for key in merged.keys.sorted() {
            line += ","
            JSONText.appendString(key, to: &line)
            line += ":"
            JSONText.appendValue(merged[key]!, to: &line)
        }
        line += "}\n"
        output.emit(line)
    }
}

/// A `LogHandler` for people: `time LEVEL message key=value ...`, values quoted when needed.
public struct TextLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: LogOutput

    public init(label: String, level: Logger.Level = .info, output: LogOutput = .standardError) {
        self.label = label
        self.logLevel = level
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        // The level in a column of 8 characters (the longest, CRITICAL, fills it).
        let level = event.level.rawValue.uppercased()
        var line = "\(Timestamp.now()) \(level)\(String(repeating: " ", count: max(0, 8 - level.count)))\(event.message)"
        for key in merged.keys.sorted() {
            line += " \(key)="
            let text: String
            switch merged[key]! {
            case .string(let s): text = s
            case .stringConvertible(let c): text = c.description
            default:
                var json = ""
                JSONText.appendValue(merged[key]!, to: &json)
                text = json
            }
            if text.isEmpty || text.unicodeScalars.contains(where: TextLogHandler.needsQuoting) {
                JSONText.appendString(text, to: &line)
            } else {
                line += text
            }
        }
        line += "\n"
        output.emit(line)
    }
}

extension TextLogHandler {
    /// Characters that make a value quoted (and escaped): white space, quotes, controls (C0, DEL,
    /// C1) and Unicode line separators, so a value never breaks or colours a line.
    static func needsQuoting(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value <= 0x20 || scalar == "\"" || scalar.value == 0x7f || (0x80..<0xa0).contains(scalar.value)
            || scalar.value == 0x2028 || scalar.value == 0x2029
    }
}

/// Small JSON text writer for log lines.
enum JSONText {
    static func appendString(_ s: String, to out: inout String) {
        JSONQuoting.append(s, to: &out)
    }

    static func appendValue(_ value: Logger.MetadataValue, to out: inout String) {
        switch value {
        case .string(let s): appendString(s, to: &out)
        case .stringConvertible(let c):
            if let n = c as? any BinaryInteger { out += "\(n)" }
            else if let d = c as? Double, d.isFinite { out += "\(d)" }
            else if let b = c as? Bool { out += b ? "true" : "false" }
            else { appendString(c.description, to: &out) }
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                appendValue(v, to: &out)
            }
            out += "]"
        case .dictionary(let d):
            out += "{"
            for (i, k) in d.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                appendString(k, to: &out)
                out += ":"
                appendValue(d[k]!, to: &out)
            }
            out += "}"
        }
    }
}
