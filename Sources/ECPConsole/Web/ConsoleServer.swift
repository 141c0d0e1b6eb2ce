import ECPProtocol
import FoundationEssentials
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Threading

/// A header name (HTTPTypes' type, through Hummingbird).
typealias FieldName = HTTPFields.Element.Name

/// What a request carries through the console's routes: the browser's address and, once
/// authenticated, the user.
public struct ConsoleRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// The authenticated user (nil without --auth).
    public var user: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// `ip:port` of the browser, for the log.
    var remote: String {
        guard let address = remoteAddress else { return "unknown" }
        if let ip = address.ipAddress, let port = address.port {
            return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
        return "\(address)"
    }
}

/// The console's web side: its settings and what the routes share.
public final class ConsoleWeb: Sendable {
    public let state: ConsoleState
    public let links: [String: WorkerLink]
    public let tokens: TokenFile?
    public let sessions = SessionStore()
    /// The token a page must send back with every POST (X-CSRF-Token).
    public let csrfToken: String
    /// Host header values accepted; nil accepts any (an authenticated console on a network).
    public let allowedHosts: Set<String>?
    /// `wait_ms` of a shutdown from the page.
    public let shutdownWaitMs: Int
    /// How long the console waits for a command's answer beyond the command's own wait.
    public let answerWaitMs: Int
    let logger: Logger
    private let failedLogins = Mutex<[String: (count: Int, since: UInt64)]>([:])

    /// The actions a page may ask for on a machine.
    public static let machineActions: Set<String> = ["start", "shutdown", "destroy", "reboot", "suspend", "resume"]

    public init(
        state: ConsoleState, links: [WorkerLink], tokens: TokenFile?, allowedHosts: Set<String>?, shutdownWaitMs: Int = 60_000,
        answerWaitMs: Int = 60_000, logger: Logger, csrfToken: String? = nil
    ) {
        self.state = state
        self.links = Dictionary(uniqueKeysWithValues: links.map { ($0.spec.id, $0) })
        self.tokens = tokens
        self.allowedHosts = allowedHosts
        self.shutdownWaitMs = shutdownWaitMs
        self.answerWaitMs = answerWaitMs
        self.logger = logger
        self.csrfToken = csrfToken ?? RandomText.hex(bytes: 32)
    }

    /// The host names (Host header without the port) a console listening on `listen` answers
    /// to: the address itself, for loopback also `localhost`, `127.0.0.1` and `[::1]`, plus any
    /// `extra` (`--allow-host`). A page served under another name (a DNS rebinding attack) gets
    /// nothing.
    public static func allowedHosts(listen: ListenAddress, extra: [String]) -> Set<String> {
        var names: Set<String> = [listen.host.contains(":") ? "[\(listen.host.lowercased())]" : listen.host.lowercased()]
        if listen.isLoopback { names.formUnion(["localhost", "127.0.0.1", "[::1]"]) }
        names.formUnion(extra.map { $0.lowercased() })
        return names
    }

    /// The name part of a Host header (`[::1]:8080` → `[::1]`, `localhost:80` → `localhost`).
    static func hostName(_ authority: String) -> String {
        let lower = authority.lowercased()
        if lower.hasPrefix("["), let end = lower.firstIndex(of: "]") { return String(lower[...end]) }
        if let colon = lower.lastIndex(of: ":") { return String(lower[..<colon]) }
        return lower
    }

    // MARK: the router

