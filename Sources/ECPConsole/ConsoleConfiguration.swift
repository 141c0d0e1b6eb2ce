import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// Why the console cannot start as asked: a sentence for the operator.
public struct ConsoleStartupError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One worker the console follows: its id and its two sockets.
public struct WorkerSpec: Sendable, Equatable {
    /// The id the console shows and the API names it by (`/api/hosts/<id>/...`).
    public var id: String
    /// The worker's control socket (ROUTER); the console connects a DEALER to it.
    public var control: Endpoint
    /// The worker's events socket (PUB); the console connects a SUB to it.
    public var events: Endpoint
    /// CURVE keys for both sockets, or nil for plain connections.
    public var curve: CurveClientKeys?

    public init(id: String, control: Endpoint, events: Endpoint, curve: CurveClientKeys? = nil) {
        self.id = id
        self.control = control
        self.events = events
        self.curve = curve
    }

    /// Parses `id=CONTROL,EVENTS`, e.g. `host1=tcp://127.0.0.1:5557,tcp://127.0.0.1:5556`. The
    /// endpoints connect unless they begin with `@`.
    public init(parsing text: String) throws(ConsoleStartupError) {
        guard let equals = text.firstIndex(of: "=") else {
            throw ConsoleStartupError("--worker \(Self.quote(text)): expected ID=CONTROL,EVENTS (e.g. host1=tcp://127.0.0.1:5557,tcp://127.0.0.1:5556)")
        }
        let id = String(text[..<equals])
        guard Self.isValidID(id) else {
            throw ConsoleStartupError("--worker \(Self.quote(text)): the id must be 1 to 64 characters of [A-Za-z0-9._:-]")
        }
        let parts = text[text.index(after: equals)...].split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw ConsoleStartupError("--worker \(Self.quote(text)): expected two endpoints, CONTROL,EVENTS")
        }
        do {
            self.control = try Endpoint(parsing: String(parts[0]), defaultDirection: .connect)
            self.events = try Endpoint(parsing: String(parts[1]), defaultDirection: .connect)
        } catch {
            throw ConsoleStartupError("--worker \(Self.quote(text)): not an endpoint")
        }
        for endpoint in [control, events] where !endpoint.address.contains("://") {
            throw ConsoleStartupError("--worker \(Self.quote(text)): \(Self.quote(endpoint.address)) is not an endpoint (tcp://host:port, ipc://path)")
        }
        self.id = id
        self.curve = nil
    }

    /// Worker ids as the console accepts them: what a URL path segment holds without escaping.
    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 64
            && id.utf8.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2E || b == 0x5F
                    || b == 0x3A || b == 0x2D
            }
    }

    static func quote(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars.prefix(200) {
            if scalar.value < 0x20 || scalar.value == 0x7f || (0x80..<0xa0).contains(scalar.value) {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return "\"" + out + "\""
    }
}

/// The keys a CURVE client socket needs.
public struct CurveClientKeys: Sendable, Equatable {
    public var serverPublicKey: String
    public var publicKey: String
    public var secretKey: String

    public init(serverPublicKey: String, publicKey: String, secretKey: String) {
        self.serverPublicKey = serverPublicKey
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// Makes `socket` a CURVE client; call it before connecting.
    func apply(to socket: Socket) throws {
        try socket.setCurveClient(serverPublicKey: serverPublicKey, publicKey: publicKey, secretKey: secretKey)
    }

    /// A worker's public key from `--curve-server-key`: 40 Z85 characters, or a key file.
    public static func serverKey(_ text: String) throws(ConsoleStartupError) -> String {
        if CurveKeyFile.isZ85Key(text) && access(text, F_OK) != 0 { return text }
        do {
            return try CurveKeyFile.read(path: text, requirePrivate: false).publicKey
        } catch {
            throw ConsoleStartupError("--curve-server-key: \(error.message)")
        }
    }

    /// The console's own key pair from `--curve-key` (a secret key file, mode 0600), or a new
    /// pair when nil.
    public static func clientPair(_ path: String?) throws(ConsoleStartupError) -> CurveKeyPair {
        guard let path else {
            do {
                return try CurveKeyPair.generate()
            } catch {
                throw ConsoleStartupError("cannot make a CURVE key: \(error)")
            }
        }
        let file: CurveKeyFile
        do {
            file = try CurveKeyFile.read(path: path, requirePrivate: true)
        } catch {
            throw ConsoleStartupError("--curve-key: \(error.message)")
        }
        guard let secret = file.secretKey else {
            throw ConsoleStartupError("--curve-key: \(WorkerSpec.quote(path)) has no secret-key line (use a NAME.key file from `ecpctl keygen`)")
        }
        return CurveKeyPair(publicKey: file.publicKey, secretKey: secret)
    }
}

/// Where the web server listens: `host:port` (`[v6]:port` too).
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init(parsing text: String) throws(ConsoleStartupError) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else {
            throw ConsoleStartupError("--listen \(WorkerSpec.quote(text)): expected HOST:PORT, e.g. 127.0.0.1:8080")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else {
            throw ConsoleStartupError("--listen \(WorkerSpec.quote(text)): the host is missing (127.0.0.1:\(port) listens on this machine only)")
        }
        self.host = host
        self.port = port
    }

    /// Whether only this machine can connect: 127.0.0.0/8, ::1 or `localhost`.
    public var isLoopback: Bool {
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) else { return false }
        return parts[0] == "127"
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
