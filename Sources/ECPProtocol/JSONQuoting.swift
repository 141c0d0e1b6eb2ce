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
                    out += "\\u" + paddedHex(scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out.unicodeScalars.append("\"")
    }
}

/// `value` in hexadecimal, zero-padded to at least `width` digits (as `%04x` or `%04X` would give).
func paddedHex(_ value: UInt32, width: Int = 4, uppercase: Bool = false) -> String {
    let digits = String(value, radix: 16, uppercase: uppercase)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}
