import ECPProtocol
import Foundation
import Libvirt
import Testing
@testable import ECPEngine

#if canImport(Glibc)
import Glibc
#endif

// MARK: - The installed libvirt's lists of values

/// One enumerator of a libvirt C enum.
private struct Enumerator: Sendable, Equatable {
    let name: String
    let value: Int32
}

/// The enumerators of `virErrorNumber` and `virErrorDomain` as the installed libvirt declares them.
private enum InstalledLibvirt {
    static let headerPath = "/usr/include/libvirt/virterror.h"
    static let apiPath = "/usr/share/libvirt/api/libvirt-api.xml"

    /// Enumerators with an explicit `= n` of the C enum whose typedef ends in `} <typeName>;`,
    /// without the `*_LAST` sentinel.
    static func headerEnum(_ typeName: String) throws -> [Enumerator] {
        let text = try String(contentsOfFile: headerPath, encoding: .utf8)
        let end = try #require(text.range(of: "} \(typeName);"), "\(typeName) not in \(headerPath)")
        let start = try #require(
            text.range(of: "typedef enum {", options: .backwards, range: text.startIndex..<end.lowerBound),
            "no typedef enum before \(typeName)")
        var result: [Enumerator] = []
        for rawLine in text[start.upperBound..<end.lowerBound].split(separator: "\n") {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            guard line.hasPrefix("VIR_"), let equals = line.firstIndex(of: "=") else { continue }
            let name = line[..<equals].trimmingCharacters(in: .whitespaces)
            guard !name.hasSuffix("_LAST") else { continue }
            let digits = line[line.index(after: equals)...].drop(while: { $0 == " " }).prefix(while: \.isNumber)
            let value = try #require(Int32(digits), "no value for \(name)")
            result.append(Enumerator(name: name, value: value))
        }
        return result
    }

    /// Enumerators of `type` in libvirt-api.xml, without the `*_LAST` sentinel.
    static func apiEnum(_ type: String) throws -> [Enumerator] {
        let text = try String(contentsOfFile: apiPath, encoding: .utf8)
        var result: [Enumerator] = []
        for line in text.split(separator: "\n") where line.contains("type='\(type)'") && line.contains("<enum ") {
            guard let name = attribute("name", in: line), let value = attribute("value", in: line).flatMap({ Int32($0) })
            else { continue }
            if !name.hasSuffix("_LAST") {
                result.append(Enumerator(name: name, value: value))
            }
        }
        return result.sorted { $0.value < $1.value }
    }

    private static func attribute(_ name: String, in line: Substring) -> String? {
        guard let start = line.range(of: " \(name)='") else { return nil }
        let rest = line[start.upperBound...]
        guard let end = rest.firstIndex(of: "'") else { return nil }
        return String(rest[..<end])
    }
}

@Suite("LibvirtErrorCatalog: coverage of the installed libvirt")
struct LibvirtErrorCatalogCoverageTests {
    @Test("every virErrorNumber in virterror.h has its own name, category and problem phrase")
    func everyHeaderCodeIsKnown() throws {
        let codes = try InstalledLibvirt.headerEnum("virErrorNumber")
        #expect(codes.count == 111)
        #expect(codes.count == LibvirtErrorCatalog.knownCodeCount)
        #expect(codes.map(\.value) == codes.indices.map { Int32($0) }, "values are 0…n-1 in order")
        for code in codes {
            let named = LibvirtError.Code(rawValue: code.value)
            let entry = LibvirtErrorCatalog.codeEntry(named)
            #expect(entry != nil, "no entry for \(code.name)")
            #expect(named.name == code.name)
            let problem = LibvirtErrorCatalog.problem(code: named)
            #expect(problem != "libvirt reported error \(code.value)", "\(code.name) has the fallback phrase")
            #expect(!problem.isEmpty)
        }
    }

    @Test("every virErrorDomain in virterror.h has its own name and layer phrase")
    func everyHeaderDomainIsKnown() throws {
        let domains = try InstalledLibvirt.headerEnum("virErrorDomain")
        #expect(domains.count == 73)
        #expect(domains.count == LibvirtErrorCatalog.knownDomainCount)
        #expect(domains.map(\.value) == domains.indices.map { Int32($0) }, "values are 0…n-1 in order")
        for domain in domains {
            let named = LibvirtError.Domain(rawValue: domain.value)
            #expect(LibvirtErrorCatalog.layerTable[named] != nil, "no entry for \(domain.name)")
            #expect(named.name == domain.name)
            let layer = LibvirtErrorCatalog.layer(domain: named)
            #expect(layer != "libvirt subsystem \(domain.value)", "\(domain.name) has the fallback phrase")
            #expect(!layer.isEmpty)
        }
    }

