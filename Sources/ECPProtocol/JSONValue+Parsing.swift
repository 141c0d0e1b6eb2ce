/// Parsing a whole document into a ``JSONValue`` with the strict parser the command decoder uses.
extension JSONValue {
    /// Parses `bytes` as one JSON document (RFC 8259, strict: no trailing commas, no raw control
    /// characters, no member named twice in an object); nil when it is not one or nests deeper
    /// than `maxDepth`.
    public static func parse(bytes: [UInt8], maxDepth: Int = 64) -> JSONValue? {
        bytes.withUnsafeBytes { raw -> JSONValue? in
            var members: [String: JSONValue] = [:]
            do {
                if let value = try JSONSyntax.parseMembers(raw, maxDepth: maxDepth, member: { members[$0] = $1 }) {
                    return value
                }
                return .object(members)
            } catch {
                return nil
            }
        }
    }
}
