import ECPProtocol
import FoundationEssentials
import Glibc
import Logging
import Synchronization
import ZeroMQ
import Threading

/// The worker's CURVE settings: its own key pair and the public keys of the clients it admits.
public struct CurveSettings: Sendable {
    /// The worker's secret key (Z85).
    public var secretKey: String
    /// The worker's public key (Z85), which clients need.
    public var publicKey: String
    /// Admitted client public keys (Z85) and the file each came from.
    public var clients: [String: String]

    public init(secretKey: String, publicKey: String, clients: [String: String]) {
        self.secretKey = secretKey
        self.publicKey = publicKey
        self.clients = clients
    }

    /// Reads the worker's key pair (a file only its owner may read) and every `*.pub` file of the
    /// clients directory (which others must not be able to write).
    public static func load(keyFile: String, clientsDirectory: String) throws -> CurveSettings {
        let own: CurveKeyFile
        do {
            own = try CurveKeyFile.read(path: keyFile, requirePrivate: true)
        } catch {
            throw WorkerStartupError(message: "--curve-key-file: \(error.message)")
        }
        guard let secret = own.secretKey else {
            throw WorkerStartupError(message: "--curve-key-file: \(keyFile) holds no secret-key (it is a public key file)")
        }
        var info = stat()
        guard stat(clientsDirectory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw WorkerStartupError(message: "--curve-clients: \(clientsDirectory) is not a directory")
        }
        if info.st_mode & 0o022 != 0 {
            throw WorkerStartupError(
                message: "--curve-clients: \(clientsDirectory) is writable by others than its owner; anyone could admit a key (chmod go-w)")
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: clientsDirectory).filter { $0.hasSuffix(".pub") }.sorted()
        } catch {
            throw WorkerStartupError(message: "--curve-clients: cannot list \(clientsDirectory): \(error.systemDescription)")
        }
        var clients: [String: String] = [:]
        for name in names {
            let path = clientsDirectory.hasSuffix("/") ? clientsDirectory + name : clientsDirectory + "/" + name
            var fileInfo = stat()
            if stat(path, &fileInfo) == 0, fileInfo.st_mode & 0o022 != 0 {
                throw WorkerStartupError(message: "--curve-clients: \(path) is writable by others than its owner (chmod go-w)")
            }
            do {
                clients[try CurveKeyFile.read(path: path).publicKey] = name
            } catch {
                throw WorkerStartupError(message: "--curve-clients: \(error.message)")
            }
        }
        return CurveSettings(secretKey: secret, publicKey: own.publicKey, clients: clients)
    }
}

/// A ZAP handler (ZeroMQ RFC 27) that admits only the configured client keys.
///
/// Without a handler, a CURVE server accepts any client key (encryption without
/// authentication). It is bound at `inproc://zeromq.zap.01` in the worker's context before any
/// socket binds, and serves on a thread of its own.
public final class CurveAuthenticator: Sendable {
    static let endpoint = "inproc://zeromq.zap.01"
    private let context: Context
    private let clients: [Data: (z85: String, file: String)]
    private let logger: Logger
    private let wake: WakeSignal
    private let stopping = Atomic(false)
    private let finished = OneShot<Void>()
    private let refusals: Mutex<RefusalLog>

    /// What has been said about refused clients. A client retrying with an unlisted key comes
    /// back every reconnect interval, and a crowd of them would otherwise fill the log: the first
    /// refusal of each (address, key) is logged at once, the rest only counted and summed up at
    /// most once per interval, and at stop.
    struct RefusalLog {
        /// The (address, key) pairs already logged, up to `capacity`; past it, new ones are only counted.
        var logged: Set<String> = []
        var capacity = 1024
        /// Refusals since the last summary that were not logged one by one.
        var unlogged = 0
        var total = 0
        var lastSummary: ContinuousClock.Instant
        var interval: Duration
    }

    public init(context: Context, settings: CurveSettings, logger: Logger, refusalSummaryInterval: Duration = .seconds(10)) throws {
        self.context = context
        self.refusals = Mutex(RefusalLog(lastSummary: .now, interval: refusalSummaryInterval))
        self.logger = logger
        self.wake = try WakeSignal()
        var clients: [Data: (String, String)] = [:]
        for (z85, file) in settings.clients {
            if let raw = Z85.decode(z85) { clients[raw] = (z85, file) }
        }
        self.clients = clients
    }