    @Test("libvirt-api.xml lists the same values as virterror.h")
    func apiDescriptionAgrees() throws {
        #expect(try InstalledLibvirt.apiEnum("virErrorNumber") == InstalledLibvirt.headerEnum("virErrorNumber"))
        #expect(try InstalledLibvirt.apiEnum("virErrorDomain") == InstalledLibvirt.headerEnum("virErrorDomain"))
    }

    @Test("problem and layer phrases are all different from each other")
    func phrasesAreDistinct() {
        let problems = LibvirtError.Code.known.map { LibvirtErrorCatalog.problem(code: $0.value) }
        #expect(Set(problems).count == problems.count)
        let layers = LibvirtError.Domain.known.map { LibvirtErrorCatalog.layer(domain: $0.value) }
        #expect(Set(layers).count == layers.count)
    }

    @Test("values newer than the catalog get the fallback, never a trap",
          arguments: [Int32(-1), 111, 500, Int32.max, Int32.min])
    func unknownValuesFallBack(value: Int32) {
        let code = LibvirtError.Code(rawValue: value)
        let domain = LibvirtError.Domain(rawValue: value)
        #expect(LibvirtErrorCatalog.problem(code: code) == "libvirt reported error \(value)")
        #expect(code.name == "VIR_ERR_UNKNOWN_\(value)")
        #expect(LibvirtErrorCatalog.category(code: code, domain: .none, int1: -1) == .internal)
        #expect(LibvirtErrorCatalog.isRetryable(code: code, domain: .none, int1: -1) == false)
        #expect(LibvirtErrorCatalog.category(code: code, domain: domain, int1: value, message: "x") == .internal)
        if value < 0 || value >= 73 {
            #expect(LibvirtErrorCatalog.layer(domain: domain) == "libvirt subsystem \(value)")
            #expect(domain.name == "VIR_FROM_UNKNOWN_\(value)")
        }
        let summary = LibvirtErrorCatalog.summary(
            code: code, codeName: "", domain: domain, message: nil, int1: value, action: "start machine 'a'")
        #expect(summary.contains("libvirt reported error \(value)"))
        #expect(summary.hasSuffix("(VIR_ERR_UNKNOWN_\(value))"))
    }
}

// MARK: - Categories and retry verdicts

/// One expected classification.
struct LibvirtCatalogClassificationCase: Sendable, CustomTestStringConvertible {
    let label: String
    let code: LibvirtError.Code
    let domain: LibvirtError.Domain
    let int1: Int32
    let message: String?
    let category: ErrorCategory
    let retryable: Bool

    init(_ label: String, code: LibvirtError.Code, domain: LibvirtError.Domain, int1: Int32 = -1, message: String? = nil,
         _ category: ErrorCategory, retryable: Bool) {
        self.label = label
        self.code = code
        self.domain = domain
        self.int1 = int1
        self.message = message
        self.category = category
        self.retryable = retryable
    }

    var testDescription: String { label }
}

