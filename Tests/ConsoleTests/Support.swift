import ECPConsole
import ECPProtocol
import Foundation
import Logging
import WorkerLauncher
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

struct ConsoleTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The package's root, from this file's place.
let packageRoot: URL = {
    var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    while url.path != "/" {
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        url.deleteLastPathComponent()
    }
    return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
}()

/// `ecp-worker`: $ECP_WORKER_BIN, else beside the test binary, else the debug build.
func workerBinary() throws -> String { try builtBinary("ecp-worker", variable: "ECP_WORKER_BIN") }

/// `ecp-console`: $ECP_CONSOLE_BIN, else beside the test binary, else the debug build.
func consoleBinary() throws -> String { try builtBinary("ecp-console", variable: "ECP_CONSOLE_BIN") }

func builtBinary(_ name: String, variable: String) throws -> String {
    if let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty { return path }
    var candidates: [String] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(dir.appendingPathComponent(name).path)
            dir.deleteLastPathComponent()
        }
    }
    candidates.append(packageRoot.appendingPathComponent(".build/debug/\(name)").path)
    for path in candidates {
        var isDirectory: ObjCBool = false
        if FileManager.default.isExecutableFile(atPath: path), FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory),
            !isDirectory.boolValue
        {
            return path
        }
    }
    throw ConsoleTestError("\(name) not found (swift build --product \(name), or set \(variable)): \(candidates)")
}

/// A real worker on a test-driver node file of its own, on fixed free ports so that it can be
/// started again where the console expects it.
final class TestWorker: @unchecked Sendable {
    let id: String
    let directory: URL
    let controlAddress: String
    let eventsAddress: String
    let machines: [TestDriverMachine]
    let extra: [String]
    private(set) var process: SpawnedWorker?
    private var starts = 0

    init(id: String, machines: [TestDriverMachine], extra: [String] = []) throws {
        self.id = id
        self.extra = extra
        self.machines = machines
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ecp-console-test-\(id)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try TestDriverNode.xml(machines).write(to: directory.appendingPathComponent("node.xml"), atomically: true, encoding: .utf8)
        let ports = try SpawnedWorker.freePorts(2)
        controlAddress = "tcp://127.0.0.1:\(ports[0])"
        eventsAddress = "tcp://127.0.0.1:\(ports[1])"
    }

    var spec: WorkerSpec {
        get throws { try WorkerSpec(parsing: "\(id)=\(controlAddress),\(eventsAddress)") }
    }

    func start() throws {
        starts += 1
        let process = try SpawnedWorker(
            binary: try workerBinary(),
            arguments: [
                "--worker-id", id, "--libvirt-uri", "test://" + directory.appendingPathComponent("node.xml").path,
                "--commands", "none", "--events=@\(eventsAddress)", "--control=@\(controlAddress)",
                "--state-file", directory.appendingPathComponent("state.json").path, "--heartbeat-ms", "200",
                "--stats-interval-ms", "0", "--metrics", "none",
            ] + extra,
            logPath: directory.appendingPathComponent("worker-\(starts).log").path, directory: directory.path)
        self.process = process
        try process.waitUntilAnswersPing(control: controlAddress, workerID: id, timeout: .seconds(20))
    }

    func kill() {
        process?.signal(SIGKILL)
        _ = process?.waitForExit(timeout: .seconds(10))
    }

    func stop() {
        _ = process?.stop(timeout: .seconds(15))
    }

    /// One command on the control socket, and its reply.
    func command(_ op: String, machine: String? = nil) throws -> JSONValue {
        let context = try Context()
        let socket = try context.makeSocket(.dealer)
        defer { socket.close() }
        try socket.setLinger(milliseconds: 0)
        try socket.connect(controlAddress)
        let id = "t-\(UInt32.random(in: 0...UInt32.max))"
        var document = "{\"v\":1,\"id\":\"\(id)\",\"op\":\"\(op)\""
        if let machine { document += ",\"machine\":\"\(machine)\"" }
        document += "}"
        guard try socket.send([Data(), Data(document.utf8)]) else { throw ConsoleTestError("cannot send \(op)") }
        let events = try poll([.socket(socket)], timeoutMs: 10_000)
        guard events[0].contains(.readable), let frames = try socket.receive(), let body = frames.last,
            let reply = JSONValue.parse(bytes: Array(body))
        else { throw ConsoleTestError("no reply to \(op)") }
        return reply
    }

