import ECPProtocol
import Threading
import FoundationEssentials

/// JSON encoding shared by every thread (JSONEncoder is safe to use concurrently once configured).
enum Codec {
    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.withoutEscapingSlashes]
        return e
    }()

    /// The value as JSON; these types always encode, so a failure is a programming error.
    static func encode<T: Encodable>(_ value: T) -> Data {
        do {
            return try encoder.encode(value)
        } catch {
            preconditionFailure("cannot encode \(T.self): \(error)")
        }
    }
}
