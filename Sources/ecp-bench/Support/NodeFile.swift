import Foundation
import WorkerLauncher

/// A libvirt test-driver node file and a state table for a restore run: `count` machines, all
/// shut off in libvirt, all desired `running` in the table.
struct RestoreFixture {
    struct Machine {
        var name: String
        var uuid: String
    }

    var machines: [Machine]
    /// The machines' state in the node file: shut off (what a restore starts) or running.
    var running: Bool

    init(count: Int, running: Bool = false) {
        self.running = running
        machines = (0..<count).map { k in
            Machine(name: String(format: "bench-m%05d", k + 1), uuid: String(format: "ecb0c0de-0000-4000-8000-%012x", k + 1))
        }
    }

    /// `<node>` with one `<domain type='test'>` per machine, shut off or running.
    var nodeXML: String {
        TestDriverNode.xml(machines.map {
            TestDriverMachine(name: $0.name, uuid: $0.uuid, running: running, memoryKiB: 65_536, vcpus: 1)
        })
    }

    /// The state table (PROTOCOL.md, "State restore"): keyed by UUID, every machine desired
    /// running by a command, last observed shut off.
    func stateTable(worker: String) throws -> Data {
        struct Entry: Encodable {
            var name: String
            var desired = "running"
            var observed = "shutoff"
            var updated_at: String
            var desired_from = "command"
        }
        struct Table: Encodable {
            var version = 1
            var worker: String
            var saved_at: String
            var machines: [String: Entry]
        }
        let now = Self.timestamp()
        let table = Table(
            worker: worker, saved_at: now,
            machines: Dictionary(uniqueKeysWithValues: machines.map { ($0.uuid, Entry(name: $0.name, updated_at: now)) }))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return try encoder.encode(table)
    }

    /// Writes both files into `directory`; returns their paths.
    func write(into directory: URL, worker: String) throws -> (node: String, table: String) {
        let node = directory.appendingPathComponent("node.xml").path
        let table = directory.appendingPathComponent("state.json").path
        guard FileManager.default.createFile(atPath: node, contents: Data(nodeXML.utf8), attributes: [.posixPermissions: 0o600]),
            FileManager.default.createFile(atPath: table, contents: try stateTable(worker: worker), attributes: [.posixPermissions: 0o600])
        else {
            throw BenchFailure(2, "cannot write the node file and state table in \(directory.path)")
        }
        return (node, table)
    }

    /// Now as `2026-11-25T20:31:07.123Z`.
    static func timestamp() -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date())
    }
}