@Suite("LibvirtErrorCatalog: categories and retry")
struct LibvirtErrorCatalogClassificationTests {
    static let keyCases: [LibvirtCatalogClassificationCase] = [
        .init("42 NO_DOMAIN from the test driver", code: .noDomain, domain: .test, message: "Domain not found", .notFound, retryable: false),
        .init("42 NO_DOMAIN from QEMU", code: .noDomain, domain: .qemu, .notFound, retryable: false),
        .init("28 DOM_EXIST", code: .domExist, domain: .qemu, .alreadyExists, retryable: false),
        .init("9 duplicate name (message)", code: .operationFailed, domain: .domain,
              message: "operation failed: domain 'test' already exists with uuid 6695eb01-f6a4-8304-79aa-97f2502e193f",
              .alreadyExists, retryable: false),
        .init("9 UUID taken by another name (message)", code: .operationFailed, domain: .domain,
              message: "operation failed: domain 'web1' is already defined with uuid 6695eb01-f6a4-8304-79aa-97f2502e193f",
              .alreadyExists, retryable: false),
        .init("9 being removed (message)", code: .operationFailed, domain: .domain,
              message: "operation failed: domain 'web1' is already being removed", .invalidState, retryable: true),
        .init("9 no longer running (message)", code: .operationFailed, domain: .qemu,
              message: "operation failed: domain is no longer running", .invalidState, retryable: false),
        .init("9 without message", code: .operationFailed, domain: .domain, .internal, retryable: false),
        .init("9 with an unrelated message", code: .operationFailed, domain: .qemu,
              message: "operation failed: guest CPU doesn't match specification", .internal, retryable: false),
        .init("55 OPERATION_INVALID", code: .operationInvalid, domain: .domain,
              message: "Requested operation is not valid: domain is not running", .invalidState, retryable: false),
        .init("35 XML_DETAIL", code: .xmlDetail, domain: .domain, .config, retryable: false),
        .init("27 XML_ERROR", code: .xmlError, domain: .xml, .config, retryable: false),
        .init("21 NO_NAME", code: .noName, domain: .domain, .config, retryable: false),
        .init("67 CONFIG_UNSUPPORTED", code: .configUnsupported, domain: .domain, .config, retryable: false),
        .init("8 INVALID_ARG", code: .invalidArg, domain: .none, .invalidArgument, retryable: false),
        .init("38 SYSTEM_ERROR from RPC, ENOENT on the socket", code: .systemError, domain: .rpc, int1: 2, .connection, retryable: true),
        .init("38 SYSTEM_ERROR from RPC, ECONNREFUSED", code: .systemError, domain: .rpc, int1: 111, .connection, retryable: true),
        .init("38 SYSTEM_ERROR from RPC, host not resolved", code: .systemError, domain: .rpc, int1: -1, .connection, retryable: true),
        .init("38 SYSTEM_ERROR from REMOTE, EIO", code: .systemError, domain: .remote, int1: 5, .connection, retryable: true),
        .init("38 SYSTEM_ERROR from RPC, EACCES on the socket", code: .systemError, domain: .rpc, int1: 13, .permission, retryable: false),
        .init("38 SYSTEM_ERROR from QEMU, EACCES", code: .systemError, domain: .qemu, int1: 13, .permission, retryable: false),
        .init("38 SYSTEM_ERROR from QEMU, ENOSPC", code: .systemError, domain: .qemu, int1: 28, .resource, retryable: false),
        .init("38 SYSTEM_ERROR from QEMU, ENOMEM", code: .systemError, domain: .qemu, int1: 12, .resource, retryable: true),
        .init("38 SYSTEM_ERROR from QEMU, ETIMEDOUT", code: .systemError, domain: .qemu, int1: 110, .timeout, retryable: true),
        .init("38 SYSTEM_ERROR from QEMU, ENOENT", code: .systemError, domain: .qemu, int1: 2, .notFound, retryable: false),
        .init("38 SYSTEM_ERROR from QEMU, EINVAL", code: .systemError, domain: .qemu, int1: 22, .internal, retryable: false),
        .init("38 SYSTEM_ERROR without errno", code: .systemError, domain: .qemu, int1: -1, .internal, retryable: false),
        .init("1 INTERNAL_ERROR", code: .internalError, domain: .qemu, message: "internal error: unexpected QEMU output",
              .internal, retryable: false),
        .init("1 INTERNAL_ERROR from RPC (socket closed)", code: .internalError, domain: .rpc,
              message: "internal error: client socket is closed", .connection, retryable: true),
        .init("1 test driver: already running", code: .internalError, domain: .test,
              message: "internal error: Domain 'test' is already running", .invalidState, retryable: false),
        .init("1 test driver: not paused", code: .internalError, domain: .test,
              message: "internal error: domain 'test' not paused", .invalidState, retryable: false),
        .init("1 test driver: not running", code: .internalError, domain: .test,
              message: "internal error: domain 'test' not running", .invalidState, retryable: false),
        .init("84 OPERATION_UNSUPPORTED", code: .operationUnsupported, domain: .qemu, .unsupported, retryable: false),
        .init("3 NO_SUPPORT", code: .noSupport, domain: .test, .unsupported, retryable: false),
        .init("74 ARGUMENT_UNSUPPORTED", code: .argumentUnsupported, domain: .qemu, .unsupported, retryable: false),
        .init("29 OPERATION_DENIED (read-only)", code: .operationDenied, domain: .domain, .permission, retryable: false),
        .init("88 ACCESS_DENIED", code: .accessDenied, domain: .access, .permission, retryable: false),
        .init("45 AUTH_FAILED", code: .authFailed, domain: .auth, .permission, retryable: false),
        .init("68 OPERATION_TIMEOUT", code: .operationTimeout, domain: .qemu, .timeout, retryable: true),
        .init("86 AGENT_UNRESPONSIVE", code: .agentUnresponsive, domain: .qemu, .timeout, retryable: true),
        .init("5 NO_CONNECT", code: .noConnect, domain: .none, .connection, retryable: true),
        .init("39 RPC", code: .rpc, domain: .rpc, .connection, retryable: true),
        .init("6 INVALID_CONN", code: .invalidConn, domain: .none, .connection, retryable: true),
        .init("87 RESOURCE_BUSY", code: .resourceBusy, domain: .qemu, .resource, retryable: true),
        .init("2 NO_MEMORY", code: .noMemory, domain: .none, .resource, retryable: true),
        .init("83 BLOCK_COPY_ACTIVE", code: .blockCopyActive, domain: .qemu, .resource, retryable: true),
        .init("78 OPERATION_ABORTED", code: .operationAborted, domain: .qemu, .internal, retryable: true),
        .init("110 MULTIPLE_DOMAINS", code: .multipleDomains, domain: .qemu, .invalidArgument, retryable: false),
        .init("internal error that says try again", code: .internalError, domain: .qemu,
              message: "internal error: monitor is busy, try again later", .internal, retryable: true),
    ]

