import Foundation

/// Strict quoting of text as a JSON string for places a person reads: besides what JSON requires,
/// DEL, the C1 controls and the Unicode line and paragraph separators are escaped too, so text
/// from outside can neither break a line nor drive a terminal.
public enum JSONQuoting {
    /// Appends `s` as a quoted JSON string.
    public static func append(_ s: String, to out: inout String) {
        out.unicodeScalars.append("\"")
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f || (0x80..<0xa0).contains(scalar.value)
                    || scalar.value == 0x2028 || scalar.value == 0x2029
                {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out.unicodeScalars.append("\"")
    }
}
