import ECPProtocol
import Foundation
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
            let entry = LibvirtErrorCatalog.codeEntry(code.value)
            #expect(entry != nil, "no entry for \(code.name)")
            #expect(LibvirtErrorCatalog.codeName(code.value) == code.name)
            let problem = LibvirtErrorCatalog.problem(code: code.value)
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
            #expect(LibvirtErrorCatalog.domainEntry(domain.value) != nil, "no entry for \(domain.name)")
            #expect(LibvirtErrorCatalog.domainName(domain.value) == domain.name)
            let layer = LibvirtErrorCatalog.layer(domain: domain.value)
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
        let problems = (0..<Int32(LibvirtErrorCatalog.knownCodeCount)).map { LibvirtErrorCatalog.problem(code: $0) }
        #expect(Set(problems).count == problems.count)
        let layers = (0..<Int32(LibvirtErrorCatalog.knownDomainCount)).map { LibvirtErrorCatalog.layer(domain: $0) }
        #expect(Set(layers).count == layers.count)
    }

    @Test("values newer than the catalog get the fallback, never a trap",
          arguments: [Int32(-1), 111, 500, Int32.max, Int32.min])
    func unknownValuesFallBack(value: Int32) {
        #expect(LibvirtErrorCatalog.problem(code: value) == "libvirt reported error \(value)")
        #expect(LibvirtErrorCatalog.codeName(value) == "VIR_ERR_UNKNOWN_\(value)")
        #expect(LibvirtErrorCatalog.category(code: value, domain: 0, int1: -1) == .internal)
        #expect(LibvirtErrorCatalog.isRetryable(code: value, domain: 0, int1: -1) == false)
        #expect(LibvirtErrorCatalog.category(code: value, domain: value, int1: value, message: "x") == .internal)
        if value < 0 || value >= 73 {
            #expect(LibvirtErrorCatalog.layer(domain: value) == "libvirt subsystem \(value)")
            #expect(LibvirtErrorCatalog.domainName(value) == "VIR_FROM_UNKNOWN_\(value)")
        }
        let summary = LibvirtErrorCatalog.summary(
            code: value, codeName: "", domain: value, message: nil, int1: value, action: "start machine 'a'")
        #expect(summary.contains("libvirt reported error \(value)"))
        #expect(summary.hasSuffix("(VIR_ERR_UNKNOWN_\(value))"))
    }
}

// MARK: - Categories and retry verdicts

/// One expected classification.
struct LibvirtCatalogClassificationCase: Sendable, CustomTestStringConvertible {
    let label: String
    let code: Int32
    let domain: Int32
    let int1: Int32
    let message: String?
    let category: ErrorCategory
    let retryable: Bool

