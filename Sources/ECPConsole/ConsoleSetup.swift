import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import ZeroMQ

/// What `ecp-console` was asked for, checked: everything needed to start.
public struct ConsoleSettings: Sendable {
    public var workers: [WorkerSpec]
    public var listen: ListenAddress
    public var tokens: TokenFile?
    public var allowHosts: [String]
    public var shutdownWaitMs: Int

    /// Checks the options as given on the command line.
    ///
    /// - Parameters:
    ///   - workers: `--worker` values, `ID=CONTROL,EVENTS`.
    ///   - serverKeys: `--curve-server-key` values, `KEY` (every worker) or `ID=KEY`.
    ///   - clientKey: `--curve-key`, the console's secret key file.
    ///   - authFile: `--auth`.
    public init(
        workers: [String], serverKeys: [String], clientKey: String?, listen: String, authFile: String?, allowHosts: [String],
        shutdownWaitMs: Int
    ) throws(ConsoleStartupError) {
        guard !workers.isEmpty else {
            throw ConsoleStartupError("name at least one worker: --worker ID=CONTROL,EVENTS (e.g. host1=tcp://127.0.0.1:5557,tcp://127.0.0.1:5556)")
        }
        var specs: [WorkerSpec] = []
        for text in workers {
            let spec = try WorkerSpec(parsing: text)
            guard !specs.contains(where: { $0.id == spec.id }) else {
                throw ConsoleStartupError("--worker: the id \(WorkerSpec.quote(spec.id)) is given twice")
            }
            specs.append(spec)
        }
        // CURVE: a shared key, or one per worker id.
        var shared: String?
        var perWorker: [String: String] = [:]
        for text in serverKeys {
            if let equals = text.firstIndex(of: "="), WorkerSpec.isValidID(String(text[..<equals])),
                specs.contains(where: { $0.id == String(text[..<equals]) })
            {
                perWorker[String(text[..<equals])] = try CurveClientKeys.serverKey(String(text[text.index(after: equals)...]))
            } else if text.contains("=") && !CurveKeyFile.isZ85Key(text) && !text.hasPrefix("/") && !text.hasPrefix(".") {
                throw ConsoleStartupError(
                    "--curve-server-key \(WorkerSpec.quote(text)): no --worker has the id \(WorkerSpec.quote(String(text[..<text.firstIndex(of: "=")!])))")
            } else {
                guard shared == nil else { throw ConsoleStartupError("--curve-server-key: give one shared key, or ID=KEY per worker") }
                shared = try CurveClientKeys.serverKey(text)
            }
        }
        if clientKey != nil && shared == nil && perWorker.isEmpty {
            throw ConsoleStartupError("--curve-key needs --curve-server-key, the workers' public key")
        }
        if shared != nil || !perWorker.isEmpty {
            let pair = try CurveClientKeys.clientPair(clientKey)
            for index in specs.indices {
                if let server = perWorker[specs[index].id] ?? shared {
                    specs[index].curve = CurveClientKeys(serverPublicKey: server, publicKey: pair.publicKey, secretKey: pair.secretKey)
                }
            }
        }
        self.workers = specs
        self.listen = try ListenAddress(parsing: listen)
        if let authFile {
            tokens = try TokenFile.read(path: authFile)
        } else {
            tokens = nil
            guard self.listen.isLoopback else {
                throw ConsoleStartupError(
                    "--listen \(self.listen): anyone who reaches this address could stop every machine; listening beyond this machine (127.0.0.1, ::1) needs --auth FILE, a file of NAME:TOKEN lines (mode 0600)")
            }
        }
        guard (0...86_400_000).contains(shutdownWaitMs) else {
            throw ConsoleStartupError("--shutdown-wait-ms must be between 0 and 86400000, got \(shutdownWaitMs)")
        }
        for name in allowHosts where name.isEmpty || name.contains(where: { $0 == "/" || $0 == " " || $0 == "@" }) {
            throw ConsoleStartupError("--allow-host \(WorkerSpec.quote(name)): expected a host name")
        }
        self.allowHosts = allowHosts
        self.shutdownWaitMs = shutdownWaitMs
    }
}

/// The running console: its state, its worker links and its web server.
public struct Console: Sendable {
    public let settings: ConsoleSettings
    public let state: ConsoleState
    public let web: ConsoleWeb
    let logger: Logger

    public init(settings: ConsoleSettings, logger: Logger, timing: LinkTiming = LinkTiming()) throws {
        self.settings = settings
        self.logger = logger
        state = ConsoleState(workers: settings.workers)
        let context = try Context()
        var links: [WorkerLink] = []
        for spec in settings.workers {
            links.append(try WorkerLink(spec: spec, state: state, context: context, logger: logger, timing: timing))
        }
        // Without --auth the console is on loopback: only the names of this machine reach it.
        let allowed: Set<String>?
        if settings.tokens == nil || !settings.allowHosts.isEmpty || settings.listen.isLoopback {
            allowed = ConsoleWeb.allowedHosts(listen: settings.listen, extra: settings.allowHosts)
        } else {
            allowed = nil
        }
        web = ConsoleWeb(
            state: state, links: links, tokens: settings.tokens, allowedHosts: allowed, shutdownWaitMs: settings.shutdownWaitMs,
            logger: logger)
    }

    /// Serves until SIGINT or SIGTERM. `onReady` gets the bound port.
    public func run(onReady: (@Sendable (Int) -> Void)? = nil) async throws {
        let logger = self.logger
        let listen = settings.listen
        let authenticated = settings.tokens != nil
        var quiet = logger
        quiet.logLevel = .warning
        let app = Application(
            router: web.router(),
            server: .http1(configuration: .init(idleTimeout: .seconds(120))),
            configuration: .init(address: .hostname(listen.host, port: listen.port), serverName: nil, backlog: 64),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? listen.port
                let shown = ListenAddress(host: listen.host, port: port)
                logger.notice(
                    "console listening",
                    metadata: ["http.url": "http://\(shown)/", "http.auth": "\(authenticated ? "tokens" : "none (loopback only)")"])
                onReady?(port)
            },
            logger: quiet)
        let group = ServiceGroup(
            configuration: .init(
                services: [app, ConsoleService(web: web)], gracefulShutdownSignals: [.sigterm, .sigint], logger: quiet))
        try await group.run()
    }
}
