import ECPConsole
import ECPProtocol
import Foundation
import Synchronization
import Testing
import WorkerLauncher

/// The console's HTTP API over a real socket, against a real worker.
@Suite("the console's HTTP API", .serialized)
struct HTTPAPITests {
    /// Runs the `ecp-console` executable for `worker` (with `authFile` when given) on a free
    /// port and gives `body` the port and the process; the console stops afterwards with exit
    /// status 0. Its own process: its server never waits on this test process's threads.
    static func withConsole(
        _ worker: TestWorker, authFile: String? = nil, _ body: @escaping @Sendable (Int, ConsoleProcess) throws -> Void
    ) async throws {
        var arguments = ["--worker", "\(worker.id)=\(worker.controlAddress),\(worker.eventsAddress)", "--shutdown-wait-ms", "1000"]
        if let authFile { arguments += ["--auth", authFile] }
        let console = try ConsoleProcess(arguments: arguments)
        do {
            try await offPool { try body(console.port, console) }
        } catch {
            _ = console.stop()
            throw error
        }
        #expect(console.stop() == 0, "the console exits 0 on SIGTERM\n\(console.log)")
    }

    static func csrf(_ port: Int, headers: [String: String] = [:]) throws -> String {
        let reply = try http("GET", port: port, "/api/state", headers: headers)
        guard let token = reply.json?["csrf"]?.stringValue else { throw ConsoleTestError("no csrf in \(reply.status)") }
        return token
    }