    public func router() -> Router<ConsoleRequestContext> {
        let router = Router(context: ConsoleRequestContext.self)
        router.add(middleware: ConsoleMiddleware(web: self))
        router.get("/") { [self] request, context in
            if tokens != nil && context.user == nil { return Self.redirect("/login") }
            return Self.asset(WebAssets.indexHTML, type: "text/html; charset=utf-8")
        }
        router.get("/app.js") { _, _ in Self.asset(WebAssets.appJS, type: "text/javascript; charset=utf-8") }
        router.get("/favicon.ico") { _, _ in Response(status: .noContent) }
        router.get("/style.css") { _, _ in Self.asset(WebAssets.styleCSS, type: "text/css; charset=utf-8") }
        router.get("/login") { [self] request, context in
            if tokens == nil || context.user != nil { return Self.redirect("/") }
            let failed = request.uri.queryParameters.get("failed") != nil
            return Self.asset(failed ? WebAssets.loginFailedHTML : WebAssets.loginHTML, type: "text/html; charset=utf-8")
        }
        router.post("/login") { [self] request, context in try await login(request, context: context) }
        router.post("/logout") { [self] request, _ in
            if let id = request.cookies[SessionStore.cookieName]?.value { sessions.close(session: id) }
            var response = Self.redirect(tokens == nil ? "/" : "/login")
            response.headers[.setCookie] = "\(SessionStore.cookieName)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
            return response
        }
        router.get("/api/state") { [self] _, context in
            Self.json(state.snapshotJSON(csrf: csrfToken, user: context.user))
        }
        router.get("/api/events") { [self] request, _ in events(request) }
        router.post("/api/hosts/:host/machines/:machine/:action") { [self] request, context in
            let host = try context.parameters.require("host")
            let machine = try context.parameters.require("machine")
            let action = try context.parameters.require("action")
            return try submit(host: host, machine: Self.percentDecoded(machine), action: action, context: context)
        }
        router.post("/api/hosts/:host/restore") { [self] _, context in
            let host = try context.parameters.require("host")
            return try submit(host: host, machine: nil, action: "restore", context: context)
        }
        return router
    }

    // MARK: commands

