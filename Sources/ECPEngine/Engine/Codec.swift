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

    private static let fileEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    /// The value as JSON for a file a person may read: pretty, with sorted keys.
    static func encodeForFile<T: Encodable>(_ value: T) -> Data {
        do {
            return try fileEncoder.encode(value)
        } catch {
            preconditionFailure("cannot encode \(T.self): \(error)")
        }
    }

    /// The value as JSON; these types always encode, so a failure is a programming error.
    static func encode<T: Encodable>(_ value: T) -> Data {
        do {
            return try encoder.encode(value)
        } catch {
            preconditionFailure("cannot encode \(T.self): \(error)")
        }
    }
}
