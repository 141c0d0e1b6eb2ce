import ECPProtocol
import Foundation
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

// Support for the security tests: CURVE key material on disk, launch options for a worker that
// needs no plain-text ping to know it is up (a CURVE worker answers no plain client), CURVE client
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

extension WorkerLaunchOptions {
    /// A worker for the security tests. It is ready when it logs `worker ready`, not when it
    /// answers a plain ping: a CURVE worker answers no plain client.
    static func security(arguments: [String] = [], umask: mode_t? = nil) -> WorkerLaunchOptions {
        var options = WorkerLaunchOptions()
        options.id = WorkerProcess.uniqueID(prefix: "s")
        options.extraArguments = arguments
        options.umask = umask
        options.readiness = .logLine("worker ready")
        return options
    }
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
