import Foundation
import Libvirt

/// A domain of a test-driver node file.
struct TestMachine: Sendable {
    var name: String
    var uuid: String
    var maxMemoryKiB: UInt64 = 1_048_576
    var memoryKiB: UInt64 = 524_288
    var vcpus: UInt32 = 2
    /// `true`: the domain starts running; `false`: shut off (`<test:runstate>5</test:runstate>`).
    var running: Bool

    var xml: String {
        """
          <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
            <name>\(name)</name>
            <uuid>\(uuid)</uuid>
            <memory unit='KiB'>\(maxMemoryKiB)</memory>
            <currentMemory unit='KiB'>\(memoryKiB)</currentMemory>
            <vcpu>\(vcpus)</vcpu>
            <os><type>hvm</type></os>
        \(running ? "" : "    <test:runstate>5</test:runstate>\n")  </domain>
        """
    }
}

/// A test-driver node file written to a fresh temporary directory; each test gets its own.
///
/// The test driver parses a node file anew for every connection, so each connection to it has
/// private state; `test:///default`, in contrast, is shared by the whole process.
final class NodeFile: Sendable {
    /// The machines of the default node file.
    static let defaultMachines: [TestMachine] = [
        TestMachine(name: "web1", uuid: "11111111-2222-3333-4444-000000000001", running: false),
        TestMachine(
            name: "web2", uuid: "11111111-2222-3333-4444-000000000002",
            maxMemoryKiB: 2_097_152, memoryKiB: 1_048_576, vcpus: 4, running: false
        ),
        TestMachine(name: "db1", uuid: "11111111-2222-3333-4444-000000000003", vcpus: 1, running: true),
        TestMachine(name: "cache1", uuid: "11111111-2222-3333-4444-000000000004", running: true),
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
        let xml = "<node>\n" + machines.map(\.xml).joined(separator: "\n") + "\n</node>\n"
        try xml.write(toFile: path, atomically: true, encoding: .utf8)
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
    """
    <domain type='test'>
      <name>\(name)</name>
      \(uuid.map { "<uuid>\($0)</uuid>" } ?? "")
      <memory unit='KiB'>\(memoryKiB)</memory>
      <vcpu>\(vcpus)</vcpu>
      <os><type>hvm</type></os>
    </domain>
    """
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
