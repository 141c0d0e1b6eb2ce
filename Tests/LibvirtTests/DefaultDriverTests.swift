import Libvirt
import Testing

/// Read-only checks against `test:///default`, whose state the whole process shares.
@Suite("test:///default")
struct DefaultDriverTests {
    @Test func opensAndIsAlive() throws {
        let connection = try Connection(uri: "test:///default")
        #expect(connection.uri == "test:///default")
        #expect(connection.isAlive)
        #expect(try !connection.hostname().isEmpty)
    }

    @Test func describesTheHypervisor() throws {
        let connection = try Connection(uri: "test:///default")
        #expect(try connection.hypervisorType() == "TEST")
        #expect(try connection.hypervisorVersion().split(separator: ".").count == 3)
        let capabilities = try connection.capabilities()
        #expect(capabilities.contains("<capabilities>") && capabilities.contains("<guest>"))
    }

    @Test("a connection opened for calls on an in-process driver is not over a socket, and answers")
    func opensForCalls() throws {
        EventLoop.startDefault()
        let (connection, overSocket) = try Connection.openForCalls(uri: "test:///default")
        #expect(!overSocket)
        let test = try connection.lookup(name: "test")
        let now = try #require(try test.persistentState())
        #expect(now.name == "test" && now.state == .running)
        // Watches are refused only while it opens: a connection opened after it has events.
        let watched = try Connection(uri: "test:///default")
        #expect(watched.isAlive)
    }

    @Test("persistentState says nothing of a transient machine")
    func transientHasNoPersistentState() throws {
        let connection = try Connection(uri: "test:///default")
        let name = "transient-\(UInt32.random(in: 0...UInt32.max))"
        let domain = try connection.define(xml: "<domain type='test'><name>\(name)</name><memory>65536</memory><os><type>hvm</type></os></domain>")
        try domain.create()
        defer { try? domain.destroy() }
        #expect(try domain.persistentState()?.state == .running)
        // Undefined while running, it runs on as a transient machine.
        try domain.undefine()
        #expect(try domain.persistentState() == nil)
        #expect(try !domain.isPersistent())
    }

    @Test func reportsLibraryVersion() {
        let parts = Libvirt.version.split(separator: ".")
        #expect(parts.count == 3)
        #expect(parts.allSatisfy { Int($0) != nil })
        #expect((Int(parts.first ?? "") ?? 0) >= 9)
    }

    @Test func listsTheRunningTestDomain() throws {
        let connection = try Connection(uri: "test:///default")
        let domains = try connection.listAllDomains()
        let test = try #require(domains.first { $0.name == "test" })
        #expect(try test.state().state == .running)
        #expect(try test.isActive())
    }

    @Test func looksUpByNameAndByUUID() throws {
        let connection = try Connection(uri: "test:///default")
        let byName = try connection.lookup(name: "test")
        #expect(byName.name == "test")
        #expect(Connection.isUUID(byName.uuid))
        #expect(byName.uuid == byName.uuid.lowercased())

        let byUUID = try connection.lookup(uuid: byName.uuid)
        #expect(byUUID.name == "test")
        #expect(byUUID.uuid == byName.uuid)

        let byEither = try connection.lookup(nameOrUUID: byName.uuid.uppercased())
        #expect(byEither.name == "test")
        let byEitherName = try connection.lookup(nameOrUUID: "test")
        #expect(byEitherName.uuid == byName.uuid)
    }

    @Test func readsStateInfoPersistenceAndAutostart() throws {
        let connection = try Connection(uri: "test:///default")
        let domain = try connection.lookup(name: "test")
        let (state, _) = try domain.state()
        #expect(state == .running)

        let info = try domain.info()
        #expect(info.state == .running)
        #expect(info.maxMemoryKiB == 8_388_608)
        #expect(info.memoryKiB == 2_097_152)
        #expect(info.vcpus == 2)
        #expect(info.cpuTimeNs > 0)

        #expect(try domain.isPersistent())
        #expect(try !domain.autostart())
        #expect(try domain.xmlDescription().contains("<name>test</name>"))
    }
}
