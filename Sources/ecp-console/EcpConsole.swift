import ArgumentParser
import ECPConsole
import Logging
import StructuredLogging

#if canImport(Glibc)
import Glibc
#endif

@main
struct EcpConsole: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ecp-console",
        abstract: "A web console for ECP workers: every host and its machines, live, with actions and errors.",
        discussion: """
            Follows each worker given with --worker: it subscribes to every topic of the \
            worker's events socket and sends commands on its control socket, catching up through \
            `stats`, `report` and `replay` whenever it (re)connects, a worker restarts (a new \
            run) or a message is missed (a seq gap). A host is shown down while no heartbeat came \
            for three of its intervals.

            The page (GET /) shows every host with its machines (state, CPU %, memory), the last \
            restore machine by machine, and the errors the workers published; it is updated live \
            (server-sent events, GET /api/events). Its buttons start, shut down (waiting \
            --shutdown-wait-ms), destroy, reboot, suspend and resume machines, and restore a \
            host: POST /api/hosts/HOST/machines/MACHINE/ACTION and POST \
            /api/hosts/HOST/restore, with the header X-CSRF-Token from GET /api/state. A failed \
            action opens a dialog with libvirt's summary, the failing layer, the category, \
            whether retrying can help, and every field of the error.

            Security: by default it listens on 127.0.0.1 only, where anyone on this machine can \
            use it; it answers only to this machine's names (127.0.0.1, localhost, [::1]; more \
            with --allow-host). Listening on any other address needs --auth FILE: lines \
            NAME:TOKEN (tokens of at least 16 characters, e.g. `openssl rand -hex 24`; the file \
            mode 0600). Then the page asks for a token (a login form sets an HttpOnly, \
            SameSite=Strict cookie) and the API takes `Authorization: Bearer TOKEN`. The console \
            speaks plain HTTP: beyond one machine, put it behind a TLS proxy or an SSH tunnel. \
            Every action is logged (JSON lines on stderr) with the user or the browser's address, \
            the host, the machine, the command id and the outcome.

            Examples:
              ecp-console --worker host1=tcp://127.0.0.1:5557,tcp://127.0.0.1:5556
              ecp-console --worker h1=tcp://10.0.0.1:5557,tcp://10.0.0.1:5556 \\
                  --worker h2=tcp://10.0.0.2:5557,tcp://10.0.0.2:5556 \\
                  --curve-server-key /etc/ecp/worker.pub --curve-key ~/.ecp/console.key \\
                  --listen 0.0.0.0:8080 --auth /etc/ecp/console-tokens
            """)

    @Option(
        name: .customLong("worker"),
        help: ArgumentHelp(
            "A worker to follow: ID=CONTROL,EVENTS, e.g. host1=tcp://127.0.0.1:5557,tcp://127.0.0.1:5556 (repeatable).",
            valueName: "id=control,events"))
    var workers: [String] = []

    @Option(
        name: .customLong("curve-server-key"),
        help: ArgumentHelp(
            "CURVE: the workers' public key (40 Z85 characters or a key file), or ID=KEY for one worker (repeatable).",
            valueName: "[id=]key-or-file"))
    var curveServerKeys: [String] = []

    @Option(
        name: .customLong("curve-key"),
        help: ArgumentHelp(
            "With --curve-server-key: the console's secret key file, mode 0600 (default: a new key each run).",
            valueName: "file"))
    var curveKey: String?

    @Option(help: ArgumentHelp("Where the web server listens, HOST:PORT.", valueName: "host:port"))
    var listen = "127.0.0.1:8080"

    @Option(
        help: ArgumentHelp(
            "Require a token: a file of NAME:TOKEN lines (mode 0600). Needed to listen on anything but loopback.",
            valueName: "file"))
    var auth: String?

    @Option(
        name: .customLong("allow-host"),
        help: ArgumentHelp("Another host name the console answers to (the Host header), e.g. behind a proxy (repeatable).", valueName: "name"))
    var allowHosts: [String] = []

    @Option(name: .customLong("shutdown-wait-ms"), help: ArgumentHelp("wait_ms of a shutdown from the page.", valueName: "ms"))
    var shutdownWaitMs = 60_000

    @Option(name: .customLong("log-format"), help: ArgumentHelp("json (one object per line on stderr) or text.", valueName: "format"))
    var logFormat = "json"

    @Option(name: .customLong("log-level"), help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"))
    var logLevel = "info"

    func validate() throws {
        guard ["json", "text"].contains(logFormat) else { throw ValidationError("--log-format must be json or text") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        let settings: ConsoleSettings
        do {
            settings = try ConsoleSettings(
                workers: workers, serverKeys: curveServerKeys, clientKey: curveKey, listen: listen, authFile: auth,
                allowHosts: allowHosts, shutdownWaitMs: shutdownWaitMs)
        } catch {
            throw ValidationError(error.description)
        }
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let json = logFormat == "json"
        LoggingSystem.bootstrap { label in
            json ? JSONLogHandler(label: label, level: level) as any LogHandler : TextLogHandler(label: label, level: level)
        }
        // A browser or log reader that goes away must not stop the console.
        signal(SIGPIPE, SIG_IGN)
        // One malloc arena per thread that allocates (glibc's default, up to 8 per core) holds
        // freed memory apart; two are plenty for a console.
        limitMallocArenas(2)
        let logger = Logger(label: "ecp-console")
        let console = try Console(settings: settings, logger: logger)
        do {
            try await console.run()
        } catch {
            logger.critical("console stopped", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        logger.notice("console stopped")
    }
}

/// glibc's `mallopt(M_ARENA_MAX, n)`, looked up at run time: Swift's Glibc module does not
/// declare `<malloc.h>`.
func limitMallocArenas(_ count: Int32) {
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    guard let symbol = dlsym(nil, "mallopt") else { return }
    let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
    let arenaMax: Int32 = -8  // M_ARENA_MAX
    _ = mallopt(arenaMax, count)
}
