import Foundation
import Libvirt
import WorkerLauncher

/// A domain of a test-driver node file.
typealias TestMachine = TestDriverMachine

/// A test-driver node file written to a fresh temporary directory; each test gets its own.
///
/// The test driver parses a node file anew for every connection, so each connection to it has
/// private state; `test:///default`, in contrast, is shared by the whole process.
final class NodeFile: Sendable {
    /// The machines of the default node file.
    static let defaultMachines: [TestMachine] = [
        TestMachine(name: "web1", uuid: "11111111-2222-3333-4444-000000000001", running: false, maxMemoryKiB: 1_048_576),
        TestMachine(
            name: "web2", uuid: "11111111-2222-3333-4444-000000000002",
            running: false, memoryKiB: 1_048_576, maxMemoryKiB: 2_097_152, vcpus: 4
        ),
        TestMachine(name: "db1", uuid: "11111111-2222-3333-4444-000000000003", running: true, maxMemoryKiB: 1_048_576, vcpus: 1),
        TestMachine(name: "cache1", uuid: "11111111-2222-3333-4444-000000000004", running: true, maxMemoryKiB: 1_048_576),
    ]

    let directory: URL
    let path: String
    let machines: [TestMachine]

    /// The URI of the node file: `test:///<absolute path>`.
    var uri: String { "test://\(path)" }

    init(machines: [TestMachine] = NodeFile.defaultMachines) throws {
        self.machines = machines
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("libvirt-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("node.xml").path
        try TestDriverNode.xml(machines).write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Opens a connection with private state.
    func connect() throws -> Connection {
        try Connection(uri: uri)
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Domain XML the test driver accepts for `define`.
func domainXML(name: String, uuid: String? = nil, memoryKiB: UInt64 = 65_536, vcpus: UInt32 = 1) -> String {
    TestDriverNode.defineXML(name: name, uuid: uuid, memoryKiB: Int(memoryKiB), vcpus: Int(vcpus))
}

/// Runs `body` and returns the `LibvirtError` it throws, or `nil` if it does not throw.
func captureError(_ body: () throws(LibvirtError) -> Void) -> LibvirtError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}
