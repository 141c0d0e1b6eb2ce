// The catalog that turns libvirt's error fields (virError.code, .domain, .int1) into words: a
// category, whether a retry can succeed, the failing layer, the problem, and a one-line summary
// for a person. It works on the Libvirt module's named codes and domains, plain values, and calls
// no libvirt function, so it stays pure; the tables it reads are in LibvirtErrorCatalog+Tables.swift.

import Libvirt

/// The 11 categories of the wire protocol: every error the worker reports has one, libvirt's
/// (`E2LibvirtError.category`) and the worker's own (`WorkerErrorRecord.category`).
public enum ErrorCategory: String, Sendable, Codable, CaseIterable {
    /// The object the operation names does not exist.
    case notFound = "not_found"
    /// The object the operation would create exists already.
    case alreadyExists = "already_exists"
    /// The object is not in a state that allows the operation.
    case invalidState = "invalid_state"
    /// An argument of the call is not valid.
    case invalidArgument = "invalid_argument"
    /// A definition (domain XML) or a configuration file is wrong or not usable on this host.
    case config
    /// The connection to the hypervisor, its daemon or a transport failed.
    case connection
    /// The operation was refused: read-only connection, access control, authentication.
    case permission
    /// A resource is exhausted or in use.
    case resource
    /// The driver or hypervisor does not support the operation.
    case unsupported
    /// The operation or a guest agent did not answer in time.
    case timeout
    /// Anything else: a failure inside libvirt, the hypervisor or the system.
    case `internal`
}

/// Words for libvirt's numeric error fields.
///
/// Every value of libvirt 9.0.0's `virErrorNumber` (0…110) and `virErrorDomain` (0…72) has an
/// entry of its own; a value from a newer libvirt gets a neutral fallback, never a trap.
///
/// Category choices for codes that could go two ways:
/// - Definition problems (XML errors, missing name/OS/devices, unsupported configuration
///   constructs, incompatible CPU) are `config`: the definition has to change. `invalid_argument`
///   is kept for bad API arguments and invalid object handles.
/// - `VIR_ERR_OPERATION_FAILED` and `VIR_ERR_INTERNAL_ERROR` are generic. libvirt reports a
///   duplicate machine name as the first ("domain 'x' already exists with uuid …"), and the test
///   driver reports state conflicts ("Domain 'x' is already running", "domain 'x' not running")
///   as the second.
///   When libvirt's `message` is passed, these English phrases refine the category to
///   `already_exists` or `invalid_state`; without a message, both are `internal`.
/// - `VIR_ERR_SYSTEM_ERROR` is classified by its layer and errno (`int1`): from the
///   connection layers (RPC, remote driver, SSH, libssh) it is `connection` and retryable, except
///   `EACCES`/`EPERM`, which are `permission`; elsewhere the errno decides (`ENOSPC` → `resource`,
///   `ETIMEDOUT` → `timeout`, `ENOENT` → `not_found`, …), and `internal` when it says nothing.
/// - `VIR_ERR_INTERNAL_ERROR` from the RPC layer (`VIR_FROM_RPC`) is `connection` and retryable
///   ("client socket is closed", "connection closed due to keepalive timeout").
public enum LibvirtErrorCatalog {
    /// A libvirt error code, such as `.noDomain`.
    public typealias Code = LibvirtError.Code

    /// A libvirt error domain, such as `.test`.
    public typealias Domain = LibvirtError.Domain

    /// Number of `virErrorNumber` values this catalog knows (111 for libvirt 9.0.0).
    public static let knownCodeCount: Int = codeTable.count

    /// Number of `virErrorDomain` values this catalog knows (73 for libvirt 9.0.0).
    public static let knownDomainCount: Int = layerTable.count

    // MARK: - Classification

