import ECPProtocol
import Foundation
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

// Support for the security tests: CURVE key material on disk, a worker launcher that needs no
// plain-text ping to know the worker is up (a CURVE worker answers no plain client), CURVE client
// sockets, the worker's log read line by line, and its resident memory.

/// Key material for a CURVE worker, in a fresh directory: the worker's key pair file (mode 0600),
/// a clients directory (mode 0755) holding the admitted client's `.pub`, and an unknown client's
/// key pair that is written nowhere the worker looks.
struct SecurityKeys {
    let directory: URL
    let worker: CurveKeyPair
    let admitted: CurveKeyPair
    let stranger: CurveKeyPair
    var workerKeyFile: String { directory.appendingPathComponent("worker.key").path }
    var clientsDirectory: String { directory.appendingPathComponent("clients").path }

    /// The worker's two CURVE options.
    var workerArguments: [String] { ["--curve-key-file", workerKeyFile, "--curve-clients", clientsDirectory] }

    /// Client settings for the admitted key, the stranger's key, both knowing the worker's public key.
    var admittedClient: SecurityCurveClient { SecurityCurveClient(serverPublicKey: worker.publicKey, pair: admitted) }
    var strangerClient: SecurityCurveClient { SecurityCurveClient(serverPublicKey: worker.publicKey, pair: stranger) }

    /// Generates three key pairs and writes the worker's files with safe modes.
    static func make() throws -> SecurityKeys {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ecp-sec-keys-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // Private from the start: the secret key is briefly written with the umask's mode.
        try SecurityFiles.chmod(directory.path, 0o700)
        let keys = SecurityKeys(
            directory: directory, worker: try CurveKeyPair.generate(), admitted: try CurveKeyPair.generate(),
            stranger: try CurveKeyPair.generate())
        try FileManager.default.createDirectory(atPath: keys.clientsDirectory, withIntermediateDirectories: true)
        try SecurityFiles.write(CurveKeyFile.secretText(keys.worker), to: keys.workerKeyFile, mode: 0o600)
        try SecurityFiles.write(
            CurveKeyFile.publicText(keys.admitted), to: keys.clientsDirectory + "/admitted.pub", mode: 0o644)
        // The stranger's public key sits next to the worker's files, not in the clients directory.
        try SecurityFiles.write(CurveKeyFile.publicText(keys.stranger), to: directory.appendingPathComponent("stranger.pub").path, mode: 0o644)
        try SecurityFiles.chmod(keys.clientsDirectory, 0o755)
        return keys
    }

    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }
}

/// What a CURVE client needs: the server's public key and its own key pair.
struct SecurityCurveClient: Sendable {
    var serverPublicKey: String
    var pair: CurveKeyPair
}

