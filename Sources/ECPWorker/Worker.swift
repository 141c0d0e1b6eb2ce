import ECPEngine
import ECPTransport
import ECPProtocol
import FoundationEssentials
import CoreMetrics
import Logging
import ServiceLifecycle
import ZeroMQ
import Threading

/// The worker's version, reported in `worker.started` and `--version`.
public enum WorkerVersion {
    public static let current = "0.1.0"
}

/// Everything the worker is configured with.
public struct WorkerConfiguration: Sendable {
    public var workerID: String
    public var libvirtURI: String = "test:///default"
    /// Endpoint strings (`@` binds, `>` connects); nil switches the socket off.
    public var commands: String? = ">tcp://127.0.0.1:5555"
    public var control: String? = "@tcp://127.0.0.1:5557"
    public var events: String? = "@tcp://127.0.0.1:5556"
    /// Where `GET /metrics` is served (host:port); nil switches it off.
    public var metrics: String? = "127.0.0.1:5558"
    public var stateFile: String = "ecp-state.json"
    public var maxParallel: Int = 8
    public var heartbeatMs: Int = 5000
    /// Milliseconds between `stats` samples published on `stats.<worker-id>`; 0 switches them off.
    public var statsIntervalMs: Int = EngineConfiguration.defaultStatsIntervalMs
    /// How long in-flight commands may take to finish at shutdown.
    public var shutdownGraceSeconds: Double = 10
    public var limits: CommandLimits = .default
    public var maxFrameBytes: Int64 = 4 << 20
    public var maxQueue: Int = 10_000
    /// Messages queued per subscriber on the events socket (its send high-water mark).
    public var eventsHighWaterMark = WorkerConfiguration.defaultEventsHighWaterMark
    public static let defaultEventsHighWaterMark = Int(SocketTransport.Options.defaultEventsHighWaterMark)
    /// What `replay` can give back: the newest published messages within both bounds.
    public var replayMessages = WorkerConfiguration.defaultReplayMessages
    public var replayBytes = WorkerConfiguration.defaultReplayBytes
    public static let defaultReplayMessages = SocketTransport.Options.defaultReplayMessages
    public static let defaultReplayBytes = SocketTransport.Options.defaultReplayBytes
    public var dedupeIDs: Int = 10_000
    public var dedupeWindowSeconds: Double = 600
    /// The most the remembered results may weigh, in bytes.
    public var dedupeBytes: Int = EngineConfiguration.defaultDedupeBytes
    public var restore = RestoreSettings()
    /// How often a waiting `shutdown` repeats its ACPI request (0: once only).
    public var shutdownRetryMs = EngineConfiguration.defaultShutdownRetryMs
    /// The worker's CURVE key pair file, and the directory of admitted client keys (`*.pub`):
    /// both set switch CURVE on for every socket.
    public var curveKeyFile: String?
    public var curveClientsDirectory: String?
    /// Whether to restore the machines' states at startup.
    public var restoreAtStartup = true

    public init(workerID: String) {
        self.workerID = workerID
    }