    @Test("key cases", arguments: keyCases)
    func keyCase(_ c: LibvirtCatalogClassificationCase) {
        #expect(LibvirtErrorCatalog.category(code: c.code, domain: c.domain, int1: c.int1, message: c.message) == c.category)
        #expect(LibvirtErrorCatalog.isRetryable(code: c.code, domain: c.domain, int1: c.int1, message: c.message) == c.retryable)
    }

    @Test("the three-argument form (no message) classifies by the numbers alone")
    func withoutMessage() {
        #expect(LibvirtErrorCatalog.category(code: .noDomain, domain: .test, int1: -1) == .notFound)
        #expect(LibvirtErrorCatalog.category(code: .systemError, domain: .rpc, int1: 2) == .connection)
        #expect(LibvirtErrorCatalog.isRetryable(code: .systemError, domain: .rpc, int1: 2))
        #expect(LibvirtErrorCatalog.category(code: .operationFailed, domain: .domain, int1: -1) == .internal)
        #expect(LibvirtErrorCatalog.category(code: .internalError, domain: .test, int1: -1) == .internal)
    }

    @Test("each category and verdict is consistent: only some categories may be retried")
    func verdictsFollowCategories() {
        for (code, _) in LibvirtError.Code.known {
            for domain: LibvirtError.Domain in [.none, .rpc, .qemu, .test, .remote, .domain] {
                let category = LibvirtErrorCatalog.category(code: code, domain: domain, int1: -1)
                let retryable = LibvirtErrorCatalog.isRetryable(code: code, domain: domain, int1: -1)
                switch category {
                case .notFound, .alreadyExists, .invalidArgument, .config, .permission, .unsupported:
                    #expect(!retryable, "\(code) from \(domain)")
                case .connection, .timeout:
                    #expect(retryable, "\(code) from \(domain)")
                case .invalidState, .resource, .internal:
                    break
                }
            }
        }
    }

    @Test("categories carry the protocol's names and round-trip through JSON")
    func categoryWireNames() throws {
        #expect(ErrorCategory.allCases.map(\.rawValue) == [
            "not_found", "already_exists", "invalid_state", "invalid_argument", "config", "connection",
            "permission", "resource", "unsupported", "timeout", "internal",
        ])
        let data = try JSONEncoder().encode(ErrorCategory.allCases)
        #expect(try JSONDecoder().decode([ErrorCategory].self, from: data) == ErrorCategory.allCases)
        #expect(String(decoding: try JSONEncoder().encode(ErrorCategory.notFound), as: UTF8.self) == "\"not_found\"")
    }
}