    /// The category of an error.
    ///
    /// The code decides; the domain and `int1` refine it (a system error from the RPC layer is a
    /// `connection` failure, its errno may make it `permission`, `resource`, …), and so does
    /// libvirt's `message` for the generic codes `.internalError` and `.operationFailed` when it
    /// is given. Unknown codes are `internal`.
    public static func category(code: Code, domain: Domain, int1: Int32, message: String? = nil) -> ErrorCategory {
        classify(code: code, domain: domain, int1: int1, message: message).category
    }

    /// Whether the same command sent again later can succeed.
    ///
    /// True for a lost or refused connection, timeouts, busy or temporarily exhausted resources,
    /// an aborted operation and messages that say "try again"; false for missing objects, invalid
    /// arguments, definition errors, permission problems, unsupported operations, state conflicts
    /// and unknown codes.
    public static func isRetryable(code: Code, domain: Domain, int1: Int32, message: String? = nil) -> Bool {
        classify(code: code, domain: domain, int1: int1, message: message).retryable
    }

    // MARK: - Words

    /// The layer that failed, in words, from the error domain: `.test` → "test driver",
    /// `.qemu` → "QEMU driver", `.rpc` → "remote connection", `.domain` → "domain configuration",
    /// `.none` → "libvirt"; "libvirt subsystem <n>" for a value this catalog does not know.
    public static func layer(domain: Domain) -> String {
        layerTable[domain] ?? "libvirt subsystem \(domain.rawValue)"
    }

    /// What went wrong, in words for a person, from the error code: `.noDomain` → "it does not
    /// exist", `.operationInvalid` → "the operation is not valid in the machine's current state";
    /// "libvirt reported error <n>" for a value this catalog does not know.
    public static func problem(code: Code) -> String {
        codeEntry(code)?.problem ?? "libvirt reported error \(code.rawValue)"
    }

    /// The symbolic name of a Linux errno value: 2 → "ENOENT", 13 → "EACCES",
    /// 111 → "ECONNREFUSED"; nil for a value that is not a known errno (0, negatives, > 133).
    public static func errnoName(_ value: Int32) -> String? {
        errnoTable[value]?.name
    }

    /// The text glibc gives for a Linux errno value in the C locale: 2 → "No such file or
    /// directory"; nil when `errnoName` is nil.
    public static func errnoDescription(_ value: Int32) -> String? {
        errnoTable[value]?.text
    }

    // MARK: - Summary

    /// Longest piece of libvirt's message that goes into a summary; the full message stays in the
    /// error record.
    static let maxDetailLength = 400

    /// One sentence for a person: the layer, the operation and machine, what went wrong, and the
    /// code name; for a system error (`.systemError`) whose `int1` is an errno (> 0), also the
    /// errno's name and text.
    ///
    /// Shape: `<layer>: cannot <action>: <problem>[: <detail>] (<codeName>[, <ERRNO>: <text>])`,
    /// e.g. "test driver: cannot start machine 'web9': it does not exist (VIR_ERR_NO_DOMAIN)".
    ///
    /// `<detail>` is libvirt's own message, so the reason is not lost: its first line, without
    /// the prefix libvirt puts in front for the code ("internal error: ", "Requested operation is
    /// not valid: ", …) and without libxml's "(file):line: " location. It is left out when it only
    /// repeats the code's standard text or the problem phrase, and for a missing machine, which
    /// `action` already names.
    ///
    /// - Parameters:
    ///   - code: `virError.code`.
    ///   - codeName: the libvirt name of `code`; when empty, `code.name` is used.
    ///   - domain: `virError.domain`.
    ///   - message: `virError.message`.
    ///   - int1: `virError.int1` (the errno of a system error).
    ///   - action: what was being done, e.g. "start machine 'web9'", "define a machine",
    ///     "connect to qemu:///system"; when empty, the "cannot …: " part is left out.
    public static func summary(code: Code, codeName: String, domain: Domain, message: String?, int1: Int32, action: String) -> String {
        var text = layer(domain: domain) + ": "
        let act = trimmed(action)
        if !act.isEmpty {
            text += "cannot \(act): "
        }
        let phrase = problem(code: code)
        text += phrase
        if let detail = detail(code: code, message: message, phrase: phrase) {
            text += ": " + detail
        }
        let name = trimmed(codeName)
        var tail = name.isEmpty ? code.name : name
        if code == .systemError, int1 > 0 {
            tail += ", " + errnoLabel(int1)
        }
        text += " (\(tail))"
        return text
    }

