import ArgumentParser
import ECPProtocol
import Foundation
import ZeroMQ

/// An option's default from the environment: `ECPCTL_<NAME>`.
func environment(_ name: String) -> String? {
    ProcessInfo.processInfo.environment["ECPCTL_" + name]
}

/// The options every worker-facing subcommand shares: where the worker is, how long to wait,
/// how to print, and CURVE security.
struct SharedOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The worker's control socket (env ECPCTL_CONTROL); > connects, @ binds.",
            valueName: "endpoint"))
    var control: String = environment("CONTROL") ?? ">tcp://127.0.0.1:5557"

    @Option(
        help: ArgumentHelp(
            "The worker's events socket, for tail (env ECPCTL_EVENTS); > connects, @ binds.",
            valueName: "endpoint"))
    var events: String = environment("EVENTS") ?? ">tcp://127.0.0.1:5556"

    @Option(
        name: .customLong("timeout-ms"),
        help: ArgumentHelp("Milliseconds to wait for the reply before giving up with exit status 3 (env ECPCTL_TIMEOUT_MS).", valueName: "ms"))
    var timeoutMs: Int = environment("TIMEOUT_MS").flatMap { Int($0) } ?? 30_000

    @Flag(help: "Print the raw JSON: the reply exactly as received (for tail, one message per line).")
    var json = false

    @Option(
        name: .customLong("id"),
        help: ArgumentHelp("The command id: 1 to 128 characters of [A-Za-z0-9._:-] (default: ctl-<8 random hex digits>).", valueName: "id"))
    var commandID: String?

    @Option(
        name: .customLong("curve-server-key"),
        help: ArgumentHelp(
            "Use CURVE security: the worker's public key, as 40 Z85 characters or a key file (env ECPCTL_CURVE_SERVER_KEY).",
            discussion: "A key file holds lines `public-key = <z85>` (and, in a secret key file, `secret-key = <z85>`); see `ecpctl keygen --help`.",
            valueName: "z85-or-file"))
    var curveServerKey: String?

    @Option(
        name: .customLong("curve-key"),
        help: ArgumentHelp(
            "With --curve-server-key: this client's secret key file, mode 0600 (env ECPCTL_CURVE_KEY; default: a new key for each run).",
            valueName: "file"))
    var curveKey: String?

    @Flag(name: .customLong("no-color"), help: "Never color the output (also when NO_COLOR is set or the output is not a terminal).")
    var noColor = false

    func validate() throws {
        if timeoutMs < 1 || timeoutMs > 86_400_000 {
            throw ValidationError("--timeout-ms must be between 1 and 86400000, got \(timeoutMs)")
        }
        if let commandID, let problem = CommandDecoder.idProblem(commandID) {
            throw ValidationError("--id: " + problem)
        }
        for (name, text) in [("--control", control), ("--events", events)] {
            do {
                _ = try Endpoint(parsing: text, defaultDirection: .connect)
            } catch {
                throw ValidationError("\(name): \(Sanitize.display(text)) is not an endpoint (use >tcp://host:port or @tcp://host:port)")
            }
        }
        if resolvedCurveKey != nil && resolvedCurveServerKey == nil {
            throw ValidationError("--curve-key needs --curve-server-key, the worker's public key")
        }
    }

    /// The command id to send: `--id`, or a new random `ctl-<8 hex digits>`.
    func makeCommandID() -> String {
        if let commandID { return commandID }
        return "ctl-" + String(format: "%08x", UInt32.random(in: .min ... .max))
    }

    /// The control endpoint (validated already).
    var controlEndpoint: Endpoint {
        get throws { try endpoint(control, name: "--control") }
    }

    /// The events endpoint (validated already).
    var eventsEndpoint: Endpoint {
        get throws { try endpoint(events, name: "--events") }
    }

    private func endpoint(_ text: String, name: String) throws -> Endpoint {
        do {
            return try Endpoint(parsing: text, defaultDirection: .connect)
        } catch {
            throw CtlFailure(ExitStatus.usage, "\(name): \(Sanitize.display(text)) is not an endpoint")
        }
    }

    private var resolvedCurveServerKey: String? {
        curveServerKey ?? environment("CURVE_SERVER_KEY").flatMap { $0.isEmpty ? nil : $0 }
    }

    private var resolvedCurveKey: String? {
        curveKey ?? environment("CURVE_KEY").flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The CURVE keys for the client sockets, or nil without `--curve-server-key`.
    ///
    /// - Throws: ``CtlFailure`` (usage) for an unreadable or malformed key or key file, or a
    ///   secret key file that others than its owner can read.
    func curveKeys() throws -> CurveClientKeys? {
        guard let server = resolvedCurveServerKey else { return nil }
        let serverPublicKey: String
        if CurveKeyFile.isZ85Key(server) && !FileManager.default.fileExists(atPath: server) {
            serverPublicKey = server
        } else {
            serverPublicKey = try Self.keyFile(server, requirePrivate: false).publicKey
        }
        if let path = resolvedCurveKey {
            let file = try Self.keyFile(path, requirePrivate: true)
            guard let secret = file.secretKey else {
                throw CtlFailure(
                    ExitStatus.usage,
                    "--curve-key: \(Sanitize.display(path)) has no secret-key line (use a NAME.key file from `ecpctl keygen`)")
            }
            return CurveClientKeys(serverPublicKey: serverPublicKey, publicKey: file.publicKey, secretKey: secret)
        }
        let pair: CurveKeyPair
        do {
            pair = try CurveKeyPair.generate()
        } catch {
            throw CtlFailure(ExitStatus.software, "cannot make a CURVE key: \(error)")
        }
        return CurveClientKeys(serverPublicKey: serverPublicKey, publicKey: pair.publicKey, secretKey: pair.secretKey)
    }

    /// Reads a key file (the format of ``CurveKeyFile``).
    private static func keyFile(_ path: String, requirePrivate: Bool) throws -> CurveKeyFile {
        do {
            return try CurveKeyFile.read(path: path, requirePrivate: requirePrivate)
        } catch {
            throw CtlFailure(ExitStatus.usage, Sanitize.display(error.message))
        }
    }
}

/// The keys a CURVE client socket needs.
struct CurveClientKeys {
    /// The worker's public key (Z85).
    var serverPublicKey: String
    /// This client's public key (Z85).
    var publicKey: String
    /// This client's secret key (Z85).
    var secretKey: String

    /// Makes `socket` a CURVE client; call it before connecting.
    func apply(to socket: Socket) throws {
        try socket.setCurveClient(serverPublicKey: serverPublicKey, publicKey: publicKey, secretKey: secretKey)
    }
}