// MARK: - Words

@Suite("LibvirtErrorCatalog: layers, problems, errno")
struct LibvirtErrorCatalogWordsTests {
    @Test("layers of the domains the worker meets")
    func layers() {
        #expect(LibvirtErrorCatalog.layer(domain: .none) == "libvirt")
        #expect(LibvirtErrorCatalog.layer(domain: .rpc) == "remote connection")
        #expect(LibvirtErrorCatalog.layer(domain: .qemu) == "QEMU driver")
        #expect(LibvirtErrorCatalog.layer(domain: .test) == "test driver")
        #expect(LibvirtErrorCatalog.layer(domain: .remote) == "remote driver")
        #expect(LibvirtErrorCatalog.layer(domain: .domain) == "domain configuration")
        #expect(LibvirtErrorCatalog.layer(domain: .xml) == "XML parser")
        #expect(LibvirtErrorCatalog.layer(domain: .ch) == "Cloud Hypervisor driver")
        #expect(LibvirtErrorCatalog.layer(domain: .init(rawValue: 73)) == "libvirt subsystem 73")
    }

    @Test("problems of the codes the worker meets")
    func problems() {
        #expect(LibvirtErrorCatalog.problem(code: .noDomain) == "it does not exist")
        #expect(LibvirtErrorCatalog.problem(code: .operationInvalid) == "the operation is not valid in the machine's current state")
        #expect(LibvirtErrorCatalog.problem(code: .systemError) == "a system call failed")
        #expect(LibvirtErrorCatalog.problem(code: .operationFailed) == "the operation failed")
        #expect(LibvirtErrorCatalog.problem(code: .internalError) == "an internal error occurred")
        #expect(LibvirtErrorCatalog.problem(code: .xmlDetail) == "the XML is not valid")
        #expect(LibvirtErrorCatalog.problem(code: .init(rawValue: 111)) == "libvirt reported error 111")
    }

    @Test("errno names and texts")
    func errnoNames() {
        #expect(LibvirtErrorCatalog.errnoName(2) == "ENOENT")
        #expect(LibvirtErrorCatalog.errnoName(13) == "EACCES")
        #expect(LibvirtErrorCatalog.errnoName(111) == "ECONNREFUSED")
        #expect(LibvirtErrorCatalog.errnoName(110) == "ETIMEDOUT")
        #expect(LibvirtErrorCatalog.errnoName(95) == "EOPNOTSUPP")
        #expect(LibvirtErrorCatalog.errnoName(133) == "EHWPOISON")
        #expect(LibvirtErrorCatalog.errnoDescription(2) == "No such file or directory")
        for missing: Int32 in [0, -1, 41, 58, 134, 500] {
            #expect(LibvirtErrorCatalog.errnoName(missing) == nil)
            #expect(LibvirtErrorCatalog.errnoDescription(missing) == nil)
        }
    }

    #if canImport(Glibc)
    @Test("errno names and texts agree with the C library")
    func errnoAgreesWithGlibc() {
        let known: [(Int32, String)] = [
            (EPERM, "EPERM"), (ENOENT, "ENOENT"), (EINTR, "EINTR"), (EIO, "EIO"), (EAGAIN, "EAGAIN"),
            (ENOMEM, "ENOMEM"), (EACCES, "EACCES"), (EBUSY, "EBUSY"), (EEXIST, "EEXIST"), (EINVAL, "EINVAL"),
            (ENOSPC, "ENOSPC"), (EROFS, "EROFS"), (EPIPE, "EPIPE"), (ENOSYS, "ENOSYS"), (EOPNOTSUPP, "EOPNOTSUPP"),
            (ECONNRESET, "ECONNRESET"), (ETIMEDOUT, "ETIMEDOUT"), (ECONNREFUSED, "ECONNREFUSED"),
            (EHOSTUNREACH, "EHOSTUNREACH"), (EDQUOT, "EDQUOT"), (ECANCELED, "ECANCELED"),
        ]
        for (value, name) in known {
            #expect(LibvirtErrorCatalog.errnoName(value) == name)
        }
        for value in Int32(1)...133 {
            guard let text = LibvirtErrorCatalog.errnoDescription(value) else { continue }
            #expect(String(cString: strerror(value)) == text, "errno \(value)")
        }
    }
    #endif
}