    func submit(host: String, machine: String?, action: String, context: ConsoleRequestContext) throws -> Response {
        guard let link = links[host] else { throw HTTPError(.notFound, message: "no such host") }
        if machine != nil {
            guard Self.machineActions.contains(action) else { throw HTTPError(.notFound, message: "no such action") }
        }
        var name: String?
        if let machine {
            guard !machine.isEmpty, machine.utf8.count <= 1024,
                !machine.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f })
            else { throw HTTPError(.badRequest, message: "not a machine name") }
            name = state.machineName(host: host, machine: machine) ?? machine
        }
        let id = "con-" + RandomText.hex(bytes: 8)
        var w = JSONWriter(capacity: 160)
        w.beginObject()
        w.key("v"); w.int(1)
        w.key("id"); w.string(id)
        w.key("op"); w.string(action)
        if let name {
            w.key("machine"); w.string(name)
        }
        var waitMs = answerWaitMs
        if action == "shutdown" {
            w.key("args")
            w.beginObject()
            w.key("wait_ms"); w.int(Int64(shutdownWaitMs))
            w.endObject()
            waitMs += shutdownWaitMs
        }
        w.endObject()
        let record = CommandRecord(
            id: id, host: host, machine: name, action: action, user: context.user, remote: context.remote, submittedAt: Timestamp.now(),
            submittedNanos: ConsoleClock.nanos())
        state.commandSubmitted(record)
        var metadata: Logger.Metadata = [
            "command.id": "\(id)", "command.op": "\(action)", "worker.id": "\(host)", "http.remote": "\(context.remote)",
        ]
        if let user = context.user { metadata["user.name"] = "\(user)" }
        if let name { metadata["machine.name"] = "\(name)" }
        logger.info("command sent", metadata: metadata)
        link.submit(
            OutgoingCommand(id: id, op: action, machine: name, payload: w.bytes, waitNanos: UInt64(waitMs) * 1_000_000))
        var body = JSONWriter(capacity: 64)
        body.beginObject()
        body.key("id"); body.string(id)
        body.key("status"); body.string("accepted")
        body.endObject()
        return Self.json(body.bytes, status: .accepted)
    }

    // MARK: live changes

    func events(_ request: Request) -> Response {
        var since: UInt64?
        if let last = request.headers[FieldName("Last-Event-ID")!], let n = UInt64(last) {
            since = n
        } else if let text = request.uri.queryParameters.get("since"), let n = UInt64(text) {
            since = n
        }
        let (id, stream) = state.subscribe(since: since)
        let state = self.state
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                defer { state.unsubscribe(id) }
                for await frame in stream {
                    try await writer.write(ByteBuffer(bytes: frame))
                }
                try await writer.finish(nil)
            })
    }

    // MARK: login

    func login(_ request: Request, context: ConsoleRequestContext) async throws -> Response {
        guard let tokens else { return Self.redirect("/") }
        let address = context.remoteAddress?.ipAddress ?? "unknown"
        let now = ConsoleClock.nanos()
        let blocked = failedLogins.withLock { table -> Bool in
            if let entry = table[address], now &- entry.since < 60_000_000_000 { return entry.count >= 10 }
            return false
        }
        if blocked {
            logger.warning("login refused: too many failures", metadata: ["http.remote": "\(context.remote)"])
            throw HTTPError(.tooManyRequests, message: "too many failed logins; wait a minute")
        }
        var request = request
        let body = try await request.collectBody(upTo: 4096)
        let form = Self.formFields(String(buffer: body))
        guard let token = form["token"], let user = tokens.user(presenting: Array(token.utf8)) else {
            failedLogins.withLock { table in
                if table.count > 10_000 { table.removeAll() }
                var entry = table[address] ?? (0, now)
                if now &- entry.since >= 60_000_000_000 { entry = (0, now) }
                entry.count += 1
                table[address] = entry
            }
            logger.warning("login failed", metadata: ["http.remote": "\(context.remote)"])
            return Self.redirect("/login?failed=1")
        }
        let session = sessions.open(user: user)
        logger.info("login", metadata: ["user.name": "\(user)", "http.remote": "\(context.remote)"])
        var response = Self.redirect("/")
        response.headers[.setCookie] =
            "\(SessionStore.cookieName)=\(session); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(SessionStore.lifetimeSeconds)"
        return response
    }

    /// The user a request authenticates as: a Bearer token or a session cookie.
    func authenticate(_ request: Request) -> String? {
        guard let tokens else { return nil }
        if let authorization = request.headers[.authorization] {
            let prefix = "bearer "
            if authorization.count > prefix.count, authorization.lowercased().hasPrefix(prefix) {
                return tokens.user(presenting: Array(authorization.utf8.dropFirst(prefix.utf8.count)))
            }
        }
        if let session = request.cookies[SessionStore.cookieName]?.value {
            return sessions.user(session: session)
        }
        return nil
    }

    func checkCSRF(_ request: Request) -> Bool {
        guard let presented = request.headers[FieldName("X-CSRF-Token")!] else { return false }
        return TokenFile.constantTimeEqual(Array(presented.utf8), Array(csrfToken.utf8))
    }

    // MARK: helpers

    static func percentDecoded(_ text: String) -> String {
        guard text.contains("%") else { return text }
        var bytes: [UInt8] = []
        var i = text.utf8.startIndex
        let utf8 = text.utf8
        while i < utf8.endIndex {
            let b = utf8[i]
            if b == UInt8(ascii: "%"), let h1 = utf8.index(i, offsetBy: 1, limitedBy: utf8.endIndex), h1 < utf8.endIndex,
                let h2 = utf8.index(i, offsetBy: 2, limitedBy: utf8.endIndex), h2 < utf8.endIndex,
                let hi = hexValue(utf8[h1]), let lo = hexValue(utf8[h2])
            {
                bytes.append(hi << 4 | lo)
                i = utf8.index(i, offsetBy: 3)
            } else {
                bytes.append(b)
                i = utf8.index(after: i)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }

    static func formFields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = percentDecoded(String(parts[0]).replacing("+", with: " "))
            let value = parts.count > 1 ? percentDecoded(String(parts[1]).replacing("+", with: " ")) : ""
            fields[key] = value
        }
        return fields
    }

    static func asset(_ text: StaticString, type: String) -> Response {
        let buffer = text.withUTF8Buffer { ByteBuffer(bytes: $0) }
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: buffer))
    }

    static func json(_ bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func redirect(_ location: String) -> Response {
        var headers = HTTPFields()
        headers[.location] = location
        headers[.cacheControl] = "no-store"
        return Response(status: .seeOther, headers: headers)
    }

    static func errorJSON(_ status: HTTPResponse.Status, _ message: String) -> Response {
        var w = JSONWriter(capacity: 96)
        w.beginObject()
        w.key("error"); w.string(message)
        w.endObject()
        return json(w.bytes, status: status)
    }
}