    // MARK: - Internals

    /// A category with its retry verdict.
    struct Classification: Equatable, Sendable {
        let category: ErrorCategory
        let retryable: Bool
    }

    /// The layers a client talks to a daemon through.
    static let connectionLayers: Set<Domain> = [.rpc, .remote, .ssh, .libssh]

    /// The table entry of a code, nil when the catalog does not know it.
    static func codeEntry(_ code: Code) -> CodeEntry? {
        codeTable[code]
    }

    /// Category and retry verdict of an error.
    static func classify(code: Code, domain: Domain, int1: Int32, message: String?) -> Classification {
        guard let entry = codeEntry(code) else {
            return Classification(category: .internal, retryable: false)
        }
        var result = Classification(category: entry.category, retryable: entry.retryable)
        if code == .systemError {
            result = classifySystemError(domain: domain, errno: int1)
        } else if code == .internalError, domain == .rpc {
            result = Classification(category: .connection, retryable: true)
        } else if code == .internalError || code == .operationFailed,
                  let refined = classifyGenericMessage(message) {
            result = refined
        }
        if !result.retryable, let message, message.lowercased().contains("try again") {
            result = Classification(category: result.category, retryable: true)
        }
        return result
    }

    /// A system error (`.systemError`): the layer and the errno decide.
    static func classifySystemError(domain: Domain, errno: Int32) -> Classification {
        if connectionLayers.contains(domain) {
            switch errno {
            case 1, 13: // EPERM, EACCES: e.g. the daemon's socket is not ours to open
                return Classification(category: .permission, retryable: false)
            default: // ENOENT/ECONNREFUSED on the socket, EOF, reset, resolution failure…
                return Classification(category: .connection, retryable: true)
            }
        }
        switch errno {
        case 1, 13, 30: // EPERM, EACCES, EROFS
            return Classification(category: .permission, retryable: false)
        case 62, 110: // ETIME, ETIMEDOUT
            return Classification(category: .timeout, retryable: true)
        case 32, 99, 100, 101, 102, 103, 104, 107, 108, 111, 112, 113:
            // EPIPE, EADDRNOTAVAIL, ENETDOWN, ENETUNREACH, ENETRESET, ECONNABORTED, ECONNRESET,
            // ENOTCONN, ESHUTDOWN, ECONNREFUSED, EHOSTDOWN, EHOSTUNREACH
            return Classification(category: .connection, retryable: true)
        case 11, 12, 16, 23, 24, 26, 98, 105:
            // EAGAIN, ENOMEM, EBUSY, ENFILE, EMFILE, ETXTBSY, EADDRINUSE, ENOBUFS
            return Classification(category: .resource, retryable: true)
        case 28, 122: // ENOSPC, EDQUOT
            return Classification(category: .resource, retryable: false)
        case 38, 93, 95, 97: // ENOSYS, EPROTONOSUPPORT, EOPNOTSUPP, EAFNOSUPPORT
            return Classification(category: .unsupported, retryable: false)
        case 17: // EEXIST
            return Classification(category: .alreadyExists, retryable: false)
        case 2, 6, 19: // ENOENT, ENXIO, ENODEV
            return Classification(category: .notFound, retryable: false)
        case 4: // EINTR
            return Classification(category: .internal, retryable: true)
        default:
            return Classification(category: .internal, retryable: false)
        }
    }

