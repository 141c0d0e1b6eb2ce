import Foundation
import Synchronization
import Testing
import WorkerLauncher
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Process helpers for the ecpctl end-to-end tests: finding the binaries, running ecpctl and
// following its output, a real worker on the libvirt test driver in ecpctl's terms, picking free ports,
// and fake ZeroMQ peers for replies a real worker never sends.

// MARK: - Paths

/// Where the package and its built binaries are.
enum CtlPaths {
    /// The package root.
    static func packageRoot() -> URL { BuiltExecutable.packageRoot }

    /// The ecpctl executable (`ECPCTL_BIN`).
    static func ecpctl() throws -> URL { try BuiltExecutable.url("ecpctl", variable: "ECPCTL_BIN") }

    /// A new, empty temporary directory.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ecpctl-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// A failure of the test harness itself (not of the software under test).
struct CtlHarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Ports

/// Free TCP ports on the loopback interface.
enum CtlPorts {
    /// A port that was free a moment ago. It is drawn at random below Linux's ephemeral range
    /// (where `bind(0)` and outgoing connections take theirs), so tests that pick ports in
    /// parallel rarely collide; whoever binds it later can still lose a race, which callers
    /// must detect.
    static func free() throws -> Int {
        for _ in 0..<200 {
            let port = Int.random(in: 20_000..<32_000)
            if try bindable(port) { return port }
        }
        throw CtlHarnessError("no free port found in 20000..<32000")
    }

    /// Whether 127.0.0.1:`port` can be bound now.
    static func bindable(_ port: Int) throws -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CtlHarnessError("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return bound == 0
    }
}

// MARK: - Processes

/// What a finished process left behind.
struct CtlResult: Sendable, CustomStringConvertible {
    /// The exit status, or the signal number when ``signalled``.
    var status: Int32
    /// Whether a signal ended the process.
    var signalled: Bool
    /// Standard output, as UTF-8.
    var stdout: String
    /// Standard error, as UTF-8.
    var stderr: String
    /// Whether the harness had to kill the process because it ran past its limit.
    var killed: Bool
    /// From launch to exit.
    var elapsed: Duration

    /// Standard output's lines, without the empty last one.
    var stdoutLines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).dropLastEmpty() }
    /// Standard error's lines, without the empty last one.
    var stderrLines: [String] { stderr.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).dropLastEmpty() }

    var description: String {
        "status \(status)\(signalled ? " (signal)" : "")\(killed ? " (killed)" : "") after \(elapsed)\n"
            + "--- stdout ---\n\(stdout)--- stderr ---\n\(stderr)"
    }
}

extension Array where Element == String {
    fileprivate func dropLastEmpty() -> [String] {
        last == "" ? Array(dropLast()) : self
    }
}

/// A one-way channel to or from a child (a socket pair: it can be made close-on-exec
/// atomically), so children started at the same moment never inherit its descriptors.
struct CtlPipe {
    /// The reading end.
    let read: FileHandle
    /// The writing end.
    let write: FileHandle

    init() throws {
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw CtlHarnessError("socketpair() failed: errno \(errno)")
        }
        read = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        write = FileHandle(fileDescriptor: fds[1], closeOnDealloc: true)
    }
}

/// What a running process has printed so far.
struct CtlSnapshot: Sendable {
    var stdout: String
    var stderr: String
    /// The process has exited and both output pipes are closed: nothing more will come.
    var finished: Bool
}

/// A child process whose output is collected as it comes, so a test can wait for a line.
///
/// Waits are always bounded; a predicate is checked whenever output arrives or the process
/// ends, never by polling.
final class CtlProcess: Sendable {
    private struct Waiter {
        var predicate: @Sendable (CtlSnapshot) -> Bool
        var continuation: CheckedContinuation<Bool, Never>
        var timer: Task<Void, Never>?
    }

    private struct State {
        var stdout = Data()
        var stderr = Data()
        var stdoutClosed = false
        var stderrClosed = false
        var status: Int32?
        var signalled = false
        var ended: ContinuousClock.Instant?
        var waiters: [UInt64: Waiter] = [:]
        var nextWaiter: UInt64 = 0
        var killed = false

        var finished: Bool { status != nil && stdoutClosed && stderrClosed }

        var snapshot: CtlSnapshot {
            CtlSnapshot(
                stdout: String(decoding: stdout, as: UTF8.self), stderr: String(decoding: stderr, as: UTF8.self),
                finished: finished)
        }
    }

