import Foundation
import Libvirt
import Testing

/// A failing call against a fresh node file and the error libvirt's test driver gives for it.
struct ErrorCase: Sendable, CustomTestStringConvertible {
    var name: String
    var operation: @Sendable (Connection) throws(LibvirtError) -> Void
    var code: LibvirtError.Code
    var codeName: String
    var domain: LibvirtError.Domain
    var domainName: String
    var message: String
    var str1: String?
    var str2: String?
    var int1: Int32 = -1
    var int2: Int32 = -1

    var testDescription: String { name }

    static let all: [ErrorCase] = [
        ErrorCase(
            name: "unknown name",
            operation: { c throws(LibvirtError) in _ = try c.lookup(name: "no-such-machine") },
            code: .noDomain, codeName: "VIR_ERR_NO_DOMAIN", domain: .test, domainName: "VIR_FROM_TEST",
            message: "Domain not found", str1: "Domain not found", str2: nil
        ),
        ErrorCase(
            name: "unknown UUID",
            operation: { c throws(LibvirtError) in _ = try c.lookup(nameOrUUID: "99999999-2222-3333-4444-000000000001") },
            code: .noDomain, codeName: "VIR_ERR_NO_DOMAIN", domain: .test, domainName: "VIR_FROM_TEST",
            message: "Domain not found", str1: "Domain not found", str2: nil
        ),
        ErrorCase(
            name: "malformed UUID",
            operation: { c throws(LibvirtError) in _ = try c.lookup(uuid: "not-a-uuid") },
            code: .invalidArg, codeName: "VIR_ERR_INVALID_ARG", domain: .domain, domainName: "VIR_FROM_DOMAIN",
            message: "Invalid UUID", str1: "virDomainLookupByUUIDString", str2: "uuidstr", int1: 0, int2: 0
        ),
        ErrorCase(
            name: "shutdown while shut off",
            operation: { c throws(LibvirtError) in try c.lookup(name: "web1").shutdown() },
            code: .internalError, codeName: "VIR_ERR_INTERNAL_ERROR", domain: .test, domainName: "VIR_FROM_TEST",
            message: "internal error: domain 'web1' not running",
            str1: "internal error: %s", str2: "domain 'web1' not running"
        ),
        ErrorCase(
            name: "suspend while shut off",
            operation: { c throws(LibvirtError) in try c.lookup(name: "web1").suspend() },
            code: .internalError, codeName: "VIR_ERR_INTERNAL_ERROR", domain: .test, domainName: "VIR_FROM_TEST",
            message: "internal error: domain 'web1' not running",
            str1: "internal error: %s", str2: "domain 'web1' not running"
        ),
        ErrorCase(
            name: "resume while running",
            operation: { c throws(LibvirtError) in try c.lookup(name: "db1").resume() },
            code: .internalError, codeName: "VIR_ERR_INTERNAL_ERROR", domain: .test, domainName: "VIR_FROM_TEST",
            message: "internal error: domain 'db1' not paused",
            str1: "internal error: %s", str2: "domain 'db1' not paused"
        ),
        ErrorCase(
            name: "start while running",
            operation: { c throws(LibvirtError) in try c.lookup(name: "db1").create() },
            code: .internalError, codeName: "VIR_ERR_INTERNAL_ERROR", domain: .test, domainName: "VIR_FROM_TEST",
            message: "internal error: Domain 'db1' is already running",
            str1: "internal error: %s", str2: "Domain 'db1' is already running"
        ),
        ErrorCase(
            name: "destroy while shut off",
            operation: { c throws(LibvirtError) in try c.lookup(name: "web1").destroy() },
            code: .operationInvalid, codeName: "VIR_ERR_OPERATION_INVALID", domain: .domain, domainName: "VIR_FROM_DOMAIN",
            message: "Requested operation is not valid: domain is not running",
            str1: "Requested operation is not valid: %s", str2: "domain is not running"
        ),
        ErrorCase(
            name: "reboot while shut off",
            operation: { c throws(LibvirtError) in try c.lookup(name: "web1").reboot() },
            code: .operationInvalid, codeName: "VIR_ERR_OPERATION_INVALID", domain: .domain, domainName: "VIR_FROM_DOMAIN",
            message: "Requested operation is not valid: domain is not running",
            str1: "Requested operation is not valid: %s", str2: "domain is not running"
        ),
        ErrorCase(
            name: "malformed XML",
            operation: { c throws(LibvirtError) in _ = try c.define(xml: "<domain type='test'><name>broken</name>") },
            code: .xmlDetail, codeName: "VIR_ERR_XML_DETAIL", domain: .domain, domainName: "VIR_FROM_DOMAIN",
            message: """
                (domain_definition):1: Premature end of data in tag domain line 1
                <domain type='test'><name>broken</name>
                ---------------------------------------^
                """,
            str1: "%s",
            str2: """
                (domain_definition):1: Premature end of data in tag domain line 1
                <domain type='test'><name>broken</name>
                ---------------------------------------^
                """
        ),
        ErrorCase(
            name: "XML without an OS type",
            operation: { c throws(LibvirtError) in _ = try c.define(xml: "<domain type='test'><name>x</name></domain>") },
            code: .xmlError, codeName: "VIR_ERR_XML_ERROR", domain: .domain, domainName: "VIR_FROM_DOMAIN",
            message: "XML error: an os <type> must be specified",
            str1: "XML error: %s", str2: "an os <type> must be specified"
        ),
        ErrorCase(
            name: "duplicate name",
            operation: { c throws(LibvirtError) in _ = try c.define(xml: domainXML(name: "web1")) },
            code: .operationFailed, codeName: "VIR_ERR_OPERATION_FAILED", domain: .domain, domainName: "VIR_FROM_DOMAIN",
            message: "operation failed: domain 'web1' already exists with uuid 11111111-2222-3333-4444-000000000001",
            str1: "operation failed: %s",
            str2: "domain 'web1' already exists with uuid 11111111-2222-3333-4444-000000000001"
        ),
        ErrorCase(
            name: "operation on an undefined domain",
            operation: { c throws(LibvirtError) in
                let web2 = try c.lookup(name: "web2")
                try web2.undefine()
                try web2.create()
            },
            code: .noDomain, codeName: "VIR_ERR_NO_DOMAIN", domain: .test, domainName: "VIR_FROM_TEST",
            message: "Domain not found: no domain with matching uuid '11111111-2222-3333-4444-000000000002' (web2)",
            str1: "Domain not found: %s",
            str2: "no domain with matching uuid '11111111-2222-3333-4444-000000000002' (web2)"
        ),
        ErrorCase(
            name: "keepalive on the test driver",
            operation: { c throws(LibvirtError) in try c.setKeepAlive(intervalSeconds: 5, count: 3) },
            code: .noSupport, codeName: "VIR_ERR_NO_SUPPORT", domain: .domain, domainName: "VIR_FROM_DOMAIN",
            message: "this function is not supported by the connection driver: virConnectSetKeepAlive",
            str1: "this function is not supported by the connection driver: %s",
            str2: "virConnectSetKeepAlive"
        ),
    ]
}

