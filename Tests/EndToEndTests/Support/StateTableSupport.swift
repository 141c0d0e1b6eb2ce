import ECPProtocol
import Foundation
import Testing
import WorkerLauncher

#if canImport(Glibc)
import Glibc
#endif

/// A temporary directory holding a state table that outlives the worker runs of one test. It is
/// removed when the object goes away.
final class StateTableDirectory: Sendable {
    let url: URL
    /// The state file the workers of the test are given (`<directory>/state.json`, unless a test
    /// asks for another relative path).
    let stateFile: String

    init(relativeStatePath: String = "state.json") throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("ecp-e2e-st-\(UUID().uuidString.prefix(8).lowercased())", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        stateFile = url.appendingPathComponent(relativeStatePath).path
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }

    /// The directory the state file is in.
    var stateDirectory: String { URL(fileURLWithPath: stateFile).deletingLastPathComponent().path }

    /// The names in the state file's directory.
    func entries() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: stateDirectory).sorted()
    }

    /// Temporary files the state store left behind (`.<file>.tmp-*`).
    func temporaryFiles() throws -> [String] {
        let prefix = ".\(URL(fileURLWithPath: stateFile).lastPathComponent).tmp-"
        return try entries().filter { $0.hasPrefix(prefix) }
    }

    /// Files moved aside as corrupt (`<file>.corrupt-*`).
    func corruptFiles() throws -> [String] {
        let prefix = "\(URL(fileURLWithPath: stateFile).lastPathComponent).corrupt-"
        return try entries().filter { $0.hasPrefix(prefix) }
    }
}

/// The worker options used by the state-table tests: the given machines, the shared state file
/// (the harness then passes `--state-file` once, with this path), quiet heartbeats. With
/// `sharedNodeFile`, every worker of the test opens the same node file, written once into the
/// test's directory; libvirt's test driver reads it afresh at each connection, so each worker
/// finds the machines as the file gives them, as after a host reboot.
func stateTableLaunchOptions(
    _ directory: StateTableDirectory, machines: [WorkerMachine], sharedNodeFile: Bool = false, extraArguments: [String] = []
) throws -> WorkerLaunchOptions {
    var options = WorkerLaunchOptions()
    options.machines = machines
    options.stateFilePath = directory.stateFile
    if sharedNodeFile {
        let node = directory.url.appendingPathComponent("node.xml").path
        if !FileManager.default.fileExists(atPath: node) {
            try TestDriverNode.xml(machines).write(toFile: node, atomically: true, encoding: .utf8)
        }
        options.libvirtURI = "test://\(node)"
    }
    options.heartbeatMs = 5_000
    options.extraArguments = extraArguments
    return options
}

/// Machines for the state-table tests, all shut off in the node file.
enum StateTableMachines {
    /// `count` shut-off machines `<prefix>0`, `<prefix>1`...; the UUIDs end in the index.
    static func shutOff(_ count: Int, prefix: String, uuidStem: String = "5a7e7ab1-0000-4000-8000-") -> [WorkerMachine] {
        (0..<count).map { i in
            WorkerMachine(name: "\(prefix)\(i)", uuid: uuidStem + String(format: "%012d", i + 1), running: false, memoryKiB: 65_536, vcpus: 1)
        }
    }
}

/// The machine states of the protocol.
let stateTableMachineStates: Set<String> = ["nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended"]

/// A state file as read from disk.
struct StateTableFile {
    let bytes: Data
    let json: JSONValue

    /// Reads and decodes the file; fails when it does not exist or is not JSON.
    static func read(_ path: String) throws -> StateTableFile {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            return StateTableFile(bytes: bytes, json: try JSONDecoder().decode(JSONValue.self, from: bytes))
        } catch {
            throw WorkerHarnessError(
                description: "the state file \(path) is not JSON (\(error)); \(bytes.count) bytes:\n\(String(decoding: bytes.prefix(2_000), as: UTF8.self))")
        }
    }

    var machines: [String: JSONValue] { json["machines"]?.objectValue ?? [:] }

    /// The row of the machine with this UUID.
    func entry(_ uuid: String) -> JSONValue? { machines[uuid.lowercased()] }

    /// `desired` of the machine with this UUID.
    func desired(_ uuid: String) -> String? { entry(uuid)?["desired"]?.stringValue }

    /// What is wrong with the file's shape (empty when it is a version 1 table keyed by UUID, with
    /// the documented fields of every row).
    var problems: [String] {
        var problems: [String] = []
        guard let object = json.objectValue else { return ["the table is not a JSON object"] }
        if object["version"] != 1 { problems.append("version is \(object["version"].map { "\($0)" } ?? "missing"), not 1") }
        if object["worker"]?.stringValue?.isEmpty ?? true { problems.append("worker is not a non-empty string") }
        if !WorkerExpect.isTimestamp(object["saved_at"]?.stringValue ?? "") { problems.append("saved_at is not a timestamp: \(String(describing: object["saved_at"]))") }
        guard let machines = object["machines"]?.objectValue else {
            problems.append("machines is not an object")
            return problems
        }
        for (key, entry) in machines {
            if key.count != 36 || UUID(uuidString: key) == nil || key != key.lowercased() {
                problems.append("machine key \(key.debugDescription) is not a lower-case UUID")
            }
            if entry["name"]?.stringValue?.isEmpty ?? true { problems.append("\(key): name is not a non-empty string") }
            if !stateTableMachineStates.contains(entry["desired"]?.stringValue ?? "") { problems.append("\(key): desired is not a machine state: \(entry)") }
            if let observed = entry["observed"], observed != .null, !stateTableMachineStates.contains(observed.stringValue ?? "") {
                problems.append("\(key): observed is not a machine state or null: \(entry)")
            }
            if !WorkerExpect.isTimestamp(entry["updated_at"]?.stringValue ?? "") { problems.append("\(key): updated_at is not a timestamp: \(entry)") }
        }
        return problems
    }
}

/// The permission bits of a file or directory.
func stateTablePermissions(_ path: String) -> Int? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return Int(info.st_mode & 0o7777)
}

extension WorkerClient {
    /// Asks for `report` over the control socket until it holds the summary of a finished restore,
    /// and returns the report's data (`restore`, `outcomes`, `machines`). Call ``sync(timeout:)``
    /// first: each `report` is awaited on the events socket too.
    func stateTableReport(timeout: Duration = .seconds(15)) throws -> JSONValue {
        let until = ContinuousClock.now + timeout
        while true {
            let report = try run("report")
            if report.ok == true, let data = report.data, let restore = data["restore"], restore != .null { return data }
            if ContinuousClock.now >= until {
                throw WorkerHarnessError(description: "no restore summary in report: \(report)\n\(diagnostics())")
            }
            // Receive whatever comes meanwhile (the restore's own messages) before asking again.
            try collect(for: .milliseconds(20))
        }
    }
}

extension WorkerProcess {
    /// The worker's log lines that are JSON objects.
    var logRecords: [JSONValue] {
        log.split(separator: "\n").compactMap { line in
            try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8))
        }
    }
}

/// A seeded random number generator (SplitMix64), so a run can be repeated from its printed seed.
struct StateTableRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
