/// Strict quoting of text as a JSON string for places a person reads: besides what JSON requires,
/// DEL, the C1 controls and the Unicode line and paragraph separators are escaped too, so text
/// from outside can neither break a line nor drive a terminal.
public enum JSONQuoting {
    /// Appends `s` as a quoted JSON string.
    public static func append(_ s: String, to out: inout String) {
        var s = s
        // Text with no byte that could belong to a character needing an escape (the usual case) is
        // appended whole; other text goes character by character. In UTF-8 the C1 controls are
        // C2 80...C2 9F and the separators E2 80 A8/A9, so their lead bytes are enough to look for.
        let clean = s.withUTF8 { utf8 -> Bool in
            for b in utf8 where b < 0x20 || b == 0x22 || b == 0x5c || b == 0x7f || b == 0xc2 || b == 0xe2 {
                return false
            }
            return true
        }
        out.append("\"")
        if clean {
            out.append(s)
        } else {
            appendEscaping(s, to: &out)
        }
        out.append("\"")
    }

    private static func appendEscaping(_ s: String, to out: inout String) {
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
    }
}

/// `value` in hexadecimal, zero-padded to at least `width` digits (as `%04x` or `%04X` would give).
func paddedHex(_ value: UInt32, width: Int = 4, uppercase: Bool = false) -> String {
    let digits = String(value, radix: 16, uppercase: uppercase)
    return String(repeating: "0", count: max(0, width - digits.count)) + digits
}