    private let process: Process
    private let state = Mutex(State())
    private let started: ContinuousClock.Instant

    /// The child's process id.
    var pid: Int32 { process.processIdentifier }

    private init(process: Process, started: ContinuousClock.Instant) {
        self.process = process
        self.started = started
    }

    /// Starts `executable`, collecting its output. `stdin` is written and closed; without it
    /// the child reads `/dev/null`.
    static func launch(
        _ executable: URL, _ arguments: [String], environment: [String: String] = CtlProcess.cleanEnvironment(),
        stdin: Data? = nil
    ) throws -> CtlProcess {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        let child = CtlProcess(process: process, started: .now)

        // Pipes are made close-on-exec, so that children started at the same moment by other
        // tests never inherit their write ends (which would hold back the end of output).
        let input = try stdin.map { _ in try CtlPipe() }
        process.standardInput = input?.read ?? FileHandle.nullDevice
        var parentCopies: [FileHandle] = []
        if let input { parentCopies.append(input.read) }
        let out = try CtlPipe()
        let err = try CtlPipe()
        process.standardOutput = out.write
        process.standardError = err.write
        parentCopies += [out.write, err.write]
        child.drain(out.read, toStderr: false)
        child.drain(err.read, toStderr: true)
        process.terminationHandler = { process in
            child.ended(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal)
        }
        defer {
            for handle in parentCopies { try? handle.close() }
        }
        try process.run()
        if let input, let stdin {
            input.write.write(stdin)
            try? input.write.close()
        }
        return child
    }

    /// This process's environment without ECP_/ECPCTL_ settings or NO_COLOR, plus `extra`.
    static func cleanEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment.filter {
            !$0.key.hasPrefix("ECP_") && !$0.key.hasPrefix("ECPCTL_") && $0.key != "NO_COLOR"
        }
        environment.merge(extra) { _, new in new }
        return environment
    }

    /// Reads a channel to its end on a thread of its own (blocking reads: every byte and the
    /// end of output are seen, however busy the process is). The thread keeps the handle open.
    private func drain(_ handle: FileHandle, toStderr: Bool) {
        let thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(handle.fileDescriptor, $0.baseAddress, $0.count) }
                if count > 0 {
                    self.append(Data(buffer[0..<count]), toStderr: toStderr)
                } else if count < 0 && errno == EINTR {
                    continue
                } else {
                    break
                }
            }
            self.append(Data(), toStderr: toStderr)
            try? handle.close()
        }
        thread.start()
    }

    /// Adds output; empty data marks the end of the channel.
    private func append(_ data: Data, toStderr: Bool) {
        update { state in
            if toStderr {
                if data.isEmpty { state.stderrClosed = true } else { state.stderr.append(data) }
            } else {
                if data.isEmpty { state.stdoutClosed = true } else { state.stdout.append(data) }
            }
        }
    }

    private func ended(status: Int32, signalled: Bool) {
        update { state in
            state.status = status
            state.signalled = signalled
            state.ended = .now
        }
    }

    /// Changes the state, then resumes the waiters whose predicate now holds (with `true`) or
    /// can never hold (with `false`, once the process has finished).
    private func update(_ change: (inout State) -> Void) {
        let ready: [(CheckedContinuation<Bool, Never>, Bool)] = state.withLock { state in
            change(&state)
            let snapshot = state.snapshot
            var ready: [(CheckedContinuation<Bool, Never>, Bool)] = []
            for (key, waiter) in state.waiters {
                let holds = waiter.predicate(snapshot)
                if holds || snapshot.finished {
                    waiter.timer?.cancel()
                    ready.append((waiter.continuation, holds))
                    state.waiters[key] = nil
                }
            }
            return ready
        }
        for (continuation, value) in ready { continuation.resume(returning: value) }
    }

    /// Waits until `predicate` holds for the output so far: `true`; `false` when the process
    /// finished without it or `limit` passed.
    func waitUntil(within limit: Duration, _ predicate: @escaping @Sendable (CtlSnapshot) -> Bool) async -> Bool {
        let key = state.withLock { state -> UInt64 in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return await withCheckedContinuation { continuation in
            let immediate: Bool? = state.withLock { state in
                let snapshot = state.snapshot
                if predicate(snapshot) { return true }
                if snapshot.finished { return false }
                state.waiters[key] = Waiter(predicate: predicate, continuation: continuation)
                return nil
            }
            if let immediate {
                continuation.resume(returning: immediate)
                return
            }
            // The time limit starts once the waiter is registered, so it always finds it.
            let timer = Task {
                try? await Task.sleep(for: limit)
                guard !Task.isCancelled else { return }
                self.resolve(key, false)
            }
            let stillWaiting = state.withLock { state -> Bool in
                state.waiters[key]?.timer = timer
                return state.waiters[key] != nil
            }
            if !stillWaiting { timer.cancel() }
        }
    }

    private func resolve(_ key: UInt64, _ value: Bool) {
        let waiter = state.withLock { $0.waiters.removeValue(forKey: key) }
        waiter?.continuation.resume(returning: value)
    }

    /// Waits until a line of standard output (or error) contains `text`.
    func waitForOutput(containing text: String, inStderr: Bool = false, within limit: Duration = .seconds(15)) async -> Bool {
        await waitUntil(within: limit) { ($0.stderr.contains(text) && inStderr) || ($0.stdout.contains(text) && !inStderr) }
    }

    /// What the process has printed so far.
    var output: CtlSnapshot { state.withLock { $0.snapshot } }

    /// Whether the process is still running.
    var isRunning: Bool { state.withLock { $0.status == nil } }

    /// Sends a signal to the process, unless it has already exited (its id may be reused).
    func signal(_ number: Int32) {
        guard isRunning else { return }
        kill(process.processIdentifier, number)
    }

    /// Waits for the process to exit and its output to close; kills it with SIGKILL after
    /// `limit` (the result then says `killed`).
    func finish(within limit: Duration = .seconds(60)) async -> CtlResult {
        if await !waitUntil(within: limit, { $0.finished }) {
            state.withLock { $0.killed = true }
            signal(SIGKILL)
            _ = await waitUntil(within: .seconds(10)) { $0.finished }
        }
        return state.withLock { state in
            CtlResult(
                status: state.status ?? -1, signalled: state.signalled,
                stdout: String(decoding: state.stdout, as: UTF8.self),
                stderr: String(decoding: state.stderr, as: UTF8.self), killed: state.killed,
                elapsed: (state.ended ?? .now) - started)
        }
    }
}