@Suite("Error capture")
struct ErrorCaptureTests {
    @Test(arguments: ErrorCase.all)
    func capturesEveryField(_ expected: ErrorCase) throws {
        let node = try NodeFile()
        let connection = try node.connect()
        let error = try #require(captureError { () throws(LibvirtError) in try expected.operation(connection) })
        #expect(error.code == expected.code)
        #expect(error.codeName == expected.codeName)
        #expect(error.domain == expected.domain)
        #expect(error.domainName == expected.domainName)
        #expect(error.level == .error)
        #expect(error.levelName == "error")
        #expect(error.message == expected.message)
        #expect(error.message?.isEmpty == false)
        #expect(error.str1 == expected.str1)
        #expect(error.str2 == expected.str2)
        #expect(error.str3 == nil)
        #expect(error.int1 == expected.int1)
        #expect(error.int2 == expected.int2)
        #expect(error.description.hasPrefix("\(expected.codeName) (\(expected.code.rawValue)) from \(expected.domainName) (\(expected.domain.rawValue)): "))
    }

    /// A daemon URI whose socket does not exist: what `qemu:///system` gives on a host with no
    /// libvirtd, observable whether or not this host runs one.
    static let noDaemonSocket = "/run/ecp-no-such-libvirtd/libvirt-sock"

