import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Unbuffered, whole-line output to standard output and standard error.
///
/// Every line is written with one `write(2)` loop, so lines of `tail` reach a pipe at once and
/// never interleave half-way with the other stream.
enum Console {
    /// Writes a line to standard output.
    static func out(_ line: String) {
        emit(line + "\n", to: STDOUT_FILENO)
    }

    /// Writes a line to standard error.
    static func err(_ line: String) {
        emit(line + "\n", to: STDERR_FILENO)
    }

    /// Writes lines to standard output.
    static func out(lines: [String]) {
        guard !lines.isEmpty else { return }
        emit(lines.joined(separator: "\n") + "\n", to: STDOUT_FILENO)
    }

    /// Writes lines to standard error.
    static func err(lines: [String]) {
        guard !lines.isEmpty else { return }
        emit(lines.joined(separator: "\n") + "\n", to: STDERR_FILENO)
    }

    /// Writes a JSON document from the wire as one line on standard output (for `--json`).
    ///
    /// The worker's JSON is printed byte for byte. Only characters a terminal could act on are
    /// changed, in a way that keeps the JSON's meaning: inside a string, a raw control character
    /// becomes its `\u00XX` escape; outside strings, where only white space is valid, it
    /// becomes a space (so the document stays on one line).
    static func out(json data: Data) {
        out(Sanitize.jsonLine(data))
    }

    private static func emit(_ text: String, to fd: Int32) {
        emit(Array(text.utf8), to: fd)
    }

    private static func emit(_ bytes: [UInt8], to fd: Int32) {
        bytes.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return }
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, base + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return
                }
                offset += written
            }
        }
    }
}

/// Makes text from the wire safe for a terminal.
enum Sanitize {
    /// The text with every control character escaped: `\n`, `\r`, `\t`, and `\u001b`-style
    /// escapes for the other C0 and C1 controls, DEL, the line and paragraph separators and the
    /// bidirectional-text controls. A name containing ESC can therefore never color or move
    /// the terminal. Everything else is kept as it is.
    static func display(_ text: String) -> String {
        var out = ""
        out.unicodeScalars.reserveCapacity(text.unicodeScalars.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if needsEscape(scalar) {
                    out += "\\u" + hex(scalar.value, width: 4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// Like ``display(_:)``, with `-` for an empty or missing value (for table cells).
    static func cell(_ text: String?) -> String {
        guard let text, !text.isEmpty else { return "-" }
        return display(text)
    }

    /// A JSON document on one line, with raw control characters neutralised (see
    /// ``Console/out(json:)``).
    static func jsonLine(_ data: Data) -> String {
        let text = String(decoding: data, as: UTF8.self)
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        var inString = false
        var escaped = false
        for scalar in text.unicodeScalars {
            if needsEscape(scalar) {
                if inString {
                    out += "\\u" + hex(scalar.value, width: 4)
                    escaped = false
                } else {
                    out += " "
                }
                continue
            }
            out.unicodeScalars.append(scalar)
            if inString {
                if escaped {
                    escaped = false
                } else if scalar == "\\" {
                    escaped = true
                } else if scalar == "\"" {
                    inString = false
                }
            } else if scalar == "\"" {
                inString = true
            }
        }
        return out
    }

    /// Whether a scalar is printed as an escape.
    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00..<0x20, 0x7f, 0x80..<0xa0: return true
        case 0x061c, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a...0x202e, 0x2066...0x2069: return true
        default: return false
        }
    }

    private static func hex(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

/// Whether and how to color output for a person.
struct Style {
    /// `true` when escape codes may be written.
    var color: Bool

    /// Colors when `fd` is a terminal, `--no-color` is not given, `NO_COLOR` is not set and
    /// `TERM` is not `dumb`.
    static func forDescriptor(_ fd: Int32, noColor: Bool) -> Style {
        let environment = ProcessInfo.processInfo.environment
        let noColorVariable = !(environment["NO_COLOR"] ?? "").isEmpty
        let wanted = !noColor && !noColorVariable && environment["TERM"] != "dumb"
        return Style(color: wanted && isatty(fd) == 1)
    }

    /// Standard output's style.
    static func stdout(noColor: Bool) -> Style { forDescriptor(STDOUT_FILENO, noColor: noColor) }

    /// Standard error's style.
    static func stderr(noColor: Bool) -> Style { forDescriptor(STDERR_FILENO, noColor: noColor) }

    /// The text in red (for errors), or unchanged without color.
    func red(_ text: String) -> String {
        color ? "\u{1B}[31m" + text + "\u{1B}[0m" : text
    }

    /// The text in bold, or unchanged without color.
    func bold(_ text: String) -> String {
        color ? "\u{1B}[1m" + text + "\u{1B}[0m" : text
    }
}

/// A plain-text table: a header row and rows, columns left-aligned and separated by two
/// spaces. Cells must already be sanitized.
struct TextTable {
    /// The column titles.
    var headers: [String]
    /// The rows; short rows are padded with empty cells.
    var rows: [[String]] = []

    /// The table's lines, without trailing blanks.
    func render() -> [String] {
        var widths = headers.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func line(_ cells: [String]) -> String {
            var text = ""
            for index in widths.indices {
                let cell = index < cells.count ? cells[index] : ""
                if index == widths.count - 1 {
                    text += cell
                } else {
                    text += cell + String(repeating: " ", count: widths[index] - cell.count + 2)
                }
            }
            while text.hasSuffix(" ") { text.removeLast() }
            return text
        }
        return [line(headers)] + rows.map(line)
    }
}

/// `key: value` lines with the values aligned. Keys and values must already be sanitized.
func alignedPairs(_ pairs: [(String, String)], indent: String = "") -> [String] {
    let width = pairs.map(\.0.count).max() ?? 0
    return pairs.map { key, value in
        indent + key + ":" + String(repeating: " ", count: width - key.count + 1) + value
    }
}
