import Libvirt
import Testing
import WorkerLauncher

/// Every domain operation against a node file of its own (private state per connection).
@Suite("Domain operations on a node file")
struct DomainOperationTests {
    // virDomainShutoffReason / virDomainRunningReason / virDomainPausedReason values.
    static let shutoffUnknown: Int32 = 0
    static let shutoffShutdown: Int32 = 1
    static let shutoffDestroyed: Int32 = 2
    static let runningUnknown: Int32 = 0
    static let runningBooted: Int32 = 1
    static let runningUnpaused: Int32 = 5
    static let pausedUser: Int32 = 1

    @Test func nodeFileDefinesRunningAndShutOffMachines() throws {
        let node = try NodeFile()
        let connection = try node.connect()
        let domains = try connection.listAllDomains()
        #expect(Set(domains.map(\.name)) == Set(node.machines.map(\.name)))
        for machine in node.machines {
            let domain = try #require(domains.first { $0.name == machine.name })
            #expect(domain.uuid == machine.uuid)
            let (state, reason) = try domain.state()
            #expect(state == (machine.running ? .running : .shutoff), "\(machine.name)")
            #expect(reason == (machine.running ? Self.runningUnknown : Self.shutoffUnknown))
            #expect(try domain.isActive() == machine.running)
            #expect(try domain.isPersistent())
            #expect(try !domain.autostart())
        }
    }

    @Test(arguments: NodeFile.defaultMachines)
    func infoMatchesTheDefinition(machine: TestMachine) throws {
        let node = try NodeFile()
        let domain = try node.connect().lookup(name: machine.name)
        let info = try domain.info()
        #expect(info.state == (machine.running ? .running : .shutoff))
        #expect(info.maxMemoryKiB == UInt64(machine.maxMemoryKiB))
        #expect(info.memoryKiB == UInt64(machine.memoryKiB))
        #expect(info.vcpus == UInt32(machine.vcpus))
        #expect(info.cpuTimeNs > 0)
    }

    @Test func createShutdownDestroyCycle() throws {
        let node = try NodeFile()
        let connection = try node.connect()
        let web1 = try connection.lookup(name: "web1")

        try web1.create()
        #expect(try web1.state() == (.running, Self.runningBooted))
        #expect(try web1.isActive())

        try web1.shutdown()
        #expect(try web1.state() == (.shutoff, Self.shutoffShutdown))
        #expect(try !web1.isActive())

        try web1.create()
        try web1.destroy()
        #expect(try web1.state() == (.shutoff, Self.shutoffDestroyed))
        #expect(try web1.info().state == .shutoff)
    }

    @Test func createPausedIsRejectedByTheTestDriver() throws {
        // libvirt 9.0.0's test driver accepts no flags in virDomainCreateWithFlags.
        let node = try NodeFile()
        let web1 = try node.connect().lookup(name: "web1")
        let error = try #require(captureError { () throws(LibvirtError) in try web1.create(paused: true) })
        #expect(error.codeName == "VIR_ERR_INVALID_ARG")
        #expect(error.domainName == "VIR_FROM_TEST")
        #expect(error.str1 == "testDomainCreateWithFlags")
        #expect(error.str2 == "flags")
        #expect(error.message?.contains("unsupported flags (0x1)") == true)
        #expect(try web1.state().state == .shutoff)
    }

    @Test func suspendResumeAndReboot() throws {
        let node = try NodeFile()
        let db1 = try node.connect().lookup(nameOrUUID: "11111111-2222-3333-4444-000000000003")
        #expect(db1.name == "db1")

        try db1.suspend()
        #expect(try db1.state() == (.paused, Self.pausedUser))
        #expect(try db1.info().state == .paused)
        #expect(try db1.isActive())

        try db1.resume()
        #expect(try db1.state() == (.running, Self.runningUnpaused))

        try db1.reboot()
        #expect(try db1.state() == (.running, Self.runningBooted))
    }

    @Test func defineUndefineAndList() throws {
        let node = try NodeFile()
        let connection = try node.connect()
        let uuid = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
        let defined = try connection.define(xml: domainXML(name: "new1", uuid: uuid, memoryKiB: 131_072, vcpus: 3))
        #expect(defined.name == "new1")
        #expect(defined.uuid == uuid)
        #expect(try defined.isPersistent())
        #expect(try !defined.isActive())
        #expect(try defined.state().state == .shutoff)
        let info = try defined.info()
        #expect(info.maxMemoryKiB == 131_072)
        #expect(info.vcpus == 3)
        #expect(try connection.listAllDomains().map(\.name).contains("new1"))
        #expect(try connection.lookup(uuid: uuid).name == "new1")

        // Redefining the same name and UUID updates the definition.
        let redefined = try connection.define(xml: domainXML(name: "new1", uuid: uuid, memoryKiB: 262_144))
        #expect(try redefined.info().maxMemoryKiB == 262_144)

        try defined.undefine()
        #expect(try !connection.listAllDomains().map(\.name).contains("new1"))
        let error = try #require(captureError { () throws(LibvirtError) in _ = try connection.lookup(name: "new1") })
        #expect(error.codeName == "VIR_ERR_NO_DOMAIN")
    }

    @Test func undefiningARunningDomainLeavesItTransient() throws {
        let node = try NodeFile()
        let connection = try node.connect()
        let cache1 = try connection.lookup(name: "cache1")
        try cache1.undefine()
        #expect(try cache1.isActive())
        #expect(try !cache1.isPersistent())
        #expect(try cache1.state().state == .running)
        try cache1.destroy()
        // A transient domain disappears once it stops.
        #expect(try !connection.listAllDomains().map(\.name).contains("cache1"))
    }

    @Test func autostartCanBeSetAndRead() throws {
        let node = try NodeFile()
        let web2 = try node.connect().lookup(name: "web2")
        #expect(try !web2.autostart())
        try web2.setAutostart(true)
        #expect(try web2.autostart())
        try web2.setAutostart(false)
        #expect(try !web2.autostart())
    }

    @Test func xmlDescriptionNamesTheDomain() throws {
        let node = try NodeFile()
        let xml = try node.connect().lookup(name: "web2").xmlDescription()
        #expect(xml.contains("<name>web2</name>"))
        #expect(xml.contains("11111111-2222-3333-4444-000000000002"))
    }

    @Test func connectionsToOneNodeFileHavePrivateState() throws {
        let node = try NodeFile()
        let first = try node.connect()
        let second = try node.connect()
        try first.lookup(name: "web1").create()
        #expect(try first.lookup(name: "web1").state().state == .running)
        #expect(try second.lookup(name: "web1").state().state == .shutoff)
    }

    @Test func closeIsIdempotentAndDomainsOutliveIt() throws {
        let node = try NodeFile()
        let connection = try node.connect()
        let web1 = try connection.lookup(name: "web1")
        connection.close()
        connection.close()
        #expect(!connection.isAlive)

        let error = try #require(captureError { () throws(LibvirtError) in _ = try connection.lookup(name: "web1") })
        #expect(error.codeName == "VIR_ERR_INVALID_CONN")
        #expect(error.message?.contains("virDomainLookupByName") == true)

        // The domain handle holds its own reference to the libvirt connection.
        try web1.create()
        #expect(try web1.state().state == .running)
    }
}
