import Foundation
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// A machine of a libvirt test-driver node file.
struct WorkerMachine: Sendable, Hashable {
    var name: String
    var uuid: String
    /// `true`: the machine is running when the worker connects; `false`: shut off.
    var running: Bool
    var memoryKiB: Int = 524_288
    var vcpus: Int = 2

    /// The `<domain>` element of the node file.
    var nodeXML: String {
        """
          <domain type='test'>
            <name>\(name)</name>
            <uuid>\(uuid)</uuid>
            <memory unit='KiB'>\(memoryKiB)</memory>
            <currentMemory unit='KiB'>\(memoryKiB)</currentMemory>
            <vcpu>\(vcpus)</vcpu>
            <os><type>hvm</type></os>
        \(running ? "" : "    <test:runstate>5</test:runstate>\n")  </domain>
        """
    }

    /// A test-driver node file holding `machines`.
    static func nodeFile(_ machines: [WorkerMachine]) -> String {
        "<node xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
            + machines.map(\.nodeXML).joined(separator: "\n") + "\n</node>\n"
    }

    /// Shut off when the worker starts.
    static let web1 = WorkerMachine(name: "web1", uuid: "6695eb01-f6a4-8304-79aa-97f2502e1001", running: false)
    /// Shut off when the worker starts.
    static let web2 = WorkerMachine(name: "web2", uuid: "6695eb01-f6a4-8304-79aa-97f2502e1002", running: false, vcpus: 4)
    /// Running when the worker starts.
    static let db1 = WorkerMachine(name: "db1", uuid: "6695eb01-f6a4-8304-79aa-97f2502e1003", running: true, vcpus: 1)
    /// Running when the worker starts.
    static let cache1 = WorkerMachine(name: "cache1", uuid: "6695eb01-f6a4-8304-79aa-97f2502e1004", running: true)

    /// The machines a worker gets unless a test says otherwise.
    static let standard: [WorkerMachine] = [web1, web2, db1, cache1]

    /// Domain XML for `define`.
    static func domainXML(name: String, uuid: String? = nil, memoryKiB: Int = 65_536, vcpus: Int = 1) -> String {
        """
        <domain type='test'>
          <name>\(name)</name>
          \(uuid.map { "<uuid>\($0)</uuid>" } ?? "")
          <memory unit='KiB'>\(memoryKiB)</memory>
          <vcpu>\(vcpus)</vcpu>
          <os><type>hvm</type></os>
        </domain>
        """
    }
}

/// How to launch a worker.
struct WorkerLaunchOptions: Sendable {
    /// The worker id (`--worker-id`), used in its topics.
    var id: String = WorkerProcess.uniqueID()
    /// The machines of the worker's private test-driver node file.
    var machines: [WorkerMachine] = WorkerMachine.standard
    /// A libvirt URI to use instead of the node file's `test://` URI.
    var libvirtURI: String?
    /// A state file to use instead of one in the worker's own directory (to carry the state table
    /// from one worker run to the next).
    var stateFilePath: String?
    /// `--heartbeat-ms`.
    var heartbeatMs: Int = 200
    /// `--max-frame-bytes`, when set.
    var maxFrameBytes: Int?
    /// `--shutdown-grace-s`, when set.
    var shutdownGraceSeconds: Double?
    /// Anything else to pass.
    var extraArguments: [String] = []
}

/// Why the harness could not do what a test asked.
struct WorkerHarnessError: Error, CustomStringConvertible {
    var description: String
}

/// A real `ecp-worker` process on free TCP ports of 127.0.0.1, with a private test-driver node
/// file, state file and log in a fresh temporary directory.
///
/// ``start(_:readyTimeout:)`` returns once the worker answers `ping` on its control socket. The
/// process is sent SIGTERM by ``stop(timeout:)``; a worker still running when the object goes away
/// is killed (SIGKILL) and its directory removed. Where util-linux's `setpriv` exists, the worker
/// is also killed when the thread that started it ends (so a crashed test run leaves no worker
/// behind): start workers on the thread that uses them, as ``WorkerTestThread`` bodies do.
final class WorkerProcess: @unchecked Sendable {
    // Safety of @unchecked Sendable: every stored property is set in `init` and never changed;
    // `Process` is only read (pid, status) after launch, and exit is observed through a semaphore.

