import ECPProtocol
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where the console's log lines go: one line per record, written whole.
public final class ConsoleLogOutput: Sendable {
    private let lock = Mutex(())
    private let write: @Sendable (String) -> Void

    /// Standard error; a line that cannot be written (the reader went away) is dropped.
    public static let standardError = ConsoleLogOutput { line in
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

/// One JSON object per line, as the worker logs: `ts`, `level`, `label`, `msg` (a constant
/// sentence), then the metadata under its dotted keys. Every string is JSON-escaped, so no text
/// from a peer or a browser can break or forge a line.
public struct ConsoleJSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: ConsoleLogOutput

    public init(label: String, level: Logger.Level = .info, output: ConsoleLogOutput = .standardError) {
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
        JSONQuoting.append(label, to: &line)
        line += ",\"msg\":"
        JSONQuoting.append(event.message.description, to: &line)
        for key in merged.keys.sorted() {
            line += ","
            JSONQuoting.append(key, to: &line)
            line += ":"
            Self.append(merged[key]!, to: &line)
        }
        line += "}\n"
        output.emit(line)
    }

    static func append(_ value: Logger.MetadataValue, to out: inout String) {
        switch value {
        case .string(let s): JSONQuoting.append(s, to: &out)
        case .stringConvertible(let c):
            if let n = c as? any BinaryInteger {
                out += "\(n)"
            } else if let d = c as? Double, d.isFinite {
                out += "\(d)"
            } else if let b = c as? Bool {
                out += b ? "true" : "false"
            } else {
                JSONQuoting.append(c.description, to: &out)
            }
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                append(v, to: &out)
            }
            out += "]"
        case .dictionary(let d):
            out += "{"
            for (i, key) in d.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                JSONQuoting.append(key, to: &out)
                out += ":"
                append(d[key]!, to: &out)
            }
            out += "}"
        }
    }
}

/// `time LEVEL message key=value ...` for people; values JSON-quoted when they hold white space,
/// quotes or control characters.
public struct ConsoleTextLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let output: ConsoleLogOutput

    public init(level: Logger.Level = .info, output: ConsoleLogOutput = .standardError) {
        self.logLevel = level
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let level = event.level.rawValue.uppercased()
        var line = "\(Timestamp.now()) \(level)\(String(repeating: " ", count: max(0, 8 - level.count)))\(event.message)"
        for key in merged.keys.sorted() {
            line += " \(key)="
            var json = ""
            ConsoleJSONLogHandler.append(merged[key]!, to: &json)
            if case .string(let s) = merged[key]!, !s.isEmpty,
                !s.unicodeScalars.contains(where: { $0.value <= 0x20 || $0 == "\"" || $0.value >= 0x7f })
            {
                line += s
            } else {
                line += json
            }
        }
        line += "\n"
        output.emit(line)
    }
}