// MARK: - Summaries

/// One expected summary.
struct LibvirtCatalogSummaryCase: Sendable, CustomTestStringConvertible {
    let code: LibvirtError.Code
    let codeName: String
    let domain: LibvirtError.Domain
    let message: String?
    let int1: Int32
    let action: String
    let expected: String

    var testDescription: String { "\(codeName) from \(domain)" }
}

@Suite("LibvirtErrorCatalog: summaries")
struct LibvirtErrorCatalogSummaryTests {
    static let cases: [LibvirtCatalogSummaryCase] = [
        // The protocol's example: an unknown name on the test driver.
        LibvirtCatalogSummaryCase(code: .noDomain, codeName: "VIR_ERR_NO_DOMAIN", domain: .test, message: "Domain not found", int1: -1,
                    action: "start machine 'web9'",
                    expected: "test driver: cannot start machine 'web9': it does not exist (VIR_ERR_NO_DOMAIN)"),
        LibvirtCatalogSummaryCase(code: .noDomain, codeName: "VIR_ERR_NO_DOMAIN", domain: .qemu,
                    message: "Domain not found: no domain with matching name 'web9'", int1: -1,
                    action: "start machine 'web9'",
                    expected: "QEMU driver: cannot start machine 'web9': it does not exist (VIR_ERR_NO_DOMAIN)"),
        LibvirtCatalogSummaryCase(code: .operationInvalid, codeName: "VIR_ERR_OPERATION_INVALID", domain: .domain,
                    message: "Requested operation is not valid: domain is not running", int1: -1,
                    action: "destroy machine 'db1'",
                    expected: "domain configuration: cannot destroy machine 'db1': the operation is not valid in the "
                        + "machine's current state: domain is not running (VIR_ERR_OPERATION_INVALID)"),
        // qemu:///system with no daemon.
        LibvirtCatalogSummaryCase(code: .systemError, codeName: "VIR_ERR_SYSTEM_ERROR", domain: .rpc,
                    message: "Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory",
                    int1: 2, action: "connect to qemu:///system",
                    expected: "remote connection: cannot connect to qemu:///system: a system call failed: Failed to "
                        + "connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory "
                        + "(VIR_ERR_SYSTEM_ERROR, ENOENT: No such file or directory)"),
        LibvirtCatalogSummaryCase(code: .systemError, codeName: "VIR_ERR_SYSTEM_ERROR", domain: .rpc,
                    message: "unable to connect to server at '127.0.0.1:1': Connection refused",
                    int1: 111, action: "connect to qemu+tcp://127.0.0.1:1/system",
                    expected: "remote connection: cannot connect to qemu+tcp://127.0.0.1:1/system: a system call "
                        + "failed: unable to connect to server at '127.0.0.1:1': Connection refused "
                        + "(VIR_ERR_SYSTEM_ERROR, ECONNREFUSED: Connection refused)"),
        // A system error without an errno (name resolution) names no errno.
        LibvirtCatalogSummaryCase(code: .systemError, codeName: "VIR_ERR_SYSTEM_ERROR", domain: .rpc,
                    message: "Unable to resolve address 'no-such-host.invalid' service '16509': Name or service not known",
                    int1: -1, action: "connect to qemu+tcp://no-such-host.invalid/system",
                    expected: "remote connection: cannot connect to qemu+tcp://no-such-host.invalid/system: a system "
                        + "call failed: Unable to resolve address 'no-such-host.invalid' service '16509': Name or "
                        + "service not known (VIR_ERR_SYSTEM_ERROR)"),
        // A system error with an errno this catalog does not name.
        LibvirtCatalogSummaryCase(code: .systemError, codeName: "VIR_ERR_SYSTEM_ERROR", domain: .qemu, message: "cannot do it: Unknown error 500",
                    int1: 500, action: "start machine 'a'",
                    expected: "QEMU driver: cannot start machine 'a': a system call failed: cannot do it: Unknown "
                        + "error 500 (VIR_ERR_SYSTEM_ERROR, errno 500)"),
        // A duplicate name, as libvirt reports it.
        LibvirtCatalogSummaryCase(code: .operationFailed, codeName: "VIR_ERR_OPERATION_FAILED", domain: .domain,
                    message: "operation failed: domain 'test' already exists with uuid 6695eb01-f6a4-8304-79aa-97f2502e193f",
                    int1: -1, action: "define a machine",
                    expected: "domain configuration: cannot define a machine: the operation failed: domain 'test' "
                        + "already exists with uuid 6695eb01-f6a4-8304-79aa-97f2502e193f (VIR_ERR_OPERATION_FAILED)"),
        LibvirtCatalogSummaryCase(code: .internalError, codeName: "VIR_ERR_INTERNAL_ERROR", domain: .test,
                    message: "internal error: Domain 'test' is already running", int1: -1,
                    action: "start machine 'test'",
                    expected: "test driver: cannot start machine 'test': an internal error occurred: Domain 'test' "
                        + "is already running (VIR_ERR_INTERNAL_ERROR)"),
        // Bad XML: the first line, without libxml's location; the XML echo and caret stay out.
        LibvirtCatalogSummaryCase(code: .xmlDetail, codeName: "VIR_ERR_XML_DETAIL", domain: .domain,
                    message: "(domain_definition):1: Premature end of data in tag domain line 1\n"
                        + "<domain type='test'><name>x</name>\n----------------------------------^",
                    int1: -1, action: "define a machine",
                    expected: "domain configuration: cannot define a machine: the XML is not valid: Premature end "
                        + "of data in tag domain line 1 (VIR_ERR_XML_DETAIL)"),
        LibvirtCatalogSummaryCase(code: .noName, codeName: "VIR_ERR_NO_NAME", domain: .domain, message: "missing name information", int1: -1,
                    action: "define a machine",
                    expected: "domain configuration: cannot define a machine: the machine's name is missing (VIR_ERR_NO_NAME)"),
        LibvirtCatalogSummaryCase(code: .configUnsupported, codeName: "VIR_ERR_CONFIG_UNSUPPORTED", domain: .domain,
                    message: "unsupported configuration: invalid domain type bogus", int1: -1,
                    action: "define a machine",
                    expected: "domain configuration: cannot define a machine: the configuration is not supported: "
                        + "invalid domain type bogus (VIR_ERR_CONFIG_UNSUPPORTED)"),
        LibvirtCatalogSummaryCase(code: .operationDenied, codeName: "VIR_ERR_OPERATION_DENIED", domain: .domain,
                    message: "operation forbidden: read only access prevents virDomainDestroy", int1: -1,
                    action: "destroy machine 'test'",
                    expected: "domain configuration: cannot destroy machine 'test': the operation is forbidden on a "
                        + "read-only connection: read only access prevents virDomainDestroy (VIR_ERR_OPERATION_DENIED)"),
        LibvirtCatalogSummaryCase(code: .operationTimeout, codeName: "VIR_ERR_OPERATION_TIMEOUT", domain: .qemu,
                    message: "Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainCreate)",
                    int1: -1, action: "shut down machine 'web1'",
                    expected: "QEMU driver: cannot shut down machine 'web1': the operation timed out: cannot acquire "
                        + "state change lock (held by monitor=remoteDispatchDomainCreate) (VIR_ERR_OPERATION_TIMEOUT)"),
        LibvirtCatalogSummaryCase(code: .agentUnresponsive, codeName: "VIR_ERR_AGENT_UNRESPONSIVE", domain: .qemu,
                    message: "Guest agent is not responding: QEMU guest agent is not connected", int1: -1,
                    action: "reboot machine 'web1'",
                    expected: "QEMU driver: cannot reboot machine 'web1': the guest agent is not responding: QEMU "
                        + "guest agent is not connected (VIR_ERR_AGENT_UNRESPONSIVE)"),
        // No message: the problem phrase alone.
        LibvirtCatalogSummaryCase(code: .internalError, codeName: "VIR_ERR_INTERNAL_ERROR", domain: .none, message: nil, int1: -1,
                    action: "list machines",
                    expected: "libvirt: cannot list machines: an internal error occurred (VIR_ERR_INTERNAL_ERROR)"),
        // The message is only libvirt's standard text for the code: nothing is repeated.
        LibvirtCatalogSummaryCase(code: .internalError, codeName: "VIR_ERR_INTERNAL_ERROR", domain: .qemu, message: "internal error", int1: -1,
                    action: "start machine 'a'",
                    expected: "QEMU driver: cannot start machine 'a': an internal error occurred (VIR_ERR_INTERNAL_ERROR)"),
        // The prefix twice, white space, a trailing period: stripped.
        LibvirtCatalogSummaryCase(code: .internalError, codeName: "VIR_ERR_INTERNAL_ERROR", domain: .qemu,
                    message: "  internal error: internal error: qemu unexpectedly closed the monitor.  ", int1: -1,
                    action: "start machine 'a'",
                    expected: "QEMU driver: cannot start machine 'a': an internal error occurred: qemu unexpectedly "
                        + "closed the monitor (VIR_ERR_INTERNAL_ERROR)"),
        // A message that only repeats the problem phrase adds nothing.
        LibvirtCatalogSummaryCase(code: .operationTimeout, codeName: "VIR_ERR_OPERATION_TIMEOUT", domain: .qemu,
                    message: "Timed out during operation: the operation timed out", int1: -1,
                    action: "start machine 'a'",
                    expected: "QEMU driver: cannot start machine 'a': the operation timed out (VIR_ERR_OPERATION_TIMEOUT)"),
        // An empty code name: the catalog's name.
        LibvirtCatalogSummaryCase(code: .resourceBusy, codeName: "", domain: .qemu, message: "resource busy: disk is locked", int1: -1,
                    action: "start machine 'a'",
                    expected: "QEMU driver: cannot start machine 'a': a resource is already in use: disk is locked "
                        + "(VIR_ERR_RESOURCE_BUSY)"),
        // No action (an error outside a command).
        LibvirtCatalogSummaryCase(code: .rpc, codeName: "VIR_ERR_RPC", domain: .rpc, message: "connection closed", int1: -1, action: "",
                    expected: "remote connection: the remote procedure call failed: connection closed (VIR_ERR_RPC)"),
        // Values newer than this catalog: the message keeps the reason.
        LibvirtCatalogSummaryCase(code: .init(rawValue: 500), codeName: "VIR_ERR_UNKNOWN_500", domain: .init(rawValue: 99), message: "something new went wrong",
                    int1: -1, action: "start machine 'x'",
                    expected: "libvirt subsystem 99: cannot start machine 'x': libvirt reported error 500: something "
                        + "new went wrong (VIR_ERR_UNKNOWN_500)"),
    ]

