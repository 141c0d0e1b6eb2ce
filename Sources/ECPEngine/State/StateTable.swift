import ECPProtocol
import Threading
import FoundationEssentials

/// The persisted table of machines: what state each should be in, and what was last seen.
public struct StateTable: Codable, Sendable, Equatable {
    public var version: Int = 1
    public var worker: String
    public var savedAt: String
    /// Keyed by machine UUID (lower case).
    public var machines: [String: Entry]

    enum CodingKeys: String, CodingKey {
        case version, worker, machines
        case savedAt = "saved_at"
    }

    public init(worker: String, savedAt: String = Timestamp.now(), machines: [String: Entry] = [:]) {
        self.worker = worker
        self.savedAt = savedAt
        self.machines = machines
    }

    /// One machine's row.
    public struct Entry: Codable, Sendable, Equatable {
        public var name: String
        /// The state to restore: set by state-changing commands, or for machines no command
        /// touched, the state seen at the last graceful shutdown.
        public var desired: String
        /// The last state seen (null before it has been seen).
        public var observed: String?
        public var updatedAt: String
        /// Who set `desired`: `command` or `observed`. Absent in tables written by hand: then `observed`.
        public var desiredFrom: String?
        /// How restores and host stops treat the machine; absent: the defaults.
        public var policy: RestorePolicy?

        enum CodingKeys: String, CodingKey {
            case name, desired, observed, policy
            case updatedAt = "updated_at"
            case desiredFrom = "desired_from"
        }

        public init(name: String, desired: String, observed: String?, updatedAt: String, desiredFrom: String?, policy: RestorePolicy? = nil) {
            self.policy = policy
            self.name = name
            self.desired = desired
            self.observed = observed
            self.updatedAt = updatedAt
            self.desiredFrom = desiredFrom
        }

        /// Whether a command through the worker ever set `desired`.
        public var touchedByCommand: Bool { desiredFrom == "command" }
    }

    static let states: Set<String> = ["nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended"]

    /// Reads and checks a table; the error says what is wrong, for a person.
    static func parse(_ data: Data) throws(StateTableError) -> StateTable {
        if data.isEmpty { throw StateTableError("the file is empty") }
        let table: StateTable
        do {
            table = try JSONDecoder().decode(StateTable.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw StateTableError("field \(Self.path(context.codingPath + [key])) is missing")
        } catch let DecodingError.typeMismatch(_, context) {
            throw StateTableError("field \(Self.path(context.codingPath)) has the wrong type")
        } catch let DecodingError.valueNotFound(_, context) {
            throw StateTableError("field \(Self.path(context.codingPath)) is null")
        } catch {
            throw StateTableError("it is not valid JSON (truncated or damaged)")
        }
        if table.version != 1 { throw StateTableError("version \(table.version) is not supported (this worker reads 1)") }
        for (uuid, entry) in table.machines {
            guard uuid.count == 36, UUID(uuidString: uuid) != nil else {
                throw StateTableError("machine key \(uuid.debugDescription) is not a UUID")
            }
            guard states.contains(entry.desired) else {
                throw StateTableError("machine \(uuid): desired \(entry.desired.debugDescription) is not a machine state")
            }
            if let o = entry.observed, !states.contains(o) {
                throw StateTableError("machine \(uuid): observed \(o.debugDescription) is not a machine state")
            }
            if entry.name.isEmpty { throw StateTableError("machine \(uuid): name is empty") }
            if let problem = entry.policy?.problem { throw StateTableError("machine \(uuid): \(problem)") }
        }
        return table
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}

/// Why a state table could not be read.
public struct StateTableError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension StateTable {
    /// The table as the file holds it: keys sorted, two-space indents, one field per line, ending
    /// in a newline, so a person can read it and a change shows as a line diff.
    func fileBytes() -> Data {
        Codec.encodeForFile(self) + Data("\n".utf8)
    }
}
