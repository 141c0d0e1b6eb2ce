import Foundation
import WorkerLauncher

#if canImport(Glibc)
import Glibc
#endif

/// A machine of a libvirt test-driver node file.
typealias WorkerMachine = TestDriverMachine

extension TestDriverMachine {
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
        TestDriverNode.defineXML(name: name, uuid: uuid, memoryKiB: memoryKiB, vcpus: vcpus)
    }
}

/// How to launch a worker.
struct WorkerLaunchOptions: Sendable {
    /// How the harness knows the worker is up.
    enum Readiness: Sendable {
        /// It answers `ping` on its control socket, in its own name.
        case ping
        /// Its log holds this text (a CURVE worker answers no plain client).
        case logLine(String)
    }

    /// The worker id (`--worker-id`), used in its topics.
    var id: String = WorkerProcess.uniqueID()
    /// The machines of the worker's private test-driver node file.
    var machines: [WorkerMachine] = WorkerMachine.standard
    /// A libvirt URI to use instead of the node file's `test://` URI.
    var libvirtURI: String?
    /// A state file to use instead of one in the worker's own directory (to carry the state table
    /// from one worker run to the next).
    var stateFilePath: String?
    /// Whether the worker has a commands socket (`--commands=@…`) or none (`--commands none`).
    var commandsSocket = true
    /// `--heartbeat-ms`, when set.
    var heartbeatMs: Int? = 200
    /// `--log-format` and `--log-level`, when set (nil: the worker's defaults).
    var logFormat: String? = "json"
    var logLevel: String? = "debug"
    /// `--max-frame-bytes`, when set.
    var maxFrameBytes: Int?
    /// `--shutdown-grace-s`, when set.
    var shutdownGraceSeconds: Double?
    /// The file mode creation mask the worker runs under, when set.
    var umask: mode_t?
    var readiness: Readiness = .ping
    /// Standard error to a pipe (``WorkerProcess/standardErrorReader``) instead of the log file,
    /// which then holds only standard output.
    var standardErrorPipe = false
    /// Kill the worker when the thread that launched it ends (where `setpriv` exists).
    var diesWithLaunchingThread = true
    /// Anything else to pass (after the harness's own options: the last occurrence wins).
    var extraArguments: [String] = []
    /// The soft limit on open descriptors the worker starts under; nil keeps the test's.
    var openFileSoftLimit: Int?
}

/// Why the harness could not do what a test asked.
struct WorkerHarnessError: Error, CustomStringConvertible {
    var description: String
}

/// A real `ecp-worker` process on free TCP ports of 127.0.0.1, with a private test-driver node
/// file, state file and log in a fresh temporary directory: the one way the end-to-end tests
/// start a worker.
///
/// ``start(_:readyTimeout:)`` returns once the worker is ready (``WorkerLaunchOptions/Readiness``);
/// ``launch(_:)`` does not wait. The process is sent SIGTERM by ``stop(timeout:)``; a worker still
/// running when the object goes away is killed (SIGKILL) and its directory removed. Where
/// util-linux's `setpriv` exists, the worker is also killed when the thread that started it ends
/// (so a crashed test run leaves no worker behind): start workers on the thread that uses them,
/// as ``WorkerTestThread`` bodies do.
final class WorkerProcess: Sendable {
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
    /// Where the worker's commands SUB socket listens (the test's PUB connects here); unused
    /// without a commands socket.
    let commandsAddress: String
    /// Where the worker's events PUB socket listens.
    let eventsAddress: String
    /// Where the worker's control ROUTER socket listens.
    let controlAddress: String
    /// The full command line after the executable.
    let arguments: [String]

    private let process: SpawnedWorker

    /// The process id (the worker's own: the wrappers exec it in place).
    var pid: Int32 { process.pid }

    // MARK: launching

