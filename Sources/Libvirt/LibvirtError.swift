import CLibvirt

/// An error reported by libvirt: every field of its `virError`, copied, plus the names of the
/// code, domain and level.
///
/// libvirt keeps the last error per thread, and every public libvirt call (even `virDomainFree`)
/// resets it. So a `LibvirtError` is always captured with ``last(operation:)`` in the same
/// synchronous function that made the failing call, before any other libvirt call runs on that
/// thread; never across an `await` or a thread hop.
public struct LibvirtError: Error, Sendable, Equatable, CustomStringConvertible, Codable {
    /// The error code, such as ``Code/noDomain`` (`VIR_ERR_NO_DOMAIN`).
    public var code: Code
    /// Where the error came from, such as ``Domain/test`` (`VIR_FROM_TEST`).
    public var domain: Domain
    /// The severity: ``Level/none``, ``Level/warning`` or ``Level/error``.
    public var level: Level
    /// The human-readable message libvirt formatted, if any.
    public var message: String?
    /// The first extra string; often the message's format string or the failing function.
    public var str1: String?
    /// The second extra string; often the argument of the format string or the parameter name.
    public var str2: String?
    /// The third extra string.
    public var str3: String?
    /// The first extra number; for a system error it is the `errno` value.
    public var int1: Int32
    /// The second extra number.
    public var int2: Int32

    /// The C enum name of ``code``, for example `"VIR_ERR_NO_DOMAIN"`.
    public var codeName: String { code.name }

    /// The C enum name of ``domain``, for example `"VIR_FROM_TEST"`.
    public var domainName: String { domain.name }

    /// The name of ``level``: `"none"`, `"warning"` or `"error"`; another value gives `"unknown_<n>"`.
    public var levelName: String { level.name }

    /// Creates an error from its fields.
    public init(
        code: Code,
        domain: Domain,
        level: Level,
        message: String?,
        str1: String?,
        str2: String?,
        str3: String?,
        int1: Int32,
        int2: Int32
    ) {
        self.code = code
        self.domain = domain
        self.level = level
        self.message = message
        self.str1 = str1
        self.str2 = str2
        self.str3 = str3
        self.int1 = int1
        self.int2 = int2
    }

    /// A one-line rendering: `VIR_ERR_NO_DOMAIN (42) from VIR_FROM_TEST (12): Domain not found`.
    public var description: String {
        "\(codeName) (\(code.rawValue)) from \(domainName) (\(domain.rawValue)): \(message ?? "no message")"
    }

    /// Copies the calling thread's last libvirt error and clears it.
    ///
    /// Call this immediately after the failing libvirt call, on the same thread, before any other
    /// libvirt call. If libvirt failed without setting an error, the result is
    /// ``Code/internalError`` with the message `"<operation> failed without an error report"`.
    ///
    /// - Parameter operation: the name of the failing call, used only when there is no error to copy.
    public static func last(operation: String) -> LibvirtError {
        guard let raw = virGetLastError() else {
            return .unreported(operation: operation)
        }
        let error = LibvirtError(copying: raw.pointee)
        virResetLastError()
        if error.code == .ok {
            return .unreported(operation: operation)
        }
        return error
    }

    /// Copies the fields of a C `virError`.
    init(copying raw: virError) {
        self.init(
            code: Code(rawValue: raw.code),
            domain: Domain(rawValue: raw.domain),
            level: Level(rawValue: Int32(truncatingIfNeeded: raw.level.rawValue)),
            message: raw.message.map { String(cString: $0) },
            str1: raw.str1.map { String(cString: $0) },
            str2: raw.str2.map { String(cString: $0) },
            str3: raw.str3.map { String(cString: $0) },
            int1: raw.int1,
            int2: raw.int2
        )
    }

    /// The error used when a libvirt call failed but left no error behind.
    static func unreported(operation: String) -> LibvirtError {
        LibvirtError(
            code: .internalError,
            domain: .none,
            level: .error,
            message: "\(operation) failed without an error report",
            str1: nil,
            str2: nil,
            str3: nil,
            int1: -1,
            int2: -1
        )
    }
}