    /// Binds the handler's socket and starts serving; returns once it is bound.
    public func start() throws {
        let bound = OneShot<(any Error)?>()
        WorkerThread.start(name: "ecp-zap") { [self] in
            let socket: Socket
            do {
                socket = try context.makeSocket(.rep)
                try socket.setLinger(milliseconds: 0)
                try socket.bind(Self.endpoint)
            } catch {
                bound.set(error)
                finished.set(())
                return
            }
            bound.set(nil)
            serve(socket)
            socket.close()
            summariseRefusals(force: true)
            finished.set(())
        }
        if let error = bound.wait() { throw WorkerStartupError(message: "cannot start the CURVE authenticator: \(error)") }
    }

    public func stop() {
        stopping.store(true, ordering: .releasing)
        wake.raise()
        finished.wait()
    }

    private func serve(_ socket: Socket) {
        while true {
            if stopping.load(ordering: .acquiring) { return }
            // With refusals not yet summed up, wake in time to say so even if no client comes back.
            let timeout = refusals.withLock { log -> Int in
                guard log.unlogged > 0 else { return -1 }
                let left = log.interval - (ContinuousClock.now - log.lastSummary)
                return max(1, Int(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            }
            guard let events = try? poll([.fileDescriptor(wake.fileDescriptor), .socket(socket)], timeoutMs: timeout) else { return }
            summariseRefusals(force: false)
            if events[0].contains(.readable) { wake.drain() }
            guard events[1].contains(.readable) else { continue }
            guard let request = try? socket.receive(dontWait: true) else { continue }
            let reply = answer(request)
            _ = try? socket.send(reply)
        }
    }

    /// The reply to one ZAP request: [version, request id, status, text, user id, metadata].
    func answer(_ frames: [Data]) -> [Data] {
        func reply(_ requestID: Data, _ code: String, _ text: String, user: String = "") -> [Data] {
            [Data("1.0".utf8), requestID, Data(code.utf8), Data(text.utf8), Data(user.utf8), Data()]
        }
        guard frames.count >= 6, frames[0] == Data("1.0".utf8) else {
            return reply(frames.count > 1 ? frames[1] : Data(), "500", "malformed ZAP request")
        }
        let requestID = frames[1]
        let address = String(decoding: frames[3], as: UTF8.self)
        let mechanism = String(decoding: frames[5], as: UTF8.self)
        guard mechanism == "CURVE", frames.count >= 7, frames[6].count == 32 else {
            if isFirstRefusal(address: address, key: "mechanism " + mechanism) {
                logger.warning(
                    "client refused: not CURVE",
                    metadata: ["client.address": "\(address)", "client.mechanism": "\(mechanism)"])
            }
            return reply(requestID, "400", "CURVE required")
        }
        let key = frames[6]
        if let known = clients[key] {
            logger.debug("client admitted", metadata: ["client.address": "\(address)", "client.key": "\(known.z85)", "client.key_file": "\(known.file)"])
            return reply(requestID, "200", "OK", user: known.z85)
        }
        let z85 = Z85.encode(key) ?? "?"
        if isFirstRefusal(address: address, key: z85) {
            logger.warning(
                "client refused: unknown CURVE key",
                metadata: ["client.address": "\(address)", "client.key": "\(z85)"])
        }
        return reply(requestID, "400", "unknown key")
    }

    /// Counts a refusal; true when it is the first of its (address, key) and is to be logged.
    private func isFirstRefusal(address: String, key: String) -> Bool {
        let first = refusals.withLock { log in
            log.total += 1
            let pair = address + " " + key
            if log.logged.contains(pair) || log.logged.count >= log.capacity {
                log.unlogged += 1
                return false
            }
            log.logged.insert(pair)
            return true
        }
        summariseRefusals(force: false)
        return first
    }

    /// Logs the refusals not logged one by one, once the interval since the last summary is over
    /// (or at once with `force`).
    private func summariseRefusals(force: Bool) {
        let now = ContinuousClock.now
        let summary = refusals.withLock { log -> (count: Int, total: Int, clients: Int)? in
            guard log.unlogged > 0, force || now - log.lastSummary >= log.interval else { return nil }
            defer {
                log.unlogged = 0
                log.lastSummary = now
            }
            return (log.unlogged, log.total, log.logged.count)
        }
        guard let summary else { return }
        logger.warning(
            "clients refused",
            metadata: [
                "curve.refused_count": "\(summary.count)", "curve.refused_total": "\(summary.total)",
                "curve.refused_clients": "\(summary.clients)",
            ])
    }
}
