import ArgumentParser
import ECPEngine
import ECPProtocol
import ECPWorker
import FoundationEssentials
import Glibc
import Logging
import StructuredLogging
import ServiceLifecycle
import UnixSignals

/// Reads an option's default from the environment: `ECP_<NAME>`.
private func env(_ name: String) -> String? {
    ProcessInfo.processInfo.environment["ECP_" + name]
}

private func envInt(_ name: String, _ fallback: Int) -> Int {
    env(name).flatMap { Int($0) } ?? fallback
}

@main
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ecp-worker",
        abstract: "The ECP machine worker: runs machine commands from ZeroMQ through libvirt and publishes what came of them.",
        discussion: """
            Commands arrive on the commands socket (SUB, topics cmd.<worker-id> and cmd.all) and the \
            control socket (ROUTER, with a direct reply). Acks, results, E2LibvirtError records, \
            machine events and heartbeats go out on the events socket (PUB).

            Endpoints follow the CZMQ convention: @ binds, > connects; `none` switches a socket off.
            Every option can also be set with an environment variable ECP_<OPTION>, e.g. \
            ECP_LIBVIRT_URI=qemu:///system; a command-line option wins over the environment.

            With no options the worker runs on libvirt's built-in test driver (test:///default), \
            which needs no hypervisor.
            """,
        version: WorkerVersion.current)

    @Option(help: "This worker's id, used in topics (env ECP_WORKER_ID; default: the host name).")
    var workerId: String = env("WORKER_ID") ?? ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "worker"

    @Option(help: "libvirt connection URI, e.g. qemu:///system (env ECP_LIBVIRT_URI).")
    var libvirtUri: String = env("LIBVIRT_URI") ?? "test:///default"

    @Option(help: "Commands socket (SUB) endpoint, or none (env ECP_COMMANDS).")
    var commands: String = env("COMMANDS") ?? ">tcp://127.0.0.1:5555"

    @Option(help: "Control socket (ROUTER) endpoint, or none (env ECP_CONTROL).")
    var control: String = env("CONTROL") ?? "@tcp://127.0.0.1:5557"

    @Option(help: "Events socket (PUB) endpoint, or none (env ECP_EVENTS).")
    var events: String = env("EVENTS") ?? "@tcp://127.0.0.1:5556"

    @Option(help: "Address (host:port) of the Prometheus endpoint, GET /metrics over HTTP, or none (env ECP_METRICS).")
    var metrics: String = env("METRICS") ?? "127.0.0.1:5558"

    @Option(help: "Path of the state table, the machines' desired and observed states (env ECP_STATE_FILE).")
    var stateFile: String = env("STATE_FILE") ?? "ecp-state.json"

    @Option(help: "How many libvirt calls may run at once, on different machines (env ECP_MAX_PARALLEL).")
    var maxParallel: Int = envInt("MAX_PARALLEL", 8)

    @Option(help: "Milliseconds between heartbeats (env ECP_HEARTBEAT_MS).")
    var heartbeatMs: Int = envInt("HEARTBEAT_MS", 5000)

    @Option(help: "Milliseconds between samples of the machines' usage, published as stats messages on stats.<worker-id>; 0 switches them off (env ECP_STATS_INTERVAL_MS).")
    var statsIntervalMs: Int = envInt("STATS_INTERVAL_MS", EngineConfiguration.defaultStatsIntervalMs)

    @Option(help: "Seconds that commands in flight may take to finish at shutdown (env ECP_SHUTDOWN_GRACE_S).")
    var shutdownGraceS: Double = env("SHUTDOWN_GRACE_S").flatMap { Double($0) } ?? 10

    @Option(help: "Milliseconds between repeats of the ACPI power-off request while a shutdown waits (wait_ms): a guest ignores it until its OS listens; 0 sends it once (env ECP_SHUTDOWN_RETRY_MS).")
    var shutdownRetryMs: Int = envInt("SHUTDOWN_RETRY_MS", EngineConfiguration.defaultShutdownRetryMs)

    @Option(help: "Largest frame in bytes; a peer sending more is dropped by ZeroMQ (env ECP_MAX_FRAME_BYTES; default 4 MiB).")
    var maxFrameBytes: Int = envInt("MAX_FRAME_BYTES", 0)

    @Option(help: "Largest command document in bytes; larger ones are answered too_large (env ECP_MAX_COMMAND_BYTES; default 1 MiB, at most the frame limit).")
    var maxCommandBytes: Int = envInt("MAX_COMMAND_BYTES", 0)

    @Option(help: "Largest domain XML in a define command, in bytes (env ECP_MAX_XML_BYTES; default 512 KiB, at most the command limit).")
    var maxXmlBytes: Int = envInt("MAX_XML_BYTES", 0)

    @Option(help: "Deepest nesting of arrays and objects in a command (env ECP_MAX_DEPTH).")
    var maxDepth: Int = envInt("MAX_DEPTH", 32)

    @Option(help: "Commands accepted and not yet answered, past which new ones are answered busy (env ECP_MAX_QUEUE).")
    var maxQueue: Int = envInt("MAX_QUEUE", 10_000)

    @Option(help: "Messages queued per subscriber on the events socket; a subscriber that falls further behind loses messages (env ECP_EVENTS_HWM).")
    var eventsHwm: Int = envInt("EVENTS_HWM", WorkerConfiguration.defaultEventsHighWaterMark)

    @Option(help: "Published messages kept for replay, newest first; 0 keeps none (env ECP_REPLAY_MESSAGES).")
    var replayMessages: Int = envInt("REPLAY_MESSAGES", WorkerConfiguration.defaultReplayMessages)

    @Option(help: "The most the messages kept for replay may weigh, in bytes (env ECP_REPLAY_BYTES).")
    var replayBytes: Int = envInt("REPLAY_BYTES", WorkerConfiguration.defaultReplayBytes)

    @Option(help: "Command ids remembered for de-duplication, at least (env ECP_DEDUPE_IDS).")
    var dedupeIds: Int = envInt("DEDUPE_IDS", 10_000)

    @Option(help: "Seconds a command id is remembered for de-duplication, within a bounded memory (env ECP_DEDUPE_WINDOW_S).")
    var dedupeWindowS: Double = env("DEDUPE_WINDOW_S").flatMap { Double($0) } ?? 600

    @Option(help: "Bytes the results remembered for de-duplication may take in all; the oldest go first (env ECP_DEDUPE_BYTES; default 64 MiB).")
    var dedupeBytes: Int = envInt("DEDUPE_BYTES", EngineConfiguration.defaultDedupeBytes)

    @Option(help: "How many machines a restore brings back at once (env ECP_RESTORE_PARALLEL).")
    var restoreParallel: Int = envInt("RESTORE_PARALLEL", 4)

    @Option(help: "Milliseconds between two machine starts during a restore, to spare the host a boot storm (env ECP_RESTORE_STAGGER_MS).")
    var restoreStaggerMs: Int = envInt("RESTORE_STAGGER_MS", 0)

    @Option(help: "Milliseconds one machine's restore may take before it counts as failed (env ECP_RESTORE_TIMEOUT_MS).")
    var restoreTimeoutMs: Int = envInt("RESTORE_TIMEOUT_MS", 120_000)

    @Option(help: "The worker's CURVE key pair file (made by `ecpctl keygen`; mode 0600). With --curve-clients, switches CURVE on for every socket (env ECP_CURVE_KEY_FILE).")
    var curveKeyFile: String = env("CURVE_KEY_FILE") ?? ""

    @Option(help: "Directory of the client public keys (*.pub) the worker admits (env ECP_CURVE_CLIENTS).")
    var curveClients: String = env("CURVE_CLIENTS") ?? ""

    @Option(help: "Tries after a restore's start or resume failed with a retryable error, for machines whose policy sets no `retries` (0 to 10; env ECP_RESTORE_RETRIES).")
    var restoreRetries: Int = envInt("RESTORE_RETRIES", RestoreSettings.defaultRetries)

    @Option(help: "Milliseconds before a restore's first retry; each next one waits twice as long (env ECP_RESTORE_RETRY_MS).")
    var restoreRetryMs: Int = envInt("RESTORE_RETRY_MS", RestoreSettings.defaultRetryMs)

    @Flag(help: "Do not restore the machines' states at startup (a `restore` command still does).")
    var noRestore: Bool = env("NO_RESTORE") == "1"

    @Option(help: "Log format: json (one object per line) or text (env ECP_LOG_FORMAT).")
    var logFormat: LogFormat = env("LOG_FORMAT").flatMap(LogFormat.init(rawValue:)) ?? .json

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (env ECP_LOG_LEVEL).")
    var logLevel: Logger.Level = env("LOG_LEVEL").flatMap(Logger.Level.init(rawValue:)) ?? .info

    enum LogFormat: String, ExpressibleByArgument, CaseIterable {
        case json, text
    }

    func validate() throws {
        if let problem = makeConfiguration().validate() { throw ValidationError(problem) }
    }

    func makeConfiguration() -> WorkerConfiguration {
        var c = WorkerConfiguration(workerID: workerId)
        c.libvirtURI = libvirtUri
        c.commands = commands == "none" ? nil : commands
        c.control = control == "none" ? nil : control
        c.events = events == "none" ? nil : events
        c.metrics = metrics == "none" ? nil : metrics
        c.stateFile = stateFile
        c.maxParallel = maxParallel
        c.heartbeatMs = heartbeatMs
        c.statsIntervalMs = statsIntervalMs
        c.shutdownGraceSeconds = shutdownGraceS
        c.shutdownRetryMs = shutdownRetryMs
        // A limit not given follows the ones given: each at most the one that contains it.
        let frame = maxFrameBytes > 0 ? maxFrameBytes : max(4 << 20, maxCommandBytes, maxXmlBytes)
        let command = maxCommandBytes > 0 ? maxCommandBytes : min(1 << 20, frame)
        let xml = maxXmlBytes > 0 ? maxXmlBytes : min(512 << 10, command)
        c.maxFrameBytes = Int64(frame)
        c.restore = RestoreSettings(
            parallel: restoreParallel, staggerMs: restoreStaggerMs, machineTimeoutMs: restoreTimeoutMs, retries: restoreRetries,
            retryMs: restoreRetryMs)
        c.restoreAtStartup = !noRestore
        c.curveKeyFile = curveKeyFile.isEmpty ? nil : curveKeyFile
        c.curveClientsDirectory = curveClients.isEmpty ? nil : curveClients
        c.limits.maxDocumentBytes = command
        c.limits.maxXMLBytes = xml
        c.limits.maxDepth = maxDepth
        c.maxQueue = maxQueue
        c.eventsHighWaterMark = eventsHwm
        c.replayMessages = replayMessages
        c.replayBytes = replayBytes
        c.dedupeIDs = dedupeIds
        c.dedupeWindowSeconds = dedupeWindowS
        c.dedupeBytes = dedupeBytes
        return c
    }

    func run() async throws {
        Self.ignoreSignals()
        Self.unblockStopSignals()
        let format = logFormat
        let level = logLevel
        LoggingSystem.bootstrap { label in
            switch format {
            case .json: return JSONLogHandler(label: label, level: level)
            case .text: return TextLogHandler(label: label, level: level)
            }
        }
        let logger = Logger(label: "ecp-worker")
        // A daemon convention asks for files to be reopened on SIGHUP; the worker writes its log
        // to standard error and holds no file that rotates, so it only says it had the signal.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let hangupTask = Task {
            for await signal in hangups {
                logger.notice("signal received; nothing to reopen", metadata: ["signal.name": "\(signal)"])
            }
        }
        defer { hangupTask.cancel() }
        let worker = Worker(configuration: makeConfiguration(), logger: logger)
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: worker)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        do {
            try await group.run()
        } catch {
            logger.critical("worker failed", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }
}

extension WorkerCommand {
    /// A parent may start the worker with SIGTERM and SIGINT blocked (Foundation's `Process`
    /// does); the worker stops gracefully on them, so it takes them whatever its parent did.
    static func unblockStopSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// Signals whose default action would end the worker for no reason of its own: a log reader
    /// that went away (SIGPIPE; a write then fails with EPIPE and the line is dropped), and
    /// signals the worker has no use for. Ignored before the worker starts any thread, and
    /// inherited as ignored by nothing it runs (it runs no other program).
    static func ignoreSignals() {
        for number in [SIGPIPE, SIGUSR1, SIGUSR2, SIGALRM] {
            signal(number, SIG_IGN)
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
