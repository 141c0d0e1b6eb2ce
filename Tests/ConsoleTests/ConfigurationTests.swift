import ECPConsole
import Foundation
import Testing

@Suite("ecp-console's options")
struct ConfigurationTests {
    @Test("--worker ID=CONTROL,EVENTS")
    func workerSpec() throws {
        let spec = try WorkerSpec(parsing: "host1=tcp://127.0.0.1:5557,tcp://127.0.0.1:5556")
        #expect(spec.id == "host1")
        #expect(spec.control.description == ">tcp://127.0.0.1:5557")
        #expect(spec.events.description == ">tcp://127.0.0.1:5556")
        for bad in ["host1", "host1=tcp://a:1", "=tcp://a:1,tcp://a:2", "h/1=tcp://a:1,tcp://a:2", "h=a,b", "h=tcp://a:1,"] {
            #expect(throws: ConsoleStartupError.self, "\(bad)") { try WorkerSpec(parsing: bad) }
        }
    }

    @Test("listening beyond loopback needs --auth; loopback does not")
    func nonLoopbackNeedsAuth() throws {
        let worker = ["h1=tcp://127.0.0.1:5557,tcp://127.0.0.1:5556"]
        for listen in ["127.0.0.1:8080", "127.0.0.2:0", "localhost:8080", "[::1]:8080"] {
            let settings = try ConsoleSettings(
                workers: worker, serverKeys: [], clientKey: nil, listen: listen, authFile: nil, allowHosts: [], shutdownWaitMs: 60_000)
            #expect(settings.listen.isLoopback, "\(listen)")
        }
        for listen in ["0.0.0.0:8080", "192.0.2.10:8080", "[::]:8080", "example.org:80"] {
            let error = #expect(throws: ConsoleStartupError.self, "\(listen)") {
                try ConsoleSettings(
                    workers: worker, serverKeys: [], clientKey: nil, listen: listen, authFile: nil, allowHosts: [], shutdownWaitMs: 60_000)
            }
            #expect(error?.description.contains("--auth FILE") == true, "\(String(describing: error))")
        }
        let noWorker = #expect(throws: ConsoleStartupError.self) {
            try ConsoleSettings(workers: [], serverKeys: [], clientKey: nil, listen: "127.0.0.1:1", authFile: nil, allowHosts: [], shutdownWaitMs: 1)
        }
        #expect(noWorker?.description.contains("--worker") == true)
    }

    @Test("a token file: NAME:TOKEN lines, private, tokens long enough and distinct")
    func tokenFile() throws {
        let file = try TokenFile.parse("# people\n\nalice:0123456789abcdef0123\nbob:fedcba9876543210fedc\r\n", origin: "t")
        #expect(file.entries.map(\.name) == ["alice", "bob"])
        #expect(file.user(presenting: Array("0123456789abcdef0123".utf8)) == "alice")
        #expect(file.user(presenting: Array("fedcba9876543210fedc".utf8)) == "bob")
        #expect(file.user(presenting: Array("0123456789abcdef012".utf8)) == nil)
        #expect(file.user(presenting: Array("0123456789abcdef01234".utf8)) == nil)
        #expect(file.user(presenting: []) == nil)
        for bad in ["alice:short", "alice 0123456789abcdef0123", "al ice:0123456789abcdef0123", "", "# nobody\n",
                    "a:0123456789abcdef0123\na:1123456789abcdef0123", "a:0123456789abcdef0123\nb:0123456789abcdef0123"] {
            #expect(throws: ConsoleStartupError.self, "\(bad)") { try TokenFile.parse(bad, origin: "t") }
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tokens-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try "alice:0123456789abcdef0123\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        let error = #expect(throws: ConsoleStartupError.self) { try TokenFile.read(path: path) }
        #expect(error?.description.contains("chmod 600") == true)
        chmod(path, 0o600)
        #expect(try TokenFile.read(path: path).entries.count == 1)
        let settings = try ConsoleSettings(
            workers: ["h=tcp://127.0.0.1:1,tcp://127.0.0.1:2"], serverKeys: [], clientKey: nil, listen: "0.0.0.0:8080", authFile: path,
            allowHosts: [], shutdownWaitMs: 1000)
        #expect(settings.tokens != nil)
    }

    @Test("CURVE: one shared server key or one per worker")
    func curveKeys() throws {
        let server = try ZeroMQCurve.pair()
        let workers = ["a=tcp://127.0.0.1:1,tcp://127.0.0.1:2", "b=tcp://127.0.0.1:3,tcp://127.0.0.1:4"]
        let shared = try ConsoleSettings(
            workers: workers, serverKeys: [server], clientKey: nil, listen: "127.0.0.1:0", authFile: nil, allowHosts: [], shutdownWaitMs: 1)
        #expect(shared.workers.allSatisfy { $0.curve?.serverPublicKey == server })
        let one = try ConsoleSettings(
            workers: workers, serverKeys: ["b=\(server)"], clientKey: nil, listen: "127.0.0.1:0", authFile: nil, allowHosts: [], shutdownWaitMs: 1)
        #expect(one.workers[0].curve == nil)
        #expect(one.workers[1].curve?.serverPublicKey == server)
        #expect(throws: ConsoleStartupError.self) {
            try ConsoleSettings(
                workers: workers, serverKeys: ["c=\(server)"], clientKey: nil, listen: "127.0.0.1:0", authFile: nil, allowHosts: [], shutdownWaitMs: 1)
        }
        #expect(throws: ConsoleStartupError.self) {
            try ConsoleSettings(
                workers: workers, serverKeys: [], clientKey: "/nonexistent.key", listen: "127.0.0.1:0", authFile: nil, allowHosts: [], shutdownWaitMs: 1)
        }
    }
}