/// Every request: the Host check, authentication, the CSRF check of POSTs, and the security
/// headers of every response, errors included.
struct ConsoleMiddleware: RouterMiddleware {
    typealias Context = ConsoleRequestContext
    let web: ConsoleWeb

    /// Served without authentication: the login form and its style.
    static let publicPaths: Set<String> = ["/login", "/style.css", "/favicon.ico"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await check(request, context: context, next: next)
        } catch let error as HTTPError {
            response = ConsoleWeb.errorJSON(error.status, error.body ?? error.status.reasonPhrase)
        } catch {
            web.logger.error("request failed", metadata: ["http.path": "\(request.uri.path)", "error": "\(error)"])
            response = ConsoleWeb.errorJSON(.internalServerError, "internal error")
        }
        response.headers[FieldName("Content-Security-Policy")!] =
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
        response.headers[FieldName("X-Content-Type-Options")!] = "nosniff"
        response.headers[FieldName("X-Frame-Options")!] = "DENY"
        response.headers[FieldName("Referrer-Policy")!] = "no-referrer"
        return response
    }

    private func check(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let allowed = web.allowedHosts {
            let host = request.head.authority ?? ""
            guard allowed.contains(ConsoleWeb.hostName(host)) else {
                throw HTTPError(.misdirectedRequest, message: "this console does not answer to that host name")
            }
        }
        var context = context
        let path = request.uri.path
        if web.tokens != nil {
            context.user = web.authenticate(request)
            if context.user == nil && !Self.publicPaths.contains(path) && path != "/" {
                throw HTTPError(.unauthorized, message: "log in first (or send Authorization: Bearer TOKEN)")
            }
        }
        if request.method == .post && path != "/login" {
            if let origin = request.headers[.origin], origin != "null" {
                let host = request.head.authority ?? ""
                guard origin == "http://\(host)" || origin == "https://\(host)" else {
                    throw HTTPError(.forbidden, message: "cross-origin request refused")
                }
            }
            guard web.checkCSRF(request) else {
                web.logger.warning(
                    "request refused: no CSRF token",
                    metadata: ["http.path": "\(path)", "http.remote": "\(context.remote)"])
                throw HTTPError(.forbidden, message: "missing or wrong X-CSRF-Token (GET /api/state gives it)")
            }
        }
        return try await next(request, context)
    }
}

/// Starts the worker links with the console and, at shutdown, ends the live streams (so the web
/// server can stop) and the links.
public struct ConsoleService: Service {
    let web: ConsoleWeb

    public init(web: ConsoleWeb) {
        self.web = web
    }

    public func run() async throws {
        for link in web.links.values { link.start() }
        // Keep-alive comments every 15 s: proxies keep the stream open, and a browser that went
        // away is noticed at the next write.
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    try? await Task.sleep(for: .seconds(15))
                    web.state.keepAlive()
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        web.state.finishAllStreams()
        let links = Array(web.links.values)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            WorkerThread.start(name: "con-stop") {
                for link in links { link.stop() }
                continuation.resume()
            }
        }
    }
}