// MARK: - ecpctl

/// Runs ecpctl.
enum Ctl {
    /// Runs `ecpctl arguments…` to the end (bounded by `limit`).
    static func run(_ arguments: [String], stdin: Data? = nil, limit: Duration = .seconds(60)) async throws -> CtlResult {
        let process = try CtlProcess.launch(try CtlPaths.ecpctl(), arguments, stdin: stdin)
        return await process.finish(within: limit)
    }

    /// Starts `ecpctl arguments…` and returns at once, for `tail`.
    static func start(_ arguments: [String]) throws -> CtlProcess {
        try CtlProcess.launch(try CtlPaths.ecpctl(), arguments)
    }
}

// MARK: - Worker

extension TestDriverMachine {
    /// The ecpctl tests' machines: web1 and web2 shut off, db1 running.
    static let ecpctlStandard = [
        WorkerMachine(name: "web1", uuid: "6695eb01-f6a4-8304-79aa-97f2502e193f", running: false, memoryKiB: 131_072, vcpus: 1),
        WorkerMachine(name: "web2", uuid: "2f1c4a77-0a1b-4c2d-9e3f-5a6b7c8d9e01", running: false, memoryKiB: 131_072, vcpus: 1),
        WorkerMachine(name: "db1", uuid: "b0a7f3d2-41c5-4e8a-9b6d-2c3e4f5a6b7c", running: true, memoryKiB: 262_144, vcpus: 2),
    ]
}

/// A real `ecp-worker` on the libvirt test driver for ecpctl to talk to: no commands socket,
/// the worker's own log format, and the endpoints in ecpctl's notation.
final class CtlWorker: Sendable {
    let process: WorkerProcess
    /// Further ecpctl options this worker needs (CURVE keys).
    let clientOptions: [String]
    /// The control endpoint for ecpctl: `>tcp://127.0.0.1:<port>`.
    let control: String
    /// The events endpoint for ecpctl: `>tcp://127.0.0.1:<port>`.
    let events: String

    private init(process: WorkerProcess, clientOptions: [String], ports: CtlWorkerPorts?) {
        self.process = process
        self.clientOptions = clientOptions
        control = ports.map { ">tcp://127.0.0.1:\($0.control)" } ?? ">" + process.controlAddress
        events = ports.map { ">tcp://127.0.0.1:\($0.events)" } ?? ">" + process.eventsAddress
    }

