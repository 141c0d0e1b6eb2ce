import Libvirt
import Testing

@Suite("bulk domain stats")
struct DomainStatsTests {
    @Test("every domain in one call, named and with its UUID and state")
    func allDomains() throws {
        let node = try NodeFile()
        let connection = try node.connect()
        let records = try connection.allDomainStats()
        #expect(records.count == node.machines.count)
        let byName = Dictionary(uniqueKeysWithValues: records.map { ($0.name, $0) })
        for m in node.machines {
            let r = try #require(byName[m.name])
            #expect(r.uuid == m.uuid)
            #expect(r.state == (m.runState == .running ? .running : .shutoff))
        }
    }

    @Test("a list of domains, and one domain")
    func listAndOne() throws {
        let node = try NodeFile()
        let connection = try node.connect()
        let db = try connection.lookup(name: "db1")
        let web = try connection.lookup(name: "web1")
        let records = try Domain.stats(of: [db, web])
        #expect(Set(records.map(\.name)) == ["db1", "web1"])
        let one = try #require(try db.stats())
        #expect(one.name == "db1" && one.uuid == db.uuid && one.state == .running)
        #expect(try Domain.stats(of: []).isEmpty)
    }

    @Test("with no wait and only the state group")
    func stateOnly() throws {
        let node = try NodeFile()
        let records = try node.connect().allDomainStats(groups: .state, nowait: false)
        #expect(records.count == node.machines.count)
        #expect(records.allSatisfy { $0.cpuTimeNs == nil && $0.blocks.isEmpty && $0.interfaces.isEmpty })
    }
}