enum SecurityFiles {
    /// Writes `text` to `path` and sets its mode exactly (whatever the umask).
    static func write(_ text: String, to path: String, mode: mode_t) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        try chmod(path, mode)
    }

    static func chmod(_ path: String, _ mode: mode_t) throws {
        guard Glibc.chmod(path, mode) == 0 else {
            throw WorkerHarnessError(description: "chmod \(String(mode, radix: 8)) \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// The permission bits of a file.
    static func mode(_ path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return info.st_mode & 0o7777
    }
}

/// A real `ecp-worker` process launched for the security tests.
///
/// Unlike ``WorkerProcess`` it does not ping the worker to know it is up (a CURVE worker answers
/// no plain client): it waits for the `worker ready` log line, or for the process to exit (a
/// worker refusing its options). It can also launch the worker under a given umask.
final class SecurityWorker: @unchecked Sendable {
    // Safety of @unchecked Sendable: every stored property is set in `init` and never changed;
    // the exit status lives in a lock-guarded `ExitState`.

    let id: String
    let directory: URL
    let nodeFilePath: String
    let stateFilePath: String
    let logPath: String
    let commandsAddress: String
    let eventsAddress: String
    let controlAddress: String
    let arguments: [String]
    private let process: Process
    private let exit = ExitState()

    /// The process id (the worker's own: the launcher execs it in place).
    var pid: Int32 { process.processIdentifier }

    /// Launches a worker on free ports of 127.0.0.1 with a private test-driver node file.
    /// - Parameters:
    ///   - arguments: options after the harness's own (the last occurrence of an option wins).
    ///   - umask: the file mode creation mask the worker runs under, when given.
    ///   - logFormat: `json` or `text`.
    init(
        id: String = WorkerProcess.uniqueID(prefix: "s"), machines: [WorkerMachine] = WorkerMachine.standard,
        arguments extra: [String] = [], umask: mode_t? = nil, logFormat: String = "json", heartbeatMs: Int = 200
    ) throws {
        self.id = id
        let binary = try WorkerProcess.binaryURL()
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ecp-sec-\(id)-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        nodeFilePath = directory.appendingPathComponent("node.xml").path
        stateFilePath = directory.appendingPathComponent("state.json").path
        logPath = directory.appendingPathComponent("worker.log").path
        try WorkerMachine.nodeFile(machines).write(toFile: nodeFilePath, atomically: true, encoding: .utf8)
        let ports = try WorkerProcess.freePorts(3)
        commandsAddress = "tcp://127.0.0.1:\(ports[0])"
        eventsAddress = "tcp://127.0.0.1:\(ports[1])"
        controlAddress = "tcp://127.0.0.1:\(ports[2])"
        arguments = [
            "--worker-id", id,
            "--libvirt-uri", "test://\(nodeFilePath)",
            "--commands=@\(commandsAddress)",
            "--events=@\(eventsAddress)",
            "--control=@\(controlAddress)",
            "--state-file", stateFilePath,
            "--heartbeat-ms", String(heartbeatMs),
            "--log-format", logFormat,
            "--log-level", "debug",
        ] + extra

        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process = Process()
        // `sh` sets the umask and execs the worker in place; setpriv (when present) ties the
        // worker's life to the launching thread's, as the end-to-end harness does.
        let shell = ["/bin/sh", "-c", "\(umask.map { "umask \(String($0, radix: 8)); " } ?? "")exec \"$0\" \"$@\"", binary.path] + arguments
        if FileManager.default.isExecutableFile(atPath: WorkerProcess.setpriv) {
            process.executableURL = URL(fileURLWithPath: WorkerProcess.setpriv)
            process.arguments = ["--pdeathsig", "KILL", "--"] + shell
        } else {
            process.executableURL = URL(fileURLWithPath: shell[0])
            process.arguments = Array(shell.dropFirst())
        }
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ECP_") }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        process.terminationHandler = { [exit] p in exit.record(p.terminationStatus) }
        try process.run()
        try? log.close()
    }

    /// How the process ended; the termination handler holds this, never the worker itself.
    private final class ExitState: @unchecked Sendable {
        // Safety of @unchecked Sendable: `status` is guarded by `lock`.
        let semaphore = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var _status: Int32?

        func record(_ status: Int32) {
            lock.withLock { _status = status }
            semaphore.signal()
        }

        var status: Int32? { lock.withLock { _status } }
    }

    deinit {
        if isRunning {
            kill(process.processIdentifier, SIGKILL)
            _ = exit.semaphore.wait(timeout: .now() + 5)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    var isRunning: Bool { exit.status == nil }
    var exitStatus: Int32? { exit.status }

    /// Launches a worker and waits until it logs `worker ready`.
    static func start(
        machines: [WorkerMachine] = WorkerMachine.standard, arguments: [String] = [], umask: mode_t? = nil,
        logFormat: String = "json", heartbeatMs: Int = 200, timeout: Duration = .seconds(15)
    ) throws -> SecurityWorker {
        let worker = try SecurityWorker(machines: machines, arguments: arguments, umask: umask, logFormat: logFormat, heartbeatMs: heartbeatMs)
        guard worker.waitForLog(timeout: timeout, { $0.contains("worker ready") }) else {
            throw WorkerHarnessError(description: "the worker did not become ready (exit status \(worker.exitStatus.map(String.init) ?? "none"))\n\(worker.logTail())")
        }
        return worker
    }

    /// Waits until the log satisfies `predicate`, the process exits, or `timeout` passes.
    func waitForLog(timeout: Duration = .seconds(10), _ predicate: (String) -> Bool) -> Bool {
        let until = ContinuousClock.now + timeout
        while ContinuousClock.now < until {
            if predicate(log) { return true }
            if !isRunning { return predicate(log) }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return predicate(log)
    }

    /// Waits for the process to exit; its status, or nil when it still runs after `timeout`.
    func waitForExit(timeout: Duration = .seconds(15)) -> Int32? {
        if let status = exitStatus { return status }
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        guard exit.semaphore.wait(timeout: .now() + seconds) == .success else { return nil }
        exit.semaphore.signal()
        return exitStatus
    }

    /// SIGTERM, then waits; SIGKILL when it does not exit in time.
    @discardableResult
    func stop(timeout: Duration = .seconds(15)) -> Int32? {
        if isRunning { kill(process.processIdentifier, SIGTERM) }
        if let status = waitForExit(timeout: timeout) { return status }
        kill(process.processIdentifier, SIGKILL)
        return waitForExit(timeout: .seconds(5))
    }

    /// Everything the worker wrote to stderr and stdout.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The log's bytes as written.
    var logBytes: Data { FileManager.default.contents(atPath: logPath) ?? Data() }

    func logTail(lines: Int = 40) -> String {
        let all = log.split(separator: "\n", omittingEmptySubsequences: true)
        return "--- worker \(id) log (last \(min(lines, all.count)) of \(all.count) lines) ---\n"
            + all.suffix(lines).joined(separator: "\n") + "\n--- end of log ---"
    }

    /// Resident memory in KiB, from `/proc/<pid>/status`.
    var residentKiB: Int? { SecurityProc.residentKiB(pid: pid) }
}

enum SecurityProc {
    /// `VmRSS` of a process, in KiB.
    static func residentKiB(pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }
}

/// A socket of the test's side, optionally a CURVE client, owned by the thread that made it.
final class SecurityPeer {
    let context: Context
    let socket: Socket
    let type: SocketType
    /// Every message received: events (`[topic][json]`) or control replies (`[""][json]`).
    private(set) var received: [WorkerMessage] = []

    /// A socket of `type` connected to `address`; with `curve`, a CURVE client.
    init(_ type: SocketType, connect address: String, curve: SecurityCurveClient? = nil, subscribe: [String] = [""]) throws {
        self.type = type
        context = try Context()
        socket = try context.makeSocket(type)
        try socket.setLinger(milliseconds: 0)
        if let curve {
            try socket.setCurveClient(serverPublicKey: curve.serverPublicKey, publicKey: curve.pair.publicKey, secretKey: curve.pair.secretKey)
        }
        if type == .sub {
            try socket.setMaxMessageSize(-1)
            for prefix in subscribe { try socket.subscribe(prefix) }
        }
        try socket.connect(address)
    }

    deinit {
        socket.close()
    }

    /// Sends a command: on a DEALER as `[""][json]`, on a PUB as `[cmd.<worker>][json]`.
    func send(_ command: JSONValue, worker: String) throws {
        let body = WorkerClient.encode(command)
        if type == .pub {
            try socket.send([Data("cmd.\(worker)".utf8), body])
        } else {
            try socket.send([Data(), body])
        }
    }

    /// Receives for `duration`, keeping every message.
    func collect(for duration: Duration) throws {
        let until = ContinuousClock.now + duration
        while ContinuousClock.now < until {
            let ms = max(1, WorkerClient.milliseconds(until - .now))
            let events = try poll([.socket(socket)], timeoutMs: ms)
            if events[0].contains(.readable) { drain() }
        }
    }

    private func drain() {
        while let frames = try? socket.receive(dontWait: true) {
            let topic = frames.count == 2 && !frames[0].isEmpty ? String(decoding: frames[0], as: UTF8.self) : ""
            received.append(WorkerMessage(topic: topic, body: frames.last ?? Data(), envelope: Array(frames.dropLast())))
        }
    }

    /// Waits (at most `timeout`) for a message satisfying `predicate`, looking back as well.
    func first(timeout: Duration = .seconds(10), where predicate: (WorkerMessage) -> Bool) throws -> WorkerMessage? {
        if let found = received.first(where: predicate) { return found }
        let until = ContinuousClock.now + timeout
        while ContinuousClock.now < until {
            let events = try poll([.socket(socket)], timeoutMs: max(1, min(100, WorkerClient.milliseconds(until - .now))))
            if events[0].contains(.readable) {
                let before = received.count
                drain()
                if let found = received[before...].first(where: predicate) { return found }
            }
        }
        return nil
    }
}

/// The worker's log, read as JSON lines.
enum SecurityLog {
    /// Every line of a JSON log as an object; a line that is not one is reported as an issue.
    static func records(_ log: String, sourceLocation: SourceLocation = #_sourceLocation) -> [[String: Any]] {
        var out: [[String: Any]] = []
        for line in log.split(separator: "\n", omittingEmptySubsequences: false).dropLast(log.hasSuffix("\n") ? 1 : 0) {
            let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            guard let object else {
                Issue.record("a log line is not a JSON object: \(SecurityText.escaped(line))", sourceLocation: sourceLocation)
                continue
            }
            out.append(object)
        }
        return out
    }
}

/// Text for failure messages: everything but printable ASCII as `\u{…}`, so a hostile
/// character shows as what it is.
enum SecurityText {
    static func escaped(_ text: Substring) -> String { escaped(String(text)) }

    static func escaped(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.value >= 0x20 && scalar.value < 0x7F && scalar != "\\" {
                out.unicodeScalars.append(scalar)
            } else {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            }
        }
        return out
    }
}

/// Checks on bytes the worker published.
enum SecurityJSON {
    /// Why `body` is not strict, compact JSON text (valid UTF-8, no raw control byte, an object
    /// that parses); nil when it is.
    static func problem(_ body: Data) -> String? {
        guard String(validating: body, as: UTF8.self) != nil else { return "not valid UTF-8" }
        if let raw = body.first(where: { $0 < 0x20 || $0 == 0x7f }) { return "a raw control byte 0x\(String(raw, radix: 16))" }
        guard (try? JSONSerialization.jsonObject(with: body)) is [String: Any] else { return "not a JSON object" }
        return nil
    }
}