    init(_ label: String, code: Int32, domain: Int32, int1: Int32 = -1, message: String? = nil,
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
        .init("42 NO_DOMAIN from the test driver", code: 42, domain: 12, message: "Domain not found", .notFound, retryable: false),
        .init("42 NO_DOMAIN from QEMU", code: 42, domain: 10, .notFound, retryable: false),
        .init("28 DOM_EXIST", code: 28, domain: 10, .alreadyExists, retryable: false),
        .init("9 duplicate name (message)", code: 9, domain: 20,
              message: "operation failed: domain 'test' already exists with uuid 6695eb01-f6a4-8304-79aa-97f2502e193f",
              .alreadyExists, retryable: false),
        .init("9 UUID taken by another name (message)", code: 9, domain: 20,
              message: "operation failed: domain 'web1' is already defined with uuid 6695eb01-f6a4-8304-79aa-97f2502e193f",
              .alreadyExists, retryable: false),
        .init("9 being removed (message)", code: 9, domain: 20,
              message: "operation failed: domain 'web1' is already being removed", .invalidState, retryable: true),
        .init("9 no longer running (message)", code: 9, domain: 10,
              message: "operation failed: domain is no longer running", .invalidState, retryable: false),
        .init("9 without message", code: 9, domain: 20, .internal, retryable: false),
        .init("9 with an unrelated message", code: 9, domain: 10,
              message: "operation failed: guest CPU doesn't match specification", .internal, retryable: false),
        .init("55 OPERATION_INVALID", code: 55, domain: 20,
              message: "Requested operation is not valid: domain is not running", .invalidState, retryable: false),
        .init("35 XML_DETAIL", code: 35, domain: 20, .config, retryable: false),
        .init("27 XML_ERROR", code: 27, domain: 5, .config, retryable: false),
        .init("21 NO_NAME", code: 21, domain: 20, .config, retryable: false),
        .init("67 CONFIG_UNSUPPORTED", code: 67, domain: 20, .config, retryable: false),
        .init("8 INVALID_ARG", code: 8, domain: 0, .invalidArgument, retryable: false),
        .init("38 SYSTEM_ERROR from RPC, ENOENT on the socket", code: 38, domain: 7, int1: 2, .connection, retryable: true),
        .init("38 SYSTEM_ERROR from RPC, ECONNREFUSED", code: 38, domain: 7, int1: 111, .connection, retryable: true),
        .init("38 SYSTEM_ERROR from RPC, host not resolved", code: 38, domain: 7, int1: -1, .connection, retryable: true),
        .init("38 SYSTEM_ERROR from REMOTE, EIO", code: 38, domain: 13, int1: 5, .connection, retryable: true),
        .init("38 SYSTEM_ERROR from RPC, EACCES on the socket", code: 38, domain: 7, int1: 13, .permission, retryable: false),
        .init("38 SYSTEM_ERROR from QEMU, EACCES", code: 38, domain: 10, int1: 13, .permission, retryable: false),
        .init("38 SYSTEM_ERROR from QEMU, ENOSPC", code: 38, domain: 10, int1: 28, .resource, retryable: false),
        .init("38 SYSTEM_ERROR from QEMU, ENOMEM", code: 38, domain: 10, int1: 12, .resource, retryable: true),
        .init("38 SYSTEM_ERROR from QEMU, ETIMEDOUT", code: 38, domain: 10, int1: 110, .timeout, retryable: true),
        .init("38 SYSTEM_ERROR from QEMU, ENOENT", code: 38, domain: 10, int1: 2, .notFound, retryable: false),
        .init("38 SYSTEM_ERROR from QEMU, EINVAL", code: 38, domain: 10, int1: 22, .internal, retryable: false),
        .init("38 SYSTEM_ERROR without errno", code: 38, domain: 10, int1: -1, .internal, retryable: false),
        .init("1 INTERNAL_ERROR", code: 1, domain: 10, message: "internal error: unexpected QEMU output",
              .internal, retryable: false),
        .init("1 INTERNAL_ERROR from RPC (socket closed)", code: 1, domain: 7,
              message: "internal error: client socket is closed", .connection, retryable: true),
        .init("1 test driver: already running", code: 1, domain: 12,
              message: "internal error: Domain 'test' is already running", .invalidState, retryable: false),
        .init("1 test driver: not paused", code: 1, domain: 12,
              message: "internal error: domain 'test' not paused", .invalidState, retryable: false),
        .init("1 test driver: not running", code: 1, domain: 12,
              message: "internal error: domain 'test' not running", .invalidState, retryable: false),
        .init("84 OPERATION_UNSUPPORTED", code: 84, domain: 10, .unsupported, retryable: false),
        .init("3 NO_SUPPORT", code: 3, domain: 12, .unsupported, retryable: false),
        .init("74 ARGUMENT_UNSUPPORTED", code: 74, domain: 10, .unsupported, retryable: false),
        .init("29 OPERATION_DENIED (read-only)", code: 29, domain: 20, .permission, retryable: false),
        .init("88 ACCESS_DENIED", code: 88, domain: 55, .permission, retryable: false),
        .init("45 AUTH_FAILED", code: 45, domain: 46, .permission, retryable: false),
        .init("68 OPERATION_TIMEOUT", code: 68, domain: 10, .timeout, retryable: true),
        .init("86 AGENT_UNRESPONSIVE", code: 86, domain: 10, .timeout, retryable: true),
        .init("5 NO_CONNECT", code: 5, domain: 0, .connection, retryable: true),
        .init("39 RPC", code: 39, domain: 7, .connection, retryable: true),
        .init("6 INVALID_CONN", code: 6, domain: 0, .connection, retryable: true),
        .init("87 RESOURCE_BUSY", code: 87, domain: 10, .resource, retryable: true),
        .init("2 NO_MEMORY", code: 2, domain: 0, .resource, retryable: true),
        .init("83 BLOCK_COPY_ACTIVE", code: 83, domain: 10, .resource, retryable: true),
        .init("78 OPERATION_ABORTED", code: 78, domain: 10, .internal, retryable: true),
        .init("110 MULTIPLE_DOMAINS", code: 110, domain: 10, .invalidArgument, retryable: false),
        .init("internal error that says try again", code: 1, domain: 10,
              message: "internal error: monitor is busy, try again later", .internal, retryable: true),
    ]