    let options: WorkerLaunchOptions
    /// The worker id.
    var id: String { options.id }
    /// The temporary directory holding the node file, state file and log.
    let directory: URL
    let nodeFilePath: String
    let stateFilePath: String
    let logPath: String
    /// The libvirt URI the worker was given.
    let libvirtURI: String
    /// Where the worker's commands SUB socket listens (the test's PUB connects here).
    let commandsAddress: String
    /// Where the worker's events PUB socket listens.
    let eventsAddress: String
    /// Where the worker's control ROUTER socket listens.
    let controlAddress: String
    /// The full command line after the executable.
    let arguments: [String]

    private let process: Process
    private let exit = ExitState()

    /// How the process ended; filled in by the termination handler, which must not hold the
    /// `WorkerProcess` itself (that would keep it alive for ever).
    private final class ExitState: @unchecked Sendable {
        let semaphore = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var _status: Int32?
        private var _bySignal = false

        func record(status: Int32, bySignal: Bool) {
            lock.withLock {
                _status = status
                _bySignal = bySignal
            }
            semaphore.signal()
        }

        var status: Int32? { lock.withLock { _status } }
        var bySignal: Bool { lock.withLock { _bySignal } }
    }

    /// The process id.
    var pid: Int32 { process.processIdentifier }

    // MARK: launching

    /// Launches a worker and waits (at most `readyTimeout`) until it answers `ping` on its control
    /// socket. A worker that exits before it is ready (a port taken between the search for free
    /// ports and the bind) is launched again on new ports, up to three times.
    static func start(_ options: WorkerLaunchOptions = .init(), readyTimeout: Duration = .seconds(15)) throws -> WorkerProcess {
        var lastError: (any Error)?
        for _ in 0..<3 {
            let worker = try WorkerProcess(options: options)
            do {
                try worker.waitUntilReady(timeout: readyTimeout)
                return worker
            } catch let error as WorkerHarnessError {
                lastError = error
                // Only a socket that could not be opened (a port taken meanwhile) is worth another
                // try; a worker alive but not answering, or one refusing its options, is not.
                if worker.isRunning || !worker.log.contains("cannot open the worker's sockets") { throw error }
            }
        }
        throw lastError ?? WorkerHarnessError(description: "the worker could not be started")
    }

    /// Starts a worker with the given id and otherwise default options.
    static func start(id: String, machines: [WorkerMachine] = WorkerMachine.standard) throws -> WorkerProcess {
        var options = WorkerLaunchOptions()
        options.id = id
        options.machines = machines
        return try start(options)
    }

