/// A domain of a libvirt test-driver node file (`test:///path/to/node.xml`).
public struct TestDriverMachine: Sendable, Hashable {
    /// libvirt's run states, as the test driver's `<test:runstate>` takes them.
    public enum RunState: Int, Sendable, Hashable {
        case running = 1
        case paused = 3
        case shutoff = 5
        case crashed = 6
    }

    public var name: String
    public var uuid: String
    public var runState: RunState
    /// `<memory>`: the most the domain may have.
    public var maxMemoryKiB: Int
    /// `<currentMemory>`.
    public var memoryKiB: Int
    public var vcpus: Int

    public init(
        name: String, uuid: String, runState: RunState, memoryKiB: Int = 524_288, maxMemoryKiB: Int? = nil, vcpus: Int = 2
    ) {
        self.name = name
        self.uuid = uuid
        self.runState = runState
        self.memoryKiB = memoryKiB
        self.maxMemoryKiB = maxMemoryKiB ?? memoryKiB
        self.vcpus = vcpus
    }

    /// Running or shut off when the driver opens the file.
    public init(name: String, uuid: String, running: Bool, memoryKiB: Int = 524_288, maxMemoryKiB: Int? = nil, vcpus: Int = 2) {
        self.init(name: name, uuid: uuid, runState: running ? .running : .shutoff, memoryKiB: memoryKiB, maxMemoryKiB: maxMemoryKiB, vcpus: vcpus)
    }

    public var running: Bool { runState == .running }

    /// The `<domain>` element. The driver starts a domain running unless `<test:runstate>` says
    /// otherwise, so a running one carries none.
    public var domainXML: String {
        """
          <domain type='test'>
            <name>\(name)</name>
            <uuid>\(uuid)</uuid>
            <memory unit='KiB'>\(maxMemoryKiB)</memory>
            <currentMemory unit='KiB'>\(memoryKiB)</currentMemory>
            <vcpu>\(vcpus)</vcpu>
            <os><type>hvm</type></os>
        \(runState == .running ? "" : "    <test:runstate>\(runState.rawValue)</test:runstate>\n")  </domain>
        """
    }
}

/// The text of a test-driver node file.
public enum TestDriverNode {
    /// `<node>` holding `machines`, with the namespace `<test:runstate>` needs.
    public static func xml(_ machines: [TestDriverMachine]) -> String {
        "<node xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
            + machines.map(\.domainXML).joined(separator: "\n") + "\n</node>\n"
    }

    /// The XML of a machine to `define` on the test driver.
    public static func defineXML(name: String, uuid: String? = nil, memoryKiB: Int = 65_536, vcpus: Int = 1) -> String {
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
}