    @Test("a POST without the CSRF token is refused and runs nothing; with it, answered at once with the command id")
    func csrfAndAccepted() async throws {
        let worker = try TestWorker(id: "api-a", machines: FollowingTests.machines)
        try worker.start()
        defer { worker.stop() }
        try await Self.withConsole(worker) { port, console in
            let page = try http("GET", port: port, "/")
            #expect(page.status == 200)
            #expect(page.headers["content-security-policy"]?.contains("default-src 'self'") == true)
            #expect(page.headers["content-security-policy"]?.contains("unsafe-inline") == false)
            #expect(page.headers["x-content-type-options"] == "nosniff")
            #expect(try http("GET", port: port, "/app.js").headers["content-type"]?.hasPrefix("text/javascript") == true)

            let path = "/api/hosts/api-a/machines/web1/start"
            let refused = try http("POST", port: port, path)
            #expect(refused.status == 403)
            #expect(refused.headers["x-content-type-options"] == "nosniff")
            #expect(try http("POST", port: port, path, headers: ["X-CSRF-Token": String(repeating: "0", count: 64)]).status == 403)
            let token = try Self.csrf(port)
            #expect(try http("POST", port: port, path, headers: ["X-CSRF-Token": token, "Origin": "http://evil.example"]).status == 403)
            #expect(try worker.command("status", machine: "web1")["state"] == "shutoff", "nothing ran")

            let accepted = try http("POST", port: port, path, headers: ["X-CSRF-Token": token])
            #expect(accepted.status == 202)
            #expect(accepted.json?["status"] == "accepted")
            let id = try #require(accepted.json?["id"]?.stringValue)
            #expect(id.hasPrefix("con-"))
            #expect(eventually {
                (try? http("GET", port: port, "/api/state"))?.json?["commands"]?.arrayValue?.contains {
                    $0["id"]?.stringValue == id && $0["status"] == "ok" && $0["state"] == "running"
                } == true
            })
            #expect(try worker.command("status", machine: "web1")["state"] == "running")
            // Who did what, in the log.
            #expect(eventually {
                console.entries.contains { $0["msg"] == "command answered" && $0["command.id"]?.stringValue == id }
            })
            let answered = console.entries.first { $0["msg"] == "command answered" && $0["command.id"]?.stringValue == id }
            #expect(answered?["command.outcome"] == "ok")
            #expect(answered?["machine.name"] == "web1")
            #expect(answered?["worker.id"] == "api-a")
            #expect(answered?["http.remote"]?.stringValue?.hasPrefix("127.0.0.1:") == true)

            // Unknown hosts and actions, and a name that is not one.
            #expect(try http("POST", port: port, "/api/hosts/nohost/machines/web1/start", headers: ["X-CSRF-Token": token]).status == 404)
            #expect(try http("POST", port: port, "/api/hosts/api-a/machines/web1/undefine", headers: ["X-CSRF-Token": token]).status == 404)
            #expect(try http("POST", port: port, "/api/hosts/api-a/machines/a%0Ab/start", headers: ["X-CSRF-Token": token]).status == 400)
            // Another host name (DNS rebinding) gets nothing.
            let rebound = try http("GET", port: port, "/api/state", headers: ["Host": "evil.example:\(port)"])
            #expect(rebound.status == 421)
            #expect(rebound.json?["csrf"] == nil)
        }
    }

    @Test("a failed action's result names the E2LibvirtError; the stream carries it")
    func failedActionOnTheStream() async throws {
        let worker = try TestWorker(id: "api-b", machines: FollowingTests.machines)
        try worker.start()
        defer { worker.stop() }
        try await Self.withConsole(worker) { port, console in
            #expect(eventually {
                let h = (try? http("GET", port: port, "/api/state"))?.json?["hosts"]?.arrayValue?.first
                return h?["synced"] == .bool(true) && h?["status"] == "up"
            })
            let token = try Self.csrf(port)
            let state = try http("GET", port: port, "/api/state")
            let rev = try #require(state.json?["rev"]?.intValue)
            let accepted = try http("POST", port: port, "/api/hosts/api-b/machines/web1/suspend", headers: ["X-CSRF-Token": token])
            let id = try #require(accepted.json?["id"]?.stringValue)
            #expect(eventually {
                (try? http("GET", port: port, "/api/state"))?.json?["commands"]?.arrayValue?.contains {
                    $0["id"]?.stringValue == id && $0["status"] == "failed"
                } == true
            })
            let command = try http("GET", port: port, "/api/state").json?["commands"]?.arrayValue?.first { $0["id"]?.stringValue == id }
            #expect(command?["error"]?["type"] == "E2LibvirtError")
            #expect(command?["error"]?["summary"]?.stringValue?.contains("web1") == true)
            // The changes since `rev`, as the page gets them (the stream is cut by the socket's
            // read timeout in `http`, so read it with a short-lived request).
            let stream = try sse(port: port, since: UInt64(rev))
            #expect(stream.contains("event: command"), "\(stream.prefix(2000))")
            #expect(stream.contains(id))
            #expect(stream.contains("event: error_entry"))
        }
    }

    @Test("the executable refuses to listen beyond loopback without --auth, and says why")
    func refusesOpenListen() async throws {
        try await offPool {
            let error = #expect(throws: ConsoleTestError.self) {
                try ConsoleProcess(arguments: ["--worker", "h=tcp://127.0.0.1:1,tcp://127.0.0.1:2", "--listen", "0.0.0.0:0"])
            }
            #expect(error?.description.contains("needs --auth FILE") == true, "\(String(describing: error))")
        }
    }

    @Test("with --auth: the page and the API need a token; a bearer token or the login form's cookie")
    func authentication() async throws {
        let worker = try TestWorker(id: "api-c", machines: FollowingTests.machines)
        try worker.start()
        defer { worker.stop() }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tokens-\(UUID().uuidString)").path
        try "alice:0123456789abcdef0123456789\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o600)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try await Self.withConsole(worker, authFile: path) { port, console in
            let page = try http("GET", port: port, "/")
            #expect(page.status == 303)
            #expect(page.headers["location"] == "/login")
            #expect(try http("GET", port: port, "/login").status == 200)
            #expect(try http("GET", port: port, "/api/state").status == 401)
            #expect(try http("GET", port: port, "/api/events").status == 401)
            #expect(try http("GET", port: port, "/api/state", headers: ["Authorization": "Bearer 0123456789abcdef012345678"]).status == 401)
            let bearer = ["Authorization": "Bearer 0123456789abcdef0123456789"]
            #expect(try http("GET", port: port, "/api/state", headers: bearer).json?["user"] == "alice")

            let failed = try http("POST", port: port, "/login", headers: ["Content-Type": "application/x-www-form-urlencoded"], body: Array("token=nope".utf8))
            #expect(failed.status == 303)
            #expect(failed.headers["location"] == "/login?failed=1")
            #expect(failed.headers["set-cookie"] == nil)
            let login = try http(
                "POST", port: port, "/login", headers: ["Content-Type": "application/x-www-form-urlencoded"],
                body: Array("token=0123456789abcdef0123456789".utf8))
            #expect(login.status == 303)
            let cookie = try #require(login.headers["set-cookie"])
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
            let session = String(cookie.split(separator: ";")[0])
            let state = try http("GET", port: port, "/api/state", headers: ["Cookie": session])
            #expect(state.json?["user"] == "alice")
            let token = try #require(state.json?["csrf"]?.stringValue)
            #expect(try http("POST", port: port, "/api/hosts/api-c/machines/db1/suspend", headers: ["Cookie": session]).status == 403)
            #expect(try http("POST", port: port, "/api/hosts/api-c/machines/db1/suspend", headers: ["X-CSRF-Token": token]).status == 401)
            #expect(
                try http("POST", port: port, "/api/hosts/api-c/machines/db1/suspend", headers: ["Cookie": session, "X-CSRF-Token": token]).status
                    == 202)
            #expect(eventually { (try? worker.command("status", machine: "db1"))?["state"] == "paused" })
            #expect(eventually {
                console.entries.contains { $0["msg"] == "command answered" && $0["user.name"] == "alice" && $0["machine.name"] == "db1" }
            })
        }
    }
}

/// The frames of `GET /api/events?since=` that arrive within a second.
func sse(port: Int, since: UInt64) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var timeout = timeval(tv_sec: 1, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    _ = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    let request = Array("GET /api/events?since=\(since) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        received += buffer[0..<n]
    }
    return String(decoding: received, as: UTF8.self)
}