    @Test("qemu:///system without a daemon")
    func systemURIWithoutDaemon() throws {
        let error = try #require(captureError { () throws(LibvirtError) in
            _ = try Connection(uri: "qemu+unix:///system?socket=\(Self.noDaemonSocket)")
        })
        #expect(error.code == .systemError)
        #expect(error.codeName == "VIR_ERR_SYSTEM_ERROR")
        #expect(error.domain == .rpc)
        #expect(error.domainName == "VIR_FROM_RPC")
        #expect(error.level == .error)
        #expect(error.int1 == ENOENT)
        #expect(error.int2 == -1)
        let message = try #require(error.message)
        #expect(message == "Failed to connect socket to '\(Self.noDaemonSocket)': No such file or directory")
        #expect(error.str1 == "%s")
        #expect(error.str2 == message)
        #expect(error.str3 == nil)
    }

    @Test func errorIsClearedAfterCapture() throws {
        let node = try NodeFile()
        let connection = try node.connect()
        let failed = captureError { () throws(LibvirtError) in _ = try connection.lookup(name: "missing") }
        #expect(failed?.code == .noDomain)
        // libvirt left nothing behind on this thread for a later capture to pick up.
        let afterwards = LibvirtError.last(operation: "nothing")
        #expect(afterwards.message == "nothing failed without an error report")
    }

    @Test func lastWithoutAnErrorReportsAnInternalError() async {
        // A new thread has never seen a libvirt error.
        let error = await onNewThread { LibvirtError.last(operation: "virDomainSomething") }
        #expect(error.code == .internalError)
        #expect(error.codeName == "VIR_ERR_INTERNAL_ERROR")
        #expect(error.domainName == "VIR_FROM_NONE")
        #expect(error.levelName == "error")
        #expect(error.message == "virDomainSomething failed without an error report")
    }

    @Test func errorsRoundTripThroughCodable() throws {
        let error = LibvirtError(
            code: .systemError, domain: .rpc, level: .error, message: "m", str1: "%s", str2: "m", str3: nil, int1: 2, int2: -1
        )
        let data = try JSONEncoder().encode(error)
        let decoded = try JSONDecoder().decode(LibvirtError.self, from: data)
        #expect(decoded == error)
        // The named fields encode as libvirt's numbers.
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["code"] as? Int == 38)
        #expect(object["domain"] as? Int == 7)
        #expect(object["level"] as? Int == 2)
        #expect(decoded.codeName == "VIR_ERR_SYSTEM_ERROR")
        #expect(decoded.domainName == "VIR_FROM_RPC")
    }

    @Test(arguments: [(Int32(0), "none"), (1, "warning"), (2, "error"), (3, "unknown_3"), (-1, "unknown_-1")])
    func levelNames(level: Int32, name: String) {
        let error = LibvirtError(
            code: .internalError, domain: .none, level: LibvirtError.Level(rawValue: level), message: nil, str1: nil, str2: nil, str3: nil, int1: 0, int2: 0
        )
        #expect(error.levelName == name)
    }
}

/// Runs `body` on a new `Thread` (not the cooperative pool) and returns its result.
func onNewThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread {
            continuation.resume(returning: body())
        }
        thread.start()
    }
}