    @Test("key cases", arguments: keyCases)
    func keyCase(_ c: LibvirtCatalogClassificationCase) {
        #expect(LibvirtErrorCatalog.category(code: c.code, domain: c.domain, int1: c.int1, message: c.message) == c.category)
        #expect(LibvirtErrorCatalog.isRetryable(code: c.code, domain: c.domain, int1: c.int1, message: c.message) == c.retryable)
    }

    @Test("the three-argument form (no message) classifies by the numbers alone")
    func withoutMessage() {
        #expect(LibvirtErrorCatalog.category(code: 42, domain: 12, int1: -1) == .notFound)
        #expect(LibvirtErrorCatalog.category(code: 38, domain: 7, int1: 2) == .connection)
        #expect(LibvirtErrorCatalog.isRetryable(code: 38, domain: 7, int1: 2))
        #expect(LibvirtErrorCatalog.category(code: 9, domain: 20, int1: -1) == .internal)
        #expect(LibvirtErrorCatalog.category(code: 1, domain: 12, int1: -1) == .internal)
    }

    @Test("each category and verdict is consistent: only some categories may be retried")
    func verdictsFollowCategories() {
        for code in 0..<Int32(LibvirtErrorCatalog.knownCodeCount) {
            for domain in [Int32(0), 7, 10, 12, 13, 20] {
                let category = LibvirtErrorCatalog.category(code: code, domain: domain, int1: -1)
                let retryable = LibvirtErrorCatalog.isRetryable(code: code, domain: domain, int1: -1)
                switch category {
                case .notFound, .alreadyExists, .invalidArgument, .config, .permission, .unsupported:
                    #expect(!retryable, "\(LibvirtErrorCatalog.codeName(code)) from \(domain)")
                case .connection, .timeout:
                    #expect(retryable, "\(LibvirtErrorCatalog.codeName(code)) from \(domain)")
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
        #expect(LibvirtErrorCatalog.layer(domain: 0) == "libvirt")
        #expect(LibvirtErrorCatalog.layer(domain: 7) == "remote connection")
        #expect(LibvirtErrorCatalog.layer(domain: 10) == "QEMU driver")
        #expect(LibvirtErrorCatalog.layer(domain: 12) == "test driver")
        #expect(LibvirtErrorCatalog.layer(domain: 13) == "remote driver")
        #expect(LibvirtErrorCatalog.layer(domain: 20) == "domain configuration")
        #expect(LibvirtErrorCatalog.layer(domain: 5) == "XML parser")
        #expect(LibvirtErrorCatalog.layer(domain: 72) == "Cloud Hypervisor driver")
        #expect(LibvirtErrorCatalog.layer(domain: 73) == "libvirt subsystem 73")
    }

    @Test("problems of the codes the worker meets")
    func problems() {
        #expect(LibvirtErrorCatalog.problem(code: 42) == "it does not exist")
        #expect(LibvirtErrorCatalog.problem(code: 55) == "the operation is not valid in the machine's current state")
        #expect(LibvirtErrorCatalog.problem(code: 38) == "a system call failed")
        #expect(LibvirtErrorCatalog.problem(code: 9) == "the operation failed")
        #expect(LibvirtErrorCatalog.problem(code: 1) == "an internal error occurred")
        #expect(LibvirtErrorCatalog.problem(code: 35) == "the XML is not valid")
        #expect(LibvirtErrorCatalog.problem(code: 111) == "libvirt reported error 111")
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
    let code: Int32
    let codeName: String
    let domain: Int32
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
        LibvirtCatalogSummaryCase(code: 42, codeName: "VIR_ERR_NO_DOMAIN", domain: 12, message: "Domain not found", int1: -1,
                    action: "start machine 'web9'",
                    expected: "test driver: cannot start machine 'web9': it does not exist (VIR_ERR_NO_DOMAIN)"),
        LibvirtCatalogSummaryCase(code: 42, codeName: "VIR_ERR_NO_DOMAIN", domain: 10,
                    message: "Domain not found: no domain with matching name 'web9'", int1: -1,
                    action: "start machine 'web9'",
                    expected: "QEMU driver: cannot start machine 'web9': it does not exist (VIR_ERR_NO_DOMAIN)"),
        LibvirtCatalogSummaryCase(code: 55, codeName: "VIR_ERR_OPERATION_INVALID", domain: 20,
                    message: "Requested operation is not valid: domain is not running", int1: -1,
                    action: "destroy machine 'db1'",
                    expected: "domain configuration: cannot destroy machine 'db1': the operation is not valid in the "
                        + "machine's current state: domain is not running (VIR_ERR_OPERATION_INVALID)"),
        // qemu:///system with no daemon.
        LibvirtCatalogSummaryCase(code: 38, codeName: "VIR_ERR_SYSTEM_ERROR", domain: 7,
                    message: "Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory",
                    int1: 2, action: "connect to qemu:///system",
                    expected: "remote connection: cannot connect to qemu:///system: a system call failed: Failed to "
                        + "connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory "
                        + "(VIR_ERR_SYSTEM_ERROR, ENOENT: No such file or directory)"),
        LibvirtCatalogSummaryCase(code: 38, codeName: "VIR_ERR_SYSTEM_ERROR", domain: 7,
                    message: "unable to connect to server at '127.0.0.1:1': Connection refused",
                    int1: 111, action: "connect to qemu+tcp://127.0.0.1:1/system",
                    expected: "remote connection: cannot connect to qemu+tcp://127.0.0.1:1/system: a system call "
                        + "failed: unable to connect to server at '127.0.0.1:1': Connection refused "
                        + "(VIR_ERR_SYSTEM_ERROR, ECONNREFUSED: Connection refused)"),
        // A system error without an errno (name resolution) names no errno.
        LibvirtCatalogSummaryCase(code: 38, codeName: "VIR_ERR_SYSTEM_ERROR", domain: 7,
                    message: "Unable to resolve address 'no-such-host.invalid' service '16509': Name or service not known",
                    int1: -1, action: "connect to qemu+tcp://no-such-host.invalid/system",
                    expected: "remote connection: cannot connect to qemu+tcp://no-such-host.invalid/system: a system "
                        + "call failed: Unable to resolve address 'no-such-host.invalid' service '16509': Name or "
                        + "service not known (VIR_ERR_SYSTEM_ERROR)"),
        // A system error with an errno this catalog does not name.
        LibvirtCatalogSummaryCase(code: 38, codeName: "VIR_ERR_SYSTEM_ERROR", domain: 10, message: "cannot do it: Unknown error 500",
                    int1: 500, action: "start machine 'a'",
                    expected: "QEMU driver: cannot start machine 'a': a system call failed: cannot do it: Unknown "
                        + "error 500 (VIR_ERR_SYSTEM_ERROR, errno 500)"),
        // A duplicate name, as libvirt reports it.
        LibvirtCatalogSummaryCase(code: 9, codeName: "VIR_ERR_OPERATION_FAILED", domain: 20,
                    message: "operation failed: domain 'test' already exists with uuid 6695eb01-f6a4-8304-79aa-97f2502e193f",
                    int1: -1, action: "define a machine",
                    expected: "domain configuration: cannot define a machine: the operation failed: domain 'test' "
                        + "already exists with uuid 6695eb01-f6a4-8304-79aa-97f2502e193f (VIR_ERR_OPERATION_FAILED)"),
        LibvirtCatalogSummaryCase(code: 1, codeName: "VIR_ERR_INTERNAL_ERROR", domain: 12,
                    message: "internal error: Domain 'test' is already running", int1: -1,
                    action: "start machine 'test'",
                    expected: "test driver: cannot start machine 'test': an internal error occurred: Domain 'test' "
                        + "is already running (VIR_ERR_INTERNAL_ERROR)"),
        // Bad XML: the first line, without libxml's location; the XML echo and caret stay out.
        LibvirtCatalogSummaryCase(code: 35, codeName: "VIR_ERR_XML_DETAIL", domain: 20,
                    message: "(domain_definition):1: Premature end of data in tag domain line 1\n"
                        + "<domain type='test'><name>x</name>\n----------------------------------^",
                    int1: -1, action: "define a machine",
                    expected: "domain configuration: cannot define a machine: the XML is not valid: Premature end "
                        + "of data in tag domain line 1 (VIR_ERR_XML_DETAIL)"),
        LibvirtCatalogSummaryCase(code: 21, codeName: "VIR_ERR_NO_NAME", domain: 20, message: "missing name information", int1: -1,
                    action: "define a machine",
                    expected: "domain configuration: cannot define a machine: the machine's name is missing (VIR_ERR_NO_NAME)"),
        LibvirtCatalogSummaryCase(code: 67, codeName: "VIR_ERR_CONFIG_UNSUPPORTED", domain: 20,
                    message: "unsupported configuration: invalid domain type bogus", int1: -1,
                    action: "define a machine",
                    expected: "domain configuration: cannot define a machine: the configuration is not supported: "
                        + "invalid domain type bogus (VIR_ERR_CONFIG_UNSUPPORTED)"),
        LibvirtCatalogSummaryCase(code: 29, codeName: "VIR_ERR_OPERATION_DENIED", domain: 20,
                    message: "operation forbidden: read only access prevents virDomainDestroy", int1: -1,
                    action: "destroy machine 'test'",
                    expected: "domain configuration: cannot destroy machine 'test': the operation is forbidden on a "
                        + "read-only connection: read only access prevents virDomainDestroy (VIR_ERR_OPERATION_DENIED)"),
        LibvirtCatalogSummaryCase(code: 68, codeName: "VIR_ERR_OPERATION_TIMEOUT", domain: 10,
                    message: "Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainCreate)",
                    int1: -1, action: "shut down machine 'web1'",
                    expected: "QEMU driver: cannot shut down machine 'web1': the operation timed out: cannot acquire "
                        + "state change lock (held by monitor=remoteDispatchDomainCreate) (VIR_ERR_OPERATION_TIMEOUT)"),
        LibvirtCatalogSummaryCase(code: 86, codeName: "VIR_ERR_AGENT_UNRESPONSIVE", domain: 10,
                    message: "Guest agent is not responding: QEMU guest agent is not connected", int1: -1,
                    action: "reboot machine 'web1'",
                    expected: "QEMU driver: cannot reboot machine 'web1': the guest agent is not responding: QEMU "
                        + "guest agent is not connected (VIR_ERR_AGENT_UNRESPONSIVE)"),
        // No message: the problem phrase alone.
        LibvirtCatalogSummaryCase(code: 1, codeName: "VIR_ERR_INTERNAL_ERROR", domain: 0, message: nil, int1: -1,
                    action: "list machines",
                    expected: "libvirt: cannot list machines: an internal error occurred (VIR_ERR_INTERNAL_ERROR)"),
        // The message is only libvirt's standard text for the code: nothing is repeated.
        LibvirtCatalogSummaryCase(code: 1, codeName: "VIR_ERR_INTERNAL_ERROR", domain: 10, message: "internal error", int1: -1,
                    action: "start machine 'a'",
                    expected: "QEMU driver: cannot start machine 'a': an internal error occurred (VIR_ERR_INTERNAL_ERROR)"),
        // The prefix twice, white space, a trailing period: stripped.
        LibvirtCatalogSummaryCase(code: 1, codeName: "VIR_ERR_INTERNAL_ERROR", domain: 10,
                    message: "  internal error: internal error: qemu unexpectedly closed the monitor.  ", int1: -1,
                    action: "start machine 'a'",
                    expected: "QEMU driver: cannot start machine 'a': an internal error occurred: qemu unexpectedly "
                        + "closed the monitor (VIR_ERR_INTERNAL_ERROR)"),
        // A message that only repeats the problem phrase adds nothing.
        LibvirtCatalogSummaryCase(code: 68, codeName: "VIR_ERR_OPERATION_TIMEOUT", domain: 10,
                    message: "Timed out during operation: the operation timed out", int1: -1,
                    action: "start machine 'a'",
                    expected: "QEMU driver: cannot start machine 'a': the operation timed out (VIR_ERR_OPERATION_TIMEOUT)"),
        // An empty code name: the catalog's name.
        LibvirtCatalogSummaryCase(code: 87, codeName: "", domain: 10, message: "resource busy: disk is locked", int1: -1,
                    action: "start machine 'a'",
                    expected: "QEMU driver: cannot start machine 'a': a resource is already in use: disk is locked "
                        + "(VIR_ERR_RESOURCE_BUSY)"),
        // No action (an error outside a command).
        LibvirtCatalogSummaryCase(code: 39, codeName: "VIR_ERR_RPC", domain: 7, message: "connection closed", int1: -1, action: "",
                    expected: "remote connection: the remote procedure call failed: connection closed (VIR_ERR_RPC)"),
        // Values newer than this catalog: the message keeps the reason.
        LibvirtCatalogSummaryCase(code: 500, codeName: "VIR_ERR_UNKNOWN_500", domain: 99, message: "something new went wrong",
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
          arguments: 0..<Int32(111))
    func noDoubledText(code: Int32) throws {
        let entry = try #require(LibvirtErrorCatalog.codeEntry(code))
        let name = LibvirtErrorCatalog.codeName(code)
        let phrase = LibvirtErrorCatalog.problem(code: code)
        let bare = LibvirtErrorCatalog.summary(
            code: code, codeName: name, domain: 10, message: entry.standardText, int1: -1, action: "start machine 'a'")
        #expect(bare == "QEMU driver: cannot start machine 'a': \(phrase) (\(name))")

        let formatted = entry.messageFormat.replacingOccurrences(of: "%s", with: "the disk vanished")
        let detailed = LibvirtErrorCatalog.summary(
            code: code, codeName: name, domain: 10, message: formatted, int1: -1, action: "start machine 'a'")
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
            code: 1, codeName: "VIR_ERR_INTERNAL_ERROR", domain: 10, message: "internal error: " + long, int1: -1,
            action: "start machine 'a'")
        #expect(summary.count < 600)
        #expect(summary.hasSuffix("…" + " (VIR_ERR_INTERNAL_ERROR)"))
    }
}