    deinit {
        if process?.isRunning == true { kill() }
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Waits until `condition` holds, checking every 20 ms; false after `timeout`.
func eventually(_ timeout: Duration = .seconds(15), _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        usleep(20_000)
    }
    return try condition()
}

/// The console's state as the page gets it.
func snapshot(_ state: ConsoleState) -> JSONValue {
    JSONValue.parse(bytes: state.snapshotJSON(csrf: "t", user: nil)) ?? .null
}

func host(_ state: ConsoleState, _ id: String) -> JSONValue? {
    snapshot(state)["hosts"]?.arrayValue?.first { $0["id"]?.stringValue == id }
}

func machineState(_ state: ConsoleState, host id: String, _ name: String) -> String? {
    guard let machine = host(state, id)?["machines"]?.arrayValue?.first(where: { $0["name"]?.stringValue == name }) else { return nil }
    if machine["undefined"]?.boolValue == true { return "undefined" }
    return machine["state"]?.stringValue
}

let quietLogger: Logger = {
    var logger = Logger(label: "console-test") { _ in SwiftLogNoOpLogHandler() }
    logger.logLevel = .critical
    return logger
}()

/// A small HTTP/1.1 client over a plain socket (Connection: close).
struct HTTPReply {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]
    var json: JSONValue? { JSONValue.parse(bytes: body) }
}

func http(_ method: String, port: Int, _ path: String, headers: [String: String] = [:], body: [UInt8] = []) throws -> HTTPReply {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ConsoleTestError("socket") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw ConsoleTestError("cannot connect to 127.0.0.1:\(port)") }
    var all = ["Host": "127.0.0.1:\(port)", "Connection": "close", "Content-Length": "\(body.count)"]
    all.merge(headers) { _, new in new }
    var request = "\(method) \(path) HTTP/1.1\r\n"
    for (k, v) in all { request += "\(k): \(v)\r\n" }
    request += "\r\n"
    let bytes = Array(request.utf8) + body
    _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        received += buffer[0..<n]
    }
    guard let split = received.indices.first(where: { i in
        i + 3 < received.count && received[i] == 13 && received[i + 1] == 10 && received[i + 2] == 13 && received[i + 3] == 10
    }) else { throw ConsoleTestError("no HTTP answer") }
    let head = String(decoding: received[0..<split], as: UTF8.self).components(separatedBy: "\r\n")
    let status = Int(head[0].split(separator: " ")[1]) ?? 0
    var headerMap: [String: String] = [:]
    for line in head.dropFirst() {
        if let colon = line.firstIndex(of: ":") {
            headerMap[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
    }
    return HTTPReply(status: status, headers: headerMap, body: Array(received[(split + 4)...]))
}

/// CURVE keys for the tests.
enum ZeroMQCurve {
    /// A new key pair's public key.
    static func pair() throws -> String { try CurveKeyPair.generate().publicKey }
}

/// Runs blocking `body` on a thread of its own and waits for it without holding a thread of
/// Swift's cooperative pool.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            do {
                continuation.resume(returning: try body())
            } catch {
                continuation.resume(throwing: error)
            }
        }
        thread.stackSize = 1 << 20
        thread.start()
    }
}

/// An `ecp-console` process on a free port of 127.0.0.1; its log lines are kept.
final class ConsoleProcess: @unchecked Sendable {
    let process = Process()
    private(set) var port = 0
    private let lock = NSLock()
    private var lines: [String] = []

    init(arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: try consoleBinary())
        process.arguments = ["--listen", "127.0.0.1:0"] + arguments
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ECP_") }
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let reader = pipe.fileHandleForReading
        let ready = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            var pending = Data()
            var signalled = false
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                pending += chunk
                while let newline = pending.firstIndex(of: 0x0A) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending = Data(pending[pending.index(after: newline)...])
                    lock.withLock { lines.append(line) }
                    if !signalled, line.contains("\"console listening\""), let url = JSONValue.parse(bytes: Array(line.utf8))?["http.url"]?.stringValue,
                        let port = Int(url.split(separator: ":").last?.filter(\.isNumber) ?? "")
                    {
                        lock.withLock { self.port = port }
                        signalled = true
                        ready.signal()
                    }
                }
            }
            if !signalled { ready.signal() }
        }
        thread.start()
        _ = ready.wait(timeout: .now() + 30)
        guard lock.withLock({ port }) != 0 else {
            process.terminate()
            throw ConsoleTestError("the console did not start:\n\(log)")
        }
    }

    var log: String { lock.withLock { lines.joined(separator: "\n") } }

    /// The log lines decoded.
    var entries: [JSONValue] { lock.withLock { lines.compactMap { JSONValue.parse(bytes: Array($0.utf8)) } } }

    /// SIGTERM; the exit status.
    func stop() -> Int32 {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}