    /// Why the configuration cannot work, or nil.
    public func validate() -> String? {
        if let problem = CommandDecoder.idProblem(workerID) {
            return "--worker-id: " + problem.replacing("id must", with: "the worker id must")
        }
        if workerID == "all" { return "--worker-id: 'all' is reserved (cmd.all addresses every worker)" }
        if libvirtURI.isEmpty { return "--libvirt-uri: must not be empty" }
        if maxParallel < 1 || maxParallel > 1024 { return "--max-parallel: must be between 1 and 1024, got \(maxParallel)" }
        if heartbeatMs < 100 || heartbeatMs > 3_600_000 { return "--heartbeat-ms: must be between 100 and 3600000, got \(heartbeatMs)" }
        if statsIntervalMs != 0 && (statsIntervalMs < 1000 || statsIntervalMs > 3_600_000) {
            return "--stats-interval-ms: must be 0 (off) or between 1000 and 3600000, got \(statsIntervalMs)"
        }
        for (name, value) in [("--commands", commands), ("--control", control), ("--events", events)] {
            guard let value else { continue }
            do {
                _ = try Endpoint(parsing: value, defaultDirection: .bind)
            } catch {
                return "\(name): \(CommandDecoder.quote(value)) is not an endpoint (use @tcp://host:port to bind, >tcp://host:port to connect, or none)"
            }
        }
        if let metrics, parseMetricsAddress(metrics) == nil {
            return "--metrics: \(CommandDecoder.quote(metrics)) is not an address (use host:port, e.g. 127.0.0.1:5558, or none)"
        }
        if restore.parallel < 1 || restore.parallel > 256 { return "--restore-parallel: must be between 1 and 256, got \(restore.parallel)" }
        if restore.staggerMs < 0 || restore.staggerMs > 600_000 { return "--restore-stagger-ms: must be between 0 and 600000, got \(restore.staggerMs)" }
        if shutdownRetryMs != 0 && (shutdownRetryMs < 100 || shutdownRetryMs > 600_000) {
            return "--shutdown-retry-ms: must be 0 (send once) or between 100 and 600000, got \(shutdownRetryMs)"
        }
        if !RestorePolicy.retriesRange.contains(restore.retries) { return "--restore-retries: must be between 0 and 10, got \(restore.retries)" }
        if restore.retryMs < 1 || restore.retryMs > 600_000 { return "--restore-retry-ms: must be between 1 and 600000, got \(restore.retryMs)" }
        if restore.machineTimeoutMs < 1 { return "--restore-timeout-ms: must be positive, got \(restore.machineTimeoutMs)" }
        if stateFile.isEmpty { return "--state-file: must not be empty" }
        if limits.maxDocumentBytes < 256 || Int64(limits.maxDocumentBytes) > maxFrameBytes {
            return "--max-command-bytes: must be between 256 and --max-frame-bytes (\(maxFrameBytes)), got \(limits.maxDocumentBytes)"
        }
        if limits.maxXMLBytes < 64 || limits.maxXMLBytes > limits.maxDocumentBytes {
            return "--max-xml-bytes: must be between 64 and --max-command-bytes (\(limits.maxDocumentBytes)), got \(limits.maxXMLBytes)"
        }
        if limits.maxDepth < 2 || limits.maxDepth > 512 { return "--max-depth: must be between 2 and 512, got \(limits.maxDepth)" }
        if maxQueue < 1 { return "--max-queue: must be positive, got \(maxQueue)" }
        if eventsHighWaterMark < 1 || eventsHighWaterMark > 1_000_000 {
            return "--events-hwm: must be between 1 and 1000000, got \(eventsHighWaterMark)"
        }
        if replayMessages < 0 || replayMessages > 10_000_000 {
            return "--replay-messages: must be between 0 and 10000000, got \(replayMessages)"
        }
        if replayBytes < 0 || replayBytes > 64 << 30 {
            return "--replay-bytes: must be between 0 and 64 GiB, got \(replayBytes)"
        }
        if dedupeIDs < 1 || dedupeIDs > 10_000_000 { return "--dedupe-ids: must be between 1 and 10000000, got \(dedupeIDs)" }
        if dedupeWindowSeconds < 0 { return "--dedupe-window-s: must not be negative" }
        // Below 64 KiB a single large result would not be remembered; above 64 GiB it is no bound.
        if dedupeBytes < 64 << 10 || dedupeBytes > 64 << 30 {
            return "--dedupe-bytes: must be between 65536 (64 KiB) and 68719476736 (64 GiB), got \(dedupeBytes)"
        }
        if (curveKeyFile == nil) != (curveClientsDirectory == nil) {
            return "--curve-key-file and --curve-clients go together: the worker's key pair, and the keys it admits"
        }
        if commands == nil && control == nil {
            return "--commands and --control are both off: the worker could take no commands"
        }
        return nil
    }
}

/// The machine worker as a service: sockets, engine, heartbeats, and a graceful stop.
public final class Worker: Service, Sendable {
    public let configuration: WorkerConfiguration
    private let logger: Logger