    /// The worker id (topic suffix).
    var workerID: String { process.id }
    /// The worker's temporary directory.
    var directory: URL { process.directory }

    /// `--control <endpoint> --events <endpoint>` and the ``clientOptions``, for ecpctl.
    var endpoints: [String] { ["--control", control, "--events", events] + clientOptions }

    /// Runs `body` with a ready worker, then stops the worker with SIGTERM and expects exit
    /// status 0, also when `body` throws.
    static func with(
        machines: [WorkerMachine] = WorkerMachine.ecpctlStandard, workerArguments: [String] = [], clientOptions: [String] = [],
        sourceLocation: SourceLocation = #_sourceLocation, _ body: (CtlWorker) async throws -> Void
    ) async throws {
        let worker = try await start(machines: machines, workerArguments: workerArguments, clientOptions: clientOptions)
        do {
            try await body(worker)
        } catch {
            _ = try? await worker.stop()
            throw error
        }
        let status = try await worker.stop()
        #expect(status == 0, "worker exit status \(status.map(String.init) ?? "none: killed")\n\(worker.process.log)", sourceLocation: sourceLocation)
    }

    /// Starts a worker and waits, at most 15 s, until it is ready: it answers ping, or, with
    /// CURVE `clientOptions` (it then answers no plain client), it logs `worker ready`.
    /// `workerArguments` go to the worker, `clientOptions` to every ecpctl run for it.
    /// With `ports`, the worker binds those instead of its own (so a second worker can take over
    /// the first one's endpoints); with `stateFilePath`, it keeps its state table there.
    static func start(
        machines: [WorkerMachine] = WorkerMachine.ecpctlStandard, workerArguments: [String] = [], clientOptions: [String] = [],
        ports: CtlWorkerPorts? = nil, stateFilePath: String? = nil, id: String? = nil
    ) async throws -> CtlWorker {
        var options = WorkerLaunchOptions()
        options.id = id ?? WorkerProcess.uniqueID(prefix: "ctl-e2e-")
        options.machines = machines
        options.stateFilePath = stateFilePath
        options.commandsSocket = false
        options.logFormat = nil
        options.logLevel = nil
        options.shutdownGraceSeconds = 5
        options.extraArguments = workerArguments
        if !clientOptions.isEmpty { options.readiness = .logLine("worker ready") }
        if let ports {
            // The harness's own ports are overridden (the last occurrence wins); it would ping those.
            options.extraArguments += ["--events=@tcp://127.0.0.1:\(ports.events)", "--control=@tcp://127.0.0.1:\(ports.control)"]
            options.readiness = .logLine("worker ready")
        }
        // The worker outlives the thread that starts it: it is stopped from another.
        options.diesWithLaunchingThread = false
        let process = try await WorkerTestThread.run("ctl-worker-start") { try WorkerProcess.start(options) }
        return CtlWorker(process: process, clientOptions: clientOptions, ports: ports)
    }

    /// Sends SIGTERM and waits for the exit (killed after 20 s): the exit status, nil when killed.
    func stop() async throws -> Int32? {
        try await WorkerTestThread.run("ctl-worker-stop") { [process] in process.stop(timeout: .seconds(20)) }
    }
}

/// Fixed ports for a worker's events and control sockets on 127.0.0.1.
struct CtlWorkerPorts: Sendable {
    var events: Int
    var control: Int

    static func free() throws -> CtlWorkerPorts {
        let events = try CtlPorts.free()
        var control = try CtlPorts.free()
        while control == events { control = try CtlPorts.free() }
        return CtlWorkerPorts(events: events, control: control)
    }
}

// MARK: - Fake peers

/// A one-shot signal from one task to another.
final class CtlLatch: Sendable {
    private let state = Mutex<(fired: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    /// Fires the latch: every wait returns.
    func fire() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.fired = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the latch has fired.
    func wait() async {
        await withCheckedContinuation { continuation in
            let fired = state.withLock { state -> Bool in
                if !state.fired { state.waiters.append(continuation) }
                return state.fired
            }
            if fired { continuation.resume() }
        }
    }
}

/// A ZeroMQ peer on its own thread, standing in for a worker: a ROUTER that answers control
/// requests, or a PUB that publishes one message over and over.
final class CtlFakePeer: Sendable {
    /// The bound endpoint, for ecpctl: `>tcp://127.0.0.1:<port>`.
    let endpoint: String
    private let stopSignal: WakeSignal
    private let done: CtlLatch
    private let received: CtlRequestLog

