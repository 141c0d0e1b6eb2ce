import ECPProtocol
import Foundation
import Glibc
import Testing
import WorkerLauncher

/// A plain HTTP/1.1 GET over a TCP socket: the tests need no HTTP client library.
struct ScrapeResponse {
    var status: Int
    var head: String
    var body: String
}

enum MetricsScraper {
    enum Failure: Error { case connect(Int32), io(Int32), malformed(String) }

    /// Whether something accepts connections on 127.0.0.1:`port`.
    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        return connect(fd, port: port) == 0
    }

    private static func connect(_ fd: Int32, port: Int) -> Int32 {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }

    static func get(port: Int, path: String = "/metrics", method: String = "GET") throws -> ScrapeResponse {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, port: port) == 0 else { throw Failure.connect(errno) }
        let request = Array("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
        guard send(fd, request, request.count, 0) == request.count else { throw Failure.io(errno) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n < 0 { throw Failure.io(errno) }
            if n == 0 { break }
            data += chunk[0..<n]
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw Failure.malformed(text) }
        let head = String(text[..<split.lowerBound])
        var body = String(text[split.upperBound...])
        let statusLine = head.split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw Failure.malformed(head) }
        if head.lowercased().contains("transfer-encoding: chunked") { body = dechunk(body) }
        return ScrapeResponse(status: status, head: head, body: body)
    }

    private static func dechunk(_ text: String) -> String {
        var out = ""
        var rest = Substring(text)
        while let eol = rest.range(of: "\r\n"), let size = Int(rest[..<eol.lowerBound], radix: 16), size > 0 {
            let start = rest.utf8.index(eol.upperBound, offsetBy: 0)
            let end = rest.utf8.index(start, offsetBy: size)
            out += rest[start..<end]
            rest = rest[end...].dropFirst(2)
        }
        return out
    }

    /// The value of one sample line (`name{labels} value`), matched on its name and labels as written.
    static func value(_ body: String, _ series: String) -> Double? {
        for line in body.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1))
        }
        return nil
    }
}

@Suite("Metrics: GET /metrics in Prometheus's text format")
struct WorkerMetricsTests {
    @Test("the endpoint serves the worker's families with help texts; counters move with commands; other paths are 404")
    func scrape() async throws {
        try await WorkerTestThread.run { try scrapeBody() }
    }

    private func scrapeBody() throws {
        let port = try SpawnedWorker.freePorts(1)[0]
        var options = WorkerLaunchOptions()
        options.extraArguments = ["--metrics", "127.0.0.1:\(port)"]
        let worker = try WorkerProcess.start(options)
        #expect(worker.waitForLog { $0.contains("metrics endpoint ready") }, "\(worker.logTail())")
        let first = try MetricsScraper.get(port: port)
        #expect(first.status == 200)
        #expect(first.head.lowercased().contains("content-type: text/plain; version=0.0.4; charset=utf-8"), "\(first.head)")
        for family in [
            "ecp_worker_commands_total", "ecp_worker_command_duration_seconds", "ecp_worker_request_errors_total",
            "ecp_worker_restore_outcomes_total", "ecp_worker_state_commits_total", "ecp_worker_messages_published_total",
            "ecp_worker_in_flight_commands", "ecp_worker_libvirt_connected", "ecp_worker_uptime_seconds",
        ] {
            #expect(first.body.contains("# HELP \(family) "), "help for \(family)")
            #expect(first.body.contains("# TYPE \(family) "), "type for \(family)")
        }
        #expect(MetricsScraper.value(first.body, "ecp_worker_libvirt_connected") == 1)

        let client = try WorkerClient(worker)
        try client.sync()
        let before = MetricsScraper.value(try MetricsScraper.get(port: port).body, #"ecp_worker_commands_total{op="start",outcome="ok"}"#) ?? 0
        _ = try client.execute(WorkerClient.command("start", id: "m-start", machine: "web1"), via: .commands)
        _ = try client.execute(WorkerClient.command("start", id: "m-missing", machine: "nosuch"), via: .commands)
        try client.publish(topic: "cmd.\(worker.id)", Data("{".utf8))
        _ = try client.waitFor("the request error") { $0.type == "request_error" }

        let after = try MetricsScraper.get(port: port).body
        #expect(MetricsScraper.value(after, #"ecp_worker_commands_total{op="start",outcome="ok"}"#) == before + 1, "\(after)")
        #expect((MetricsScraper.value(after, #"ecp_worker_commands_total{op="start",outcome="libvirt_error"}"#) ?? 0) >= 1)
        #expect(after.contains(#"ecp_worker_libvirt_errors_total{code="VIR_ERR_NO_DOMAIN""#), "\(after)")
        #expect((MetricsScraper.value(after, #"ecp_worker_request_errors_total{reason="malformed_json"}"#) ?? 0) >= 1)
        #expect((MetricsScraper.value(after, #"ecp_worker_messages_published_total{topic_kind="result"}"#) ?? 0) >= 2)
        #expect((MetricsScraper.value(after, #"ecp_worker_state_commits_total"#) ?? 0) >= 1)
        #expect(after.contains(#"ecp_worker_command_duration_seconds_count{op="start"}"#))

        #expect(try MetricsScraper.get(port: port, path: "/").status == 404)
        #expect(try MetricsScraper.get(port: port, path: "/metrics/x").status == 404)
        #expect(try MetricsScraper.get(port: port, path: "/other").status == 404)
        #expect(try MetricsScraper.get(port: port, method: "POST").status == 404)

        // HEAD: the GET's head, no body; every response carries an HTTP date.
        let head = try MetricsScraper.get(port: port, method: "HEAD")
        #expect(head.status == 200, "\(head.head)")
        #expect(head.body.isEmpty)
        #expect(head.head.lowercased().contains("content-type: text/plain; version=0.0.4"), "\(head.head)")
        let date = head.head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("date: ") }
        #expect(date.map { $0.hasSuffix(" GMT") && $0.count == "Date: Sun, 06 Nov 1994 08:49:37 GMT".count } == true, "\(head.head)")
        #expect(worker.stop() == 0)
        #expect(!MetricsScraper.accepts(port: port), "the endpoint closes with the worker")
    }

    @Test("--metrics none leaves the port closed")
    func off() async throws {
        try await WorkerTestThread.run {
            let port = try SpawnedWorker.freePorts(1)[0]
            var options = WorkerLaunchOptions()
            options.extraArguments = ["--metrics", "none"]
            let worker = try WorkerProcess.start(options)
            #expect(!MetricsScraper.accepts(port: port))
            #expect(!worker.log.contains("metrics endpoint ready"))
            #expect(worker.stop() == 0)
        }
    }

    @Test("an address in use is logged as an error and the worker runs on")
    func bindConflict() async throws {
        try await WorkerTestThread.run {
            let port = try SpawnedWorker.freePorts(1)[0]
            let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(holder) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(bound == 0 && listen(holder, 1) == 0)
            var options = WorkerLaunchOptions()
            options.extraArguments = ["--metrics", "127.0.0.1:\(port)"]
            let worker = try WorkerProcess.start(options)
            #expect(worker.waitForLog { $0.contains("metrics endpoint cannot listen") }, "\(worker.logTail())")
            #expect(worker.log.contains(#""level":"error""#) || worker.log.contains("error"))
            let client = try WorkerClient(worker)
            try client.sync()
            let exchange = try client.execute(WorkerClient.command("ping", id: "after-conflict"), via: .commands)
            #expect(exchange.result.ok == true)
            #expect(worker.isRunning)
            #expect(worker.stop() == 0)
        }
    }
}