    public init(configuration: WorkerConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Runs until graceful shutdown (SIGTERM or SIGINT through the service group).
    public func run() async throws {
        let c = configuration
        if let problem = c.validate() { throw WorkerStartupError(message: problem) }
        let run = UUID().uuidString.lowercased()
        var logger = self.logger
        logger[metadataKey: "worker.id"] = "\(c.workerID)"
        Self.raiseOpenFileLimit(logger: logger)

        let context = try Context()
        let endpoints = SocketTransport.Endpoints(
            commands: try c.commands.map { try Endpoint(parsing: $0, defaultDirection: .connect) },
            control: try c.control.map { try Endpoint(parsing: $0, defaultDirection: .bind) },
            events: try c.events.map { try Endpoint(parsing: $0, defaultDirection: .bind) })
        var options = SocketTransport.Options()
        options.maxFrameBytes = c.maxFrameBytes
        options.eventsHighWaterMark = Int32(c.eventsHighWaterMark)
        options.replayMessages = c.replayMessages
        options.replayBytes = c.replayBytes
        var authenticator: CurveAuthenticator?
        if let keyFile = c.curveKeyFile, let clients = c.curveClientsDirectory {
            let curve = try CurveSettings.load(keyFile: keyFile, clientsDirectory: clients)
            let zap = try CurveAuthenticator(context: context, settings: curve, logger: logger)
            try zap.start()
            authenticator = zap
            options.curveSecretKey = curve.secretKey
            logger.notice(
                "CURVE on: only admitted client keys may connect",
                metadata: ["curve.public_key": "\(curve.publicKey)", "curve.clients": "\(curve.clients.count)", "curve.clients_dir": "\(clients)"])
            if curve.clients.isEmpty {
                logger.warning("no client keys in the CURVE clients directory: nobody can connect", metadata: ["curve.clients_dir": "\(clients)"])
            }
        }
        let metricsEndpoint = c.metrics == nil ? nil : MetricsEndpoint()
        let metricsFactory = metricsEndpoint?.factory ?? NOOPMetricsHandler.instance
        let transport = try SocketTransport(
            context: context, endpoints: endpoints, options: options, workerID: c.workerID, run: run, logger: logger,
            metrics: metricsFactory)
        let engine = Engine(
            configuration: EngineConfiguration(
                workerID: c.workerID, libvirtURI: c.libvirtURI, stateFile: c.stateFile, maxParallel: c.maxParallel,
                limits: c.limits, dedupeCapacity: c.dedupeIDs, dedupeWindowSeconds: c.dedupeWindowSeconds,
                restore: c.restore, maxQueue: c.maxQueue, shutdownRetryMs: c.shutdownRetryMs,
                dedupeBytes: c.dedupeBytes,
                stateRetryMs: min(EngineConfiguration.defaultStateRetryMs, c.heartbeatMs),
                statsIntervalMs: c.statsIntervalMs),
            sink: transport, logger: logger, metrics: metricsFactory)
        try Self.prepareStateDirectory(for: c.stateFile)
        let table: StateTableLoad
        do {
            table = try engine.openStateTable()
        } catch {
            throw WorkerStartupError(message: "--state-file: \(error)")
        }
        engine.start()
        do {
            try transport.start(
                onCommand: { payload, origin in engine.submit(payload, from: origin) },
                onBadFrames: { detail, origin in engine.rejectFrames(detail: detail, origin: origin) })
        } catch {
            await engine.drain(graceSeconds: 0)
            throw WorkerStartupError(message: "cannot open the worker's sockets: \(error)")
        }
        var endpointNames = transport.boundEndpoints
        for name in ["commands", "control", "events"] where endpointNames[name] == nil {
            endpointNames[name] = "none"
        }
        engine.announceStart(version: WorkerVersion.current, endpoints: endpointNames)
        logger.notice(
            "worker ready",
            metadata: [
                "worker.run": "\(run)", "worker.version": "\(WorkerVersion.current)",
                "libvirt.uri": "\(c.libvirtURI)",
                "endpoint.commands": "\(endpointNames["commands"]!)",
                "endpoint.control": "\(endpointNames["control"]!)",
                "endpoint.events": "\(endpointNames["events"]!)",
            ])

        engine.startStatsSampling()
        var metricsTask: Task<Void, Never>?
        if let metricsEndpoint, let address = c.metrics.flatMap(parseMetricsAddress) {
            metricsEndpoint.attach(
                readings: MetricsReadings(
                    inFlight: { engine.inFlight }, libvirtConnected: { engine.libvirtConnected },
                    uptimeSeconds: { engine.uptimeSeconds }),
                stats: engine)
            engine.observeSamples { metricsEndpoint.prepare($0) }
            // It inherits this service's graceful-shutdown context, so it closes when the worker stops.
            metricsTask = Task { await metricsEndpoint.serve(host: address.host, port: address.port, logger: logger) }
        }

        if c.restoreAtStartup {
            engine.restore(trigger: "startup", table: table) { _ in }
        }

        let interval = c.heartbeatMs
        let heartbeats = Task {
            // Each beat is due a whole number of intervals after the start, however late the last one ran.
            let clock = ContinuousClock()
            var due = clock.now
            while true {
                due += .milliseconds(interval)
                do { try await Task.sleep(until: due, clock: clock) } catch { return }
                engine.heartbeat(intervalMs: interval)
            }
        }

        try? await gracefulShutdown()

        logger.notice("worker stopping", metadata: ["in_flight": "\(engine.inFlight)"])
        engine.stopIntake()
        transport.closeIntake()
        heartbeats.cancel()
        if let metricsTask {
            // The endpoint closes on the same graceful shutdown; cancelling is the fallback for a
            // close that hangs, since it cuts requests short.
            let fallback = Task {
                try? await Task.sleep(for: .seconds(5))
                metricsTask.cancel()
            }
            await metricsTask.value
            fallback.cancel()
        }
        await engine.drain(graceSeconds: c.shutdownGraceSeconds)
        engine.announceStop(reason: "signal")
        // Closing the sockets (with their linger) delivers what is queued, `worker.stopping` included;
        // the context terminates once the last socket is gone.
        let zap = authenticator
        await WorkerThread.run(name: "ecp-close") {
            transport.stop()
            zap?.stop()
        }
        // Terminating the context is what waits for the events socket's queued messages
        // (`worker.stopping` among them) to go out, within the sockets' linger.
        if await WorkerThread.run(name: "ecp-zmq-term", timeout: .seconds(5), { context.terminate() }) == nil {
            logger.warning("events still unsent at exit were dropped")
        }
        logger.notice("worker stopped")
    }
}

extension Worker {
    /// Creates the state file's directory (mode 0700) when it does not exist yet.
    static func prepareStateDirectory(for path: String) throws {
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDirectory = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory) {
            if !isDirectory { throw WorkerStartupError(message: "--state-file: \(dir) is not a directory") }
            return
        }
        do {
            try FileManager.default.createDirectory(
                atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw WorkerStartupError(message: "--state-file: cannot create directory \(dir): \(error.systemDescription)")
        }
    }
}