    private init(endpoint: String, stopSignal: WakeSignal, done: CtlLatch, received: CtlRequestLog) {
        self.endpoint = endpoint
        self.stopSignal = stopSignal
        self.done = done
        self.received = received
    }

    /// The request payloads received so far.
    var requests: [Data] { received.all }

    /// A ROUTER that answers each request `[id][""][json]` with `reply(json)` in the same
    /// envelope (no answer when it returns nil). With `curveSecretKey` it is a CURVE server.
    static func router(curveSecretKey: String? = nil, reply: @escaping @Sendable (Data) -> Data?) async throws -> CtlFakePeer {
        try await spawn { context, log in
            let router = try context.makeSocket(.router)
            try router.setLinger(milliseconds: 0)
            if let curveSecretKey { try router.setCurveServer(secretKey: curveSecretKey) }
            try router.bind("tcp://127.0.0.1:*")
            let endpoint = try router.lastEndpoint
            return (router, endpoint, { socket in
                while let frames = try socket.receive(dontWait: true) {
                    guard frames.count >= 2, let body = frames.last else { continue }
                    log.append(body)
                    if let answer = reply(body) {
                        try socket.send(Array(frames.dropLast()) + [answer])
                    }
                }
                return true
            })
        }
    }

    /// A PUB that publishes `[topic][body]` about every 20 ms until stopped (so a subscriber
    /// that joins late still gets it).
    static func publisher(topic: String, body: Data) async throws -> CtlFakePeer {
        try await spawn { context, _ in
            let pub = try context.makeSocket(.pub)
            try pub.setLinger(milliseconds: 0)
            try pub.bind("tcp://127.0.0.1:*")
            let endpoint = try pub.lastEndpoint
            return (pub, endpoint, { socket in
                try socket.send([Data(topic.utf8), body], dontWait: true)
                return false
            })
        }
    }

    /// Runs a socket on a new thread. `setup` makes the socket and returns it, its endpoint and
    /// a step; the step runs when the socket is readable (`true` from the step: wait for the
    /// next readable event) or every 20 ms (`false`: a periodic step, for a publisher).
    private static func spawn(
        _ setup: @escaping @Sendable (Context, CtlRequestLog) throws -> (Socket, String, (Socket) throws -> Bool)
    ) async throws -> CtlFakePeer {
        let stopSignal = try WakeSignal()
        let done = CtlLatch()
        let log = CtlRequestLog()
        let endpoint: String = try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                defer { done.fire() }
                let socket: Socket
                let step: (Socket) throws -> Bool
                do {
                    let context = try Context()
                    let made = try setup(context, log)
                    socket = made.0
                    step = made.2
                    continuation.resume(returning: made.1)
                } catch {
                    continuation.resume(throwing: error)
                    return
                }
                defer { socket.close() }
                do {
                    var readable = try step(socket)
                    while true {
                        let items: [PollItem] =
                            readable
                            ? [.fileDescriptor(stopSignal.fileDescriptor), .socket(socket)]
                            : [.fileDescriptor(stopSignal.fileDescriptor)]
                        let events = try poll(items, timeoutMs: readable ? -1 : 20)
                        if events[0].contains(.readable) { return }
                        if !readable || events[1].contains(.readable) { readable = try step(socket) }
                    }
                } catch {
                    return
                }
            }
            thread.start()
        }
        return CtlFakePeer(endpoint: ">" + endpoint, stopSignal: stopSignal, done: done, received: log)
    }

    /// Stops the thread and waits for it to close its socket.
    func stop() async {
        stopSignal.raise()
        await done.wait()
    }
}

/// The payloads a fake peer received, shared between its thread and the test.
final class CtlRequestLog: Sendable {
    private let payloads = Mutex<[Data]>([])

    /// Records a payload.
    func append(_ payload: Data) { payloads.withLock { $0.append(payload) } }

    /// Every payload so far.
    var all: [Data] { payloads.withLock { $0 } }
}

// MARK: - JSON

/// Parses one JSON object (a line of `--json` output).
func ctlJSONObject(_ text: String) throws -> [String: Any] {
    let value = try JSONSerialization.jsonObject(with: Data(text.utf8))
    guard let object = value as? [String: Any] else { throw CtlHarnessError("not a JSON object: \(text)") }
    return object
}