    /// Phrases of libvirt's (untranslated) messages that give away what a generic code
    /// (`.internalError`, `.operationFailed`) means, checked in order.
    static let genericMessageRules: [(phrases: [String], result: Classification)] = [
        (["already being removed"],
         Classification(category: .invalidState, retryable: true)),
        (["already exists", "already defined", "exists already"],
         Classification(category: .alreadyExists, retryable: false)),
        (["already running", "already active", "already paused", "not running", "no longer running",
          "not paused", "not active", "is not suspended", "already suspended"],
         Classification(category: .invalidState, retryable: false)),
    ]

    /// The refinement a generic code's message gives, nil when it gives none.
    static func classifyGenericMessage(_ message: String?) -> Classification? {
        guard let message else { return nil }
        let lower = message.lowercased()
        for rule in genericMessageRules where rule.phrases.contains(where: { lower.contains($0) }) {
            return rule.result
        }
        return nil
    }

    /// "ENOENT: No such file or directory", or "errno <n>" for an unknown value.
    static func errnoLabel(_ value: Int32) -> String {
        guard let info = errnoTable[value] else { return "errno \(value)" }
        return "\(info.name): \(info.text)"
    }

    /// The part of libvirt's message worth adding after the problem phrase, nil when nothing is.
    static func detail(code: Code, message: String?, phrase: String) -> String? {
        guard let message else { return nil }
        let entry = codeEntry(code)
        if let entry, !entry.showsDetail { return nil }
        guard let firstLine = message.split(whereSeparator: \.isNewline)
            .map({ trimmed(String($0)) })
            .first(where: { !$0.isEmpty })
        else { return nil }
        var text = firstLine
        if let entry {
            if sameIgnoringCase(text, entry.standardText) { return nil }
            if let prefix = entry.messagePrefix {
                while let rest = dropPrefixIgnoringCase(prefix, from: text) {
                    text = trimmed(rest)
                }
            }
        }
        text = dropXMLLocation(text)
        while text.hasSuffix(".") || text.hasSuffix(":") {
            text = trimmed(String(text.dropLast()))
        }
        if text.isEmpty { return nil }
        if let entry, sameIgnoringCase(text, entry.standardText) { return nil }
        let lowerText = text.lowercased()
        if phrase.lowercased().contains(lowerText) { return nil }
        if text.count > maxDetailLength {
            text = trimmed(String(text.prefix(maxDetailLength))) + "…"
        }
        return text
    }

    /// The text without libxml's leading "(name):line: " location, e.g.
    /// "(domain_definition):1: Premature end of data…" → "Premature end of data…".
    static func dropXMLLocation(_ text: String) -> String {
        guard text.first == "(", let close = text.firstIndex(of: ")") else { return text }
        var index = text.index(after: close)
        guard index < text.endIndex, text[index] == ":" else { return text }
        index = text.index(after: index)
        let digitsStart = index
        while index < text.endIndex, text[index].isASCII, text[index].isNumber {
            index = text.index(after: index)
        }
        guard index > digitsStart, index < text.endIndex, text[index] == ":" else { return text }
        let rest = trimmed(String(text[text.index(after: index)...]))
        return rest.isEmpty ? text : rest
    }

    /// The rest of `text` after `prefix` compared without regard to case, nil when `text` does
    /// not start with it.
    static func dropPrefixIgnoringCase(_ prefix: String, from text: String) -> String? {
        var index = text.startIndex
        for p in prefix {
            guard index < text.endIndex, text[index].lowercased() == p.lowercased() else { return nil }
            index = text.index(after: index)
        }
        return String(text[index...])
    }

    /// Whether two strings are equal without regard to case.
    static func sameIgnoringCase(_ a: String, _ b: String) -> Bool {
        a.lowercased() == b.lowercased()
    }

    /// The text without leading and trailing white space.
    static func trimmed(_ text: String) -> String {
        guard let first = text.firstIndex(where: { !$0.isWhitespace }),
              let last = text.lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return String(text[first...last])
    }
}
