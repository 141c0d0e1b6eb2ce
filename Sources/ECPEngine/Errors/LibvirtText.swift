/// libvirt's own strings, bounded before they go out in a record or a log line.
///
/// libvirt quotes what it was given: a define of a huge one-line XML fails with a message that
/// carries that line, so one bad command would otherwise answer, publish and log megabytes.
public enum LibvirtText {
    /// The most bytes of one string kept.
    public static let maxBytes = 4096

    /// `text` when it fits in `limit` UTF-8 bytes; otherwise its first `limit` bytes or fewer (a
    /// character is never split) followed by `… [N bytes cut]`, N the bytes left out.
    public static func cut(_ text: String, limit: Int = maxBytes) -> String {
        let utf8 = text.utf8
        guard utf8.count > limit else { return text }
        var end = utf8.index(utf8.startIndex, offsetBy: limit)
        // Back to the first byte of the character that would be split.
        while end > utf8.startIndex && utf8[end] & 0xC0 == 0x80 {
            end = utf8.index(before: end)
        }
        let kept = utf8.distance(from: utf8.startIndex, to: end)
        return String(decoding: utf8[..<end], as: UTF8.self) + "… [\(utf8.count - kept) bytes cut]"
    }

    public static func cut(_ text: String?, limit: Int = maxBytes) -> String? {
        text.map { cut($0, limit: limit) }
    }
}
