/// A validated command, ready to run.
public struct Command: Sendable, Equatable {
    /// The sender's correlation id (1 to 128 characters of `[A-Za-z0-9._:-]`).
    public var id: String
    /// What to do.
    public var op: Op
    /// A domain name or UUID; present exactly when `op.needsMachine`.
    public var machine: String?
    /// The op's arguments, type-checked.
    public var args: Arguments
    /// Optional deadline in milliseconds, counted from acceptance.
    public var timeoutMs: Int?

    public init(id: String, op: Op, machine: String? = nil, args: Arguments = .init(), timeoutMs: Int? = nil) {
        self.id = id
        self.op = op
        self.machine = machine
        self.args = args
        self.timeoutMs = timeoutMs
    }

    /// The arguments the protocol defines; others are ignored.
    public struct Arguments: Sendable, Equatable {
        /// `start`: boot with the vCPUs paused.
        public var paused: Bool?
        /// `shutdown`: wait this long for the guest to power off.
        public var waitMs: Int?
        /// `shutdown`: destroy the machine when it is not off after `waitMs`.
        public var force: Bool?
        /// `define`: the domain XML.
        public var xml: String?
        /// `replay`: messages after this seq.
        public var sinceSeq: UInt64?
        /// `replay`: at most this many messages.
        public var limit: Int?
        /// `replay`: only topics starting with one of these.
        public var topics: [String]?
        /// `set_policy`: the members to change.
        public var policy: PolicyChange?
        /// `host_stop`: one mode for every machine (but those whose policy says `none`).
        public var hostStopMode: HostStopMode?
        /// `host_stop`: how long each machine's ACPI shutdown may take before it is forced.
        public var hostStopTimeoutMs: Int?
        /// `host_stop`: how many machines are stopped at once.
        public var parallel: Int?

        public init(paused: Bool? = nil, waitMs: Int? = nil, force: Bool? = nil, xml: String? = nil) {
            self.paused = paused
            self.waitMs = waitMs
            self.force = force
            self.xml = xml
        }
    }
}

/// Why a command was refused before it ran (the `reason` of a `request_error`).
public enum RequestErrorReason: String, Sendable, Codable, CaseIterable {
    case malformedJSON = "malformed_json"
    case notAnObject = "not_an_object"
    case unsupportedVersion = "unsupported_version"
    case missingField = "missing_field"
    case invalidField = "invalid_field"
    case unknownOp = "unknown_op"
    case tooLarge = "too_large"
    case badFrames = "bad_frames"
    case unauthorized
    case busy
}

/// A command that could not be parsed or validated: it never runs and changes nothing.
public struct RequestError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: RequestErrorReason
    /// The command's id, when it could be read.
    public var id: String?
    /// The offending field (dotted for arguments: `args.xml`).
    public var field: String?
    /// A sentence saying what was wrong.
    public var detail: String
    /// The command's op, when its arguments were what was wrong.
    public var op: Op?

    public init(reason: RequestErrorReason, id: String? = nil, field: String? = nil, detail: String) {
        self.reason = reason
        self.id = id
        self.field = field
        self.detail = detail
    }

    public var description: String {
        "\(reason.rawValue)\(field.map { " (\($0))" } ?? ""): \(detail)"
    }
}