    private init(options: WorkerLaunchOptions) throws {
        self.options = options
        let binary = try Self.binaryURL()
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ecp-worker-e2e-\(options.id)-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        nodeFilePath = directory.appendingPathComponent("node.xml").path
        stateFilePath = options.stateFilePath ?? directory.appendingPathComponent("state.json").path
        logPath = directory.appendingPathComponent("worker.log").path
        try WorkerMachine.nodeFile(options.machines).write(toFile: nodeFilePath, atomically: true, encoding: .utf8)
        libvirtURI = options.libvirtURI ?? "test://\(nodeFilePath)"

        let ports = try Self.freePorts(3)
        commandsAddress = "tcp://127.0.0.1:\(ports[0])"
        eventsAddress = "tcp://127.0.0.1:\(ports[1])"
        controlAddress = "tcp://127.0.0.1:\(ports[2])"

        var arguments = [
            "--worker-id", options.id,
            "--libvirt-uri", libvirtURI,
            "--commands=@\(commandsAddress)",
            "--events=@\(eventsAddress)",
            "--control=@\(controlAddress)",
            "--state-file", stateFilePath,
            "--heartbeat-ms", String(options.heartbeatMs),
            "--log-format", "json",
            "--log-level", "debug",
        ]
        if let bytes = options.maxFrameBytes { arguments += ["--max-frame-bytes", String(bytes)] }
        if let grace = options.shutdownGraceSeconds { arguments += ["--shutdown-grace-s", String(grace)] }
        arguments += options.extraArguments
        self.arguments = arguments

        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process = Process()
        // With setpriv the worker gets SIGKILL when the thread that launched it ends, so a test
        // process that crashes leaves no worker behind; setpriv execs the worker in place, so the
        // process id and exit status are the worker's own.
        if FileManager.default.isExecutableFile(atPath: Self.setpriv) {
            process.executableURL = URL(fileURLWithPath: Self.setpriv)
            process.arguments = ["--pdeathsig", "KILL", "--", binary.path] + arguments
        } else {
            process.executableURL = binary
            process.arguments = arguments
        }
        process.currentDirectoryURL = directory
        // The worker reads defaults from ECP_* variables: the test's own environment must not leak in.
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ECP_") }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        process.terminationHandler = { [exit] p in
            exit.record(status: p.terminationStatus, bySignal: p.terminationReason == .uncaughtSignal)
        }
        try process.run()
        try? log.close()
    }

    deinit {
        if isRunning {
            kill(process.processIdentifier, SIGKILL)
            _ = exit.semaphore.wait(timeout: .now() + 5)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Pings the control socket until the worker answers, the process exits, or `timeout` passes.
    private func waitUntilReady(timeout: Duration) throws {
        let context = try Context()
        let dealer = try context.makeSocket(.dealer)
        defer { dealer.close() }
        try dealer.setLinger(milliseconds: 0)
        try dealer.connect(controlAddress)
        let deadline = ContinuousClock.now + timeout
        var attempt = 0
        while ContinuousClock.now < deadline {
            if !isRunning {
                throw WorkerHarnessError(
                    description: "the worker exited with status \(terminationStatus.map(String.init) ?? "?") before it was ready\n\(logTail())")
            }
            attempt += 1
            let ping = #"{"v":1,"id":"ready-\#(attempt)","op":"ping"}"#
            try dealer.send([Data(), Data(ping.utf8)], dontWait: true)
            let until = ContinuousClock.now + .milliseconds(250)
            while ContinuousClock.now < until {
                let events = try poll([.socket(dealer)], timeoutMs: 50)
                if events[0].contains(.readable), let reply = try dealer.receive(dontWait: true),
                    let body = reply.last, String(decoding: body, as: UTF8.self).contains("\"result\"")
                {
                    return
                }
            }
        }
        throw WorkerHarnessError(description: "the worker did not answer ping on \(controlAddress) within \(timeout)\n\(logTail())")
    }

    // MARK: stopping

    /// Whether the process is still running.
    var isRunning: Bool { exit.status == nil }

    /// The exit status (or the signal number when killed by one), once the process has exited.
    var terminationStatus: Int32? { exit.status }

    /// Whether the process ended through an uncaught signal.
    var terminatedBySignal: Bool { exit.bySignal }

    /// Sends a signal to the worker.
    func signal(_ signal: Int32 = SIGTERM) {
        if isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits for the process to exit; returns its status, or nil when it is still running after `timeout`.
    @discardableResult
    func waitForExit(timeout: Duration = .seconds(15)) -> Int32? {
        if let status = terminationStatus { return status }
        let ms = Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard exit.semaphore.wait(timeout: .now() + .milliseconds(ms)) == .success else { return nil }
        exit.semaphore.signal()  // leave it signalled for any later waiter
        return terminationStatus
    }

    /// SIGTERM, then waits for the exit. Returns the exit status (the negated signal number when
    /// a signal ended it); nil when the worker did not exit in time (it is then killed).
    @discardableResult
    func stop(timeout: Duration = .seconds(15)) -> Int32? {
        signal(SIGTERM)
        if let status = waitForExit(timeout: timeout) { return terminatedBySignal ? -status : status }
        kill(process.processIdentifier, SIGKILL)
        _ = waitForExit(timeout: .seconds(5))
        return nil
    }

    // MARK: the log

    /// Everything the worker wrote to standard error (JSON log lines) and standard output.
    var log: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// The last `lines` lines of the log, introduced by the worker id, for failure messages.
    func logTail(lines: Int = 40) -> String {
        let all = log.split(separator: "\n", omittingEmptySubsequences: true)
        let tail = all.suffix(lines).joined(separator: "\n")
        return "--- worker \(id) log (last \(min(lines, all.count)) of \(all.count) lines) ---\n\(tail)\n--- end of log ---"
    }

    // MARK: helpers

    /// util-linux's setpriv, used to tie the worker's life to the launching thread's.
    static let setpriv = "/usr/bin/setpriv"

    /// A fresh worker id: `w` and 10 hexadecimal digits, so logs of parallel tests stay apart.
    static func uniqueID(prefix: String = "w") -> String {
        prefix + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
    }

    /// `count` distinct free TCP ports on 127.0.0.1, found by binding ZeroMQ sockets to port `*`
    /// and reading back the port the kernel picked.
    static func freePorts(_ count: Int) throws -> [Int] {
        let context = try Context()
        var sockets: [Socket] = []
        defer { for s in sockets { s.close() } }
        var ports: [Int] = []
        for _ in 0..<count {
            let socket = try context.makeSocket(.router)
            try socket.setLinger(milliseconds: 0)
            try socket.bind("tcp://127.0.0.1:*")
            sockets.append(socket)
            let endpoint = try socket.lastEndpoint
            guard let port = endpoint.split(separator: ":").last.flatMap({ Int($0) }) else {
                throw WorkerHarnessError(description: "cannot read a port from \(endpoint)")
            }
            ports.append(port)
        }
        return ports
    }

    /// The `ecp-worker` executable: `ECP_WORKER_BIN`, else the one built next to the test bundle
    /// (the scratch path this test run was built in), else `<package>/.build/debug/ecp-worker`.
    static func binaryURL() throws -> URL {
        if let cached = binaryCache.url { return cached }
        let url = try findBinary()
        binaryCache.url = url
        return url
    }

    private final class BinaryCache: @unchecked Sendable {
        private let lock = NSLock()
        private var _url: URL?
        var url: URL? {
            get { lock.withLock { _url } }
            set { lock.withLock { _url = newValue } }
        }
    }

    private static let binaryCache = BinaryCache()

    private static func findBinary() throws -> URL {
        let fm = FileManager.default
        var candidates: [URL] = []
        if let path = ProcessInfo.processInfo.environment["ECP_WORKER_BIN"], !path.isEmpty {
            let url = URL(fileURLWithPath: path)
            guard fm.isExecutableFile(atPath: url.path) else {
                throw WorkerHarnessError(description: "ECP_WORKER_BIN=\(path) is not an executable file")
            }
            return url
        }
        // The test bundle lives in the build directory (…/<scratch>/<triple>/debug/), next to the
        // package's executables; walk up from it a little in case it is nested (a macOS bundle).
        var executables = [URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()]
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            executables.append(URL(fileURLWithPath: exe))
        }
        executables.append(Bundle.main.bundleURL)
        for exe in executables {
            var dir = exe.deletingLastPathComponent()
            for _ in 0..<4 {
                candidates.append(dir.appendingPathComponent("ecp-worker"))
                dir = dir.deletingLastPathComponent()
            }
        }
        // The package root, found from this source file.
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if fm.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
                candidates.append(dir.appendingPathComponent(".build/debug/ecp-worker"))
                break
            }
            dir = dir.deletingLastPathComponent()
        }
        for candidate in candidates where fm.isExecutableFile(atPath: candidate.path) {
            var isDirectory: ObjCBool = false
            if fm.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                return candidate
            }
        }
        throw WorkerHarnessError(
            description: "ecp-worker not found; build it (swift build) or set ECP_WORKER_BIN. Looked at:\n"
                + candidates.map(\.path).joined(separator: "\n"))
    }
}