    @Test("exact summaries", arguments: cases)
    func exactSummary(_ c: LibvirtCatalogSummaryCase) {
        let summary = LibvirtErrorCatalog.summary(
            code: c.code, codeName: c.codeName, domain: c.domain, message: c.message, int1: c.int1, action: c.action)
        #expect(summary == c.expected)
    }

    @Test("libvirt's standard text and prefix never reach the summary twice",
          arguments: LibvirtError.Code.known.map(\.value))
    func noDoubledText(code: LibvirtError.Code) throws {
        let entry = try #require(LibvirtErrorCatalog.codeEntry(code))
        let name = code.name
        let phrase = LibvirtErrorCatalog.problem(code: code)
        let bare = LibvirtErrorCatalog.summary(
            code: code, codeName: name, domain: .qemu, message: entry.standardText, int1: -1, action: "start machine 'a'")
        #expect(bare == "QEMU driver: cannot start machine 'a': \(phrase) (\(name))")

        let formatted = entry.messageFormat.replacingOccurrences(of: "%s", with: "the disk vanished")
        let detailed = LibvirtErrorCatalog.summary(
            code: code, codeName: name, domain: .qemu, message: formatted, int1: -1, action: "start machine 'a'")
        if !entry.showsDetail {
            #expect(detailed == bare)
        } else {
            // With a "<prefix>: %s" format only the details remain; otherwise the whole sentence.
            let detail = entry.messagePrefix == nil ? formatted : "the disk vanished"
            #expect(detailed == "QEMU driver: cannot start machine 'a': \(phrase): \(detail) (\(name))")
        }
    }

    @Test("a long message is cut")
    func longMessageIsCut() {
        let long = String(repeating: "x", count: 2000)
        let summary = LibvirtErrorCatalog.summary(
            code: .internalError, codeName: "VIR_ERR_INTERNAL_ERROR", domain: .qemu, message: "internal error: " + long, int1: -1,
            action: "start machine 'a'")
        #expect(summary.count < 600)
        #expect(summary.hasSuffix("…" + " (VIR_ERR_INTERNAL_ERROR)"))
    }
}
