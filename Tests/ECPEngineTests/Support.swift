@testable import ECPEngine
import ECPProtocol
import Foundation
import Logging
import Testing
import WorkerLauncher

/// A message as a subscriber sees it: topic and parsed JSON.
struct Received: @unchecked Sendable, CustomStringConvertible {
    let topic: String
    let json: [String: Any]
    let reply: ReplyRoute?
    /// The message's size in bytes, as sent.
    var size = 0
    /// Whether it went to the events socket (false: a reply only).
    var published = true
    /// When the sink got it.
    var at = Date()
    var type: String { json["type"] as? String ?? "" }
    var id: String? { json["id"] as? String }
    subscript(key: String) -> Any? { json[key] }
    var description: String { "\(topic) \(json)" }
}

/// An in-memory sink: stamps envelopes like the socket transport and lets tests await messages.
final class MemorySink: MessageSink, @unchecked Sendable {
    private let condition = NSCondition()
    private var stamper = EnvelopeStamper(worker: "t1", run: "00000000-0000-0000-0000-000000000001")
    private(set) var messages: [Received] = []

    /// What was published, for `replay`, as the socket transport keeps it.
    let ring = ReplayRing(maxMessages: 10_000, maxBytes: 16 << 20)

    func replay(since: UInt64, limit: Int, topics: [String]?) -> (run: String, page: ReplayPage) {
        (stamper.run, ring.page(since: since, limit: limit, topics: topics))
    }

    func send(_ message: Outgoing) {
        condition.lock()
        var out: [UInt8] = []
        stamper.stamp(message.body, into: &out, numbered: message.published)
        if message.published { ring.append(seq: stamper.seq, topic: message.topic, message: out) }
        let bytes = Data(out)
        let json = (try? JSONSerialization.jsonObject(with: bytes)) as? [String: Any] ?? ["unparsable": String(decoding: bytes, as: UTF8.self)]
        messages.append(Received(
            topic: message.topic, json: json, reply: message.reply, size: bytes.count, published: message.published))
        condition.broadcast()
        condition.unlock()
    }

    /// Waits (bounded) for a message matching the predicate, beyond those already consumed by index.
    func wait(timeout: Double = 10, _ predicate: (Received) -> Bool) -> Received? {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let m = messages.first(where: predicate) { return m }
            if !condition.wait(until: deadline) { return nil }
        }
    }

    func result(_ id: String, timeout: Double = 10) -> Received? {
        wait(timeout: timeout) { $0.type == "result" && $0.id == id }
    }

    func all(_ predicate: (Received) -> Bool) -> [Received] {
        condition.lock()
        defer { condition.unlock() }
        return messages.filter(predicate)
    }
}

/// A test-driver node file with machines of given run states, in a fresh directory.
struct NodeFile {
    let url: URL
    var uri: String { "test://" + url.path }

    /// - Parameter machines: (name, running) pairs; UUIDs are derived from the index.
    init(_ machines: [(String, Bool)]) throws {
        try self.init(states: machines.map { ($0.0, $0.1 ? 1 : 5) })
    }

    /// - Parameter states: (name, libvirt run state number: 1 running, 3 paused, 5 shut off, 6 crashed).
    init(states machines: [(String, Int)]) throws {
        try self.init(machines: machines.enumerated().map { i, machine in
            TestDriverMachine(
                name: machine.0, uuid: Self.uuid(i), runState: TestDriverMachine.RunState(rawValue: machine.1)!,
                memoryKiB: 65_536, vcpus: 1)
        })
    }

    init(machines: [TestDriverMachine]) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ecp-node-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        url = dir.appendingPathComponent("node.xml")
        try TestDriverNode.xml(machines).write(to: url, atomically: true, encoding: .utf8)
    }

    static func uuid(_ i: Int) -> String {
        String(format: "6695eb01-f6a4-8304-79aa-%012x", 0x97f2502e1900 + i)
    }
}

/// A fresh directory for a state table.
func temporaryStatePath() -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ecp-state-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent("state.json").path
}

func makeEngine(
    uri: String, sink: MemorySink, maxParallel: Int = 4, stateFile: String = temporaryStatePath(),
    restore: RestoreSettings = .init(), logger: Logger? = nil, statsIntervalMs: Int = 0
) -> Engine {
    var logger = logger ?? Logger(label: "test")
    if logger.label == "test" { logger.logLevel = .critical }
    let engine = Engine(
        configuration: EngineConfiguration(
            workerID: "t1", libvirtURI: uri, stateFile: stateFile, maxParallel: maxParallel, restore: restore,
            statsIntervalMs: statsIntervalMs),
        sink: sink, logger: logger)
    try! engine.openStateTable()
    engine.start()
    engine.startStatsSampling()
    return engine
}

extension Engine {
    func submit(_ json: String, from origin: Origin = .commands) {
        submit(Data(json.utf8), from: origin)
    }
}

/// Log records kept in memory, for tests of what a log line carries.
final class CapturedLog: @unchecked Sendable {
    struct Record {
        var level: Logger.Level
        var message: String
        var metadata: Logger.Metadata
    }

    private let lock = NSLock()
    private var _records: [Record] = []

    var records: [Record] {
        lock.lock()
        defer { lock.unlock() }
        return _records
    }

    fileprivate func append(_ r: Record) {
        lock.lock()
        _records.append(r)
        lock.unlock()
    }

    /// A logger writing here (and nowhere else), at every level.
    var logger: Logger {
        Logger(label: "captured") { _ in Handler(log: self) }
    }

    private struct Handler: LogHandler {
        let log: CapturedLog
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            log.append(Record(level: event.level, message: event.message.description, metadata: metadata.merging(event.metadata ?? [:]) { _, n in n }))
        }
    }
}