    /// Launches a worker and waits (at most `readyTimeout`) until it is ready. A worker that
    /// exits before it is ready because a port was taken between the search for free ports and
    /// the bind is launched again on new ports, up to three times.
    static func start(_ options: WorkerLaunchOptions = .init(), readyTimeout: Duration = .seconds(15)) throws -> WorkerProcess {
        var lastError: (any Error)?
        for _ in 0..<3 {
            let worker = try WorkerProcess(options: options)
            do {
                try worker.waitUntilReady(timeout: readyTimeout)
                return worker
            } catch {
                lastError = error
                // Only a socket that could not be opened (a port taken meanwhile) is worth another
                // try; a worker alive but not answering, or one refusing its options, is not.
                if !worker.process.failedToOpenSockets { throw error }
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

    /// Launches a worker without waiting for it (one that should refuse to start).
    static func launch(_ options: WorkerLaunchOptions = .init()) throws -> WorkerProcess {
        try WorkerProcess(options: options)
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
        try TestDriverNode.xml(options.machines).write(toFile: nodeFilePath, atomically: true, encoding: .utf8)
        libvirtURI = options.libvirtURI ?? "test://\(nodeFilePath)"

        let ports = try SpawnedWorker.freePorts(3)
        commandsAddress = "tcp://127.0.0.1:\(ports[0])"
        eventsAddress = "tcp://127.0.0.1:\(ports[1])"
        controlAddress = "tcp://127.0.0.1:\(ports[2])"

        var arguments = [
            "--worker-id", options.id,
            "--libvirt-uri", libvirtURI,
        ]
        arguments += options.commandsSocket ? ["--commands=@\(commandsAddress)"] : ["--commands", "none"]
        arguments += [
            "--events=@\(eventsAddress)",
            "--control=@\(controlAddress)",
            "--state-file", stateFilePath,
        ]
        if let ms = options.heartbeatMs { arguments += ["--heartbeat-ms", String(ms)] }
        if let format = options.logFormat { arguments += ["--log-format", format] }
        if let level = options.logLevel { arguments += ["--log-level", level] }
        if let bytes = options.maxFrameBytes { arguments += ["--max-frame-bytes", String(bytes)] }
        if let grace = options.shutdownGraceSeconds { arguments += ["--shutdown-grace-s", String(grace)] }
        // Workers run side by side in the tests: none takes the metrics endpoint's fixed default
        // port unless a test asks for the endpoint.
        if !options.extraArguments.contains(where: { $0.hasPrefix("--metrics") }) { arguments += ["--metrics", "none"] }
        arguments += options.extraArguments
        self.arguments = arguments

        process = try SpawnedWorker(
            binary: binary.path, arguments: arguments, logPath: logPath, directory: directory.path, umask: options.umask,
            diesWithThread: options.diesWithLaunchingThread, standardErrorPipe: options.standardErrorPipe,
            openFileSoftLimit: options.openFileSoftLimit)
    }

    deinit {
        if isRunning {
            process.signal(SIGKILL)
            process.waitForExit(timeout: .seconds(5))
        }
        try? FileManager.default.removeItem(at: directory)
    }

    private func waitUntilReady(timeout: Duration) throws {
        switch options.readiness {
        case .ping:
            do {
                try process.waitUntilAnswersPing(control: controlAddress, workerID: id, timeout: timeout)
            } catch let error as WorkerLaunchError {
                throw WorkerHarnessError(description: "worker \(id): \(error.description)")
            }
        case .logLine(let text):
            guard process.waitForLog(timeout: timeout, { $0.contains(text) }) else {
                throw WorkerHarnessError(
                    description: "the worker did not log \(text.debugDescription) (exit status \(terminationStatus.map(String.init) ?? "none"))\n\(logTail())")
            }
        }
    }

    // MARK: stopping

    /// Whether the process is still running.
    var isRunning: Bool { process.isRunning }

    /// The exit status (or the signal number when killed by one), once the process has exited.
    var terminationStatus: Int32? { process.exit?.code }

    /// Whether the process ended through an uncaught signal.
    var terminatedBySignal: Bool { process.exit?.bySignal ?? false }

    /// Sends a signal to the worker.
    func signal(_ signal: Int32 = SIGTERM) {
        process.signal(signal)
    }

    /// Waits for the process to exit; returns its status (the signal number when a signal ended
    /// it), or nil when it is still running after `timeout`.
    @discardableResult
    func waitForExit(timeout: Duration = .seconds(15)) -> Int32? {
        process.waitForExit(timeout: timeout)?.code
    }

    /// SIGTERM, then waits for the exit. Returns the exit status (the negated signal number when
    /// a signal ended it); nil when the worker did not exit in time (it is then killed).
    @discardableResult
    func stop(timeout: Duration = .seconds(15)) -> Int32? {
        process.stop(timeout: timeout)?.status
    }

    // MARK: the log

    /// The read end of the worker's standard error, with ``WorkerLaunchOptions/standardErrorPipe``.
    var standardErrorReader: FileHandle? { process.standardErrorReader }

    /// Everything the worker wrote to standard error (JSON log lines) and standard output.
    var log: String { process.log }

    /// The log's bytes as written.
    var logBytes: Data { FileManager.default.contents(atPath: logPath) ?? Data() }

    /// The last `lines` lines of the log, introduced by the worker id, for failure messages.
    func logTail(lines: Int = 40) -> String {
        process.logTail(lines: lines, title: "worker \(id) log")
    }

    /// Waits until the log satisfies `predicate`, the process exits, or `timeout` passes.
    func waitForLog(timeout: Duration = .seconds(10), _ predicate: (String) -> Bool) -> Bool {
        process.waitForLog(timeout: timeout, predicate)
    }

    // MARK: helpers

    /// A fresh worker id: `w` and 10 hexadecimal digits, so logs of parallel tests stay apart.
    static func uniqueID(prefix: String = "w") -> String {
        prefix + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10).lowercased()
    }

    /// The `ecp-worker` executable (`ECP_WORKER_BIN`, see ``BuiltExecutable``).
    static func binaryURL() throws -> URL {
        try BuiltExecutable.url("ecp-worker", variable: "ECP_WORKER_BIN")
    }
}
