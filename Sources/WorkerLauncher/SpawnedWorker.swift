import Foundation
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a worker could not be launched or did not become ready.
public struct WorkerLaunchError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// How a spawned process ended.
public struct WorkerExit: Sendable, Equatable {
    /// The exit status, or the signal number when ``bySignal``.
    public var code: Int32
    public var bySignal: Bool
    /// When it was reaped, on the monotonic clock (``SpawnedWorker/monotonicNanos()``).
    public var at: UInt64

    /// The exit status, negated when a signal ended the process.
    public var status: Int32 { bySignal ? -code : code }
}

/// An `ecp-worker` process: standard input from /dev/null, standard output and error to a log
/// file, no descriptor of the launcher's but those, default signal actions and an empty signal
/// mask (a launcher may ignore or block SIGTERM; the worker must not inherit that), and an
/// environment without `ECP_*` variables (the worker reads defaults from them: it must run
/// with exactly the options it is given).
///
/// A thread of its own waits for the exit, so the exit is seen when it happens, whoever waits.
/// A worker still running when the object goes away is killed.
public final class SpawnedWorker: @unchecked Sendable {
    // Safety of @unchecked Sendable: the `let`s are set in `init`; the exit is guarded by `condition`.

    public let pid: Int32
    /// Monotonic time just before the spawn.
    public let spawnedAt: UInt64
    public let logPath: String
    /// What was executed, wrappers (`setpriv`, `sh`) included.
    public let commandLine: [String]
    /// The read end of the pipe the worker's standard error goes to, when one was asked for
    /// (`standardErrorPipe`); standard output still goes to the log file.
    public let standardErrorReader: FileHandle?

    private let condition = NSCondition()
    private var _exit: WorkerExit?

    /// util-linux's setpriv: with it the worker gets SIGKILL when the thread that launched it
    /// ends, so a launcher that crashes leaves no worker behind.
    public static let setpriv = "/usr/bin/setpriv"

    /// Starts `binary` with `arguments`.
    /// - Parameters:
    ///   - umask: the file mode creation mask the worker runs under (through `sh`, which execs
    ///     the worker in place).
    ///   - diesWithThread: kill the worker when the launching thread ends (through `setpriv`,
    ///     which also execs in place, when it is installed).
    ///   - directory: the working directory.
    ///   - openFileSoftLimit: the soft limit on open descriptors the worker starts under (through
    ///     `sh` as for `umask`).
    ///   - standardErrorPipe: standard error to a pipe (``standardErrorReader``) instead of the log.
    public init(
        binary: String, arguments: [String], logPath: String, directory: String? = nil, umask: mode_t? = nil,
        diesWithThread: Bool = false, standardErrorPipe: Bool = false, openFileSoftLimit: Int? = nil
    ) throws {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw WorkerLaunchError("the worker binary \(binary) is not an executable file")
        }
        var commandLine = [binary] + arguments
        var shell: [String] = []
        if let umask { shell.append("umask \(String(umask, radix: 8))") }
        if let openFileSoftLimit { shell.append("ulimit -S -n \(openFileSoftLimit)") }
        if !shell.isEmpty {
            commandLine = ["/bin/sh", "-c", (shell + ["exec \"$0\" \"$@\""]).joined(separator: "; ")] + commandLine
        }
        if diesWithThread && FileManager.default.isExecutableFile(atPath: Self.setpriv) {
            commandLine = [Self.setpriv, "--pdeathsig", "KILL", "--"] + commandLine
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        // Close-on-exec: no other child may hold the read end, or closing it here would not
        // leave the worker without a reader.
        var errorPipe: [Int32] = [-1, -1]
        if standardErrorPipe {
            guard let pipe2 = Self.symbol("pipe2", as: Pipe2.self), pipe2(&errorPipe, O_CLOEXEC) == 0 else {
                throw WorkerLaunchError("pipe2() failed: \(String(cString: strerror(errno)))")
            }
            posix_spawn_file_actions_adddup2(&actions, errorPipe[1], 2)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        defer { if errorPipe[1] >= 0 { close(errorPipe[1]) } }
        // Another thread's descriptors (a pipe to a child of its own) must not stay open in the
        // worker for as long as it runs.
        Self.closeFrom3(&actions)
        if let directory { Self.changeDirectory(&actions, directory) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ECP_") }
        let argv = commandLine.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        spawnedAt = Self.monotonicNanos()
        let rc = posix_spawn(&pid, commandLine[0], &actions, &attributes, argv, envp)
        guard rc == 0 else {
            if errorPipe[0] >= 0 { close(errorPipe[0]) }
            throw WorkerLaunchError("cannot start \(commandLine[0]): \(String(cString: strerror(rc)))")
        }
        standardErrorReader = errorPipe[0] >= 0 ? FileHandle(fileDescriptor: errorPipe[0], closeOnDealloc: true) : nil
        self.pid = pid
        let child = pid
        self.logPath = logPath
        self.commandLine = commandLine
        let reaper = Thread { [condition = self.condition, weak self] in
            var status: Int32 = 0
            while waitpid(child, &status, 0) < 0 && errno == EINTR {}
            let signal = status & 0x7f
            let exit = WorkerExit(code: signal == 0 ? (status >> 8) & 0xff : signal, bySignal: signal != 0, at: Self.monotonicNanos())
            condition.lock()
            self?._exit = exit
            condition.broadcast()
            condition.unlock()
        }
        reaper.name = "reaper-\(child)"
        reaper.start()
    }

    deinit {
        // The reaper holds no reference to this object; the process is killed and left to it.
        if isRunning { kill(pid, SIGKILL) }
    }

    /// How the process ended, once it has.
    public var exit: WorkerExit? {
        condition.lock()
        defer { condition.unlock() }
        return _exit
    }

    public var isRunning: Bool { exit == nil }

    /// The exit status, negated when a signal ended the process; nil while it runs.
    public var exitStatus: Int32? { exit?.status }

    /// Sends a signal, unless the process has been reaped (its id may be reused).
    public func signal(_ number: Int32) {
        condition.lock()
        defer { condition.unlock() }
        if _exit == nil { kill(pid, number) }
    }

    /// Waits at most `timeout` for the exit.
    @discardableResult
    public func waitForExit(timeout: Duration) -> WorkerExit? {
        let deadline = Date().addingTimeInterval(Self.seconds(timeout))
        condition.lock()
        defer { condition.unlock() }
        while _exit == nil {
            if !condition.wait(until: deadline) { break }
        }
        return _exit
    }

    /// SIGTERM, then waits at most `timeout`; SIGKILL when the worker is still running then.
    /// Returns the exit, nil when SIGKILL was needed.
    @discardableResult
    public func stop(timeout: Duration = .seconds(15)) -> WorkerExit? {
        signal(SIGTERM)
        if let exit = waitForExit(timeout: timeout) { return exit }
        signal(SIGKILL)
        waitForExit(timeout: .seconds(5))
        return nil
    }

    // MARK: the log

    /// Everything the worker wrote.
    public var log: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// The last `lines` lines of the log, framed and titled, for failure messages.
    public func logTail(lines: Int = 40, title: String = "worker log") -> String {
        let all = log.split(separator: "\n", omittingEmptySubsequences: true)
        return "--- \(title) (last \(min(lines, all.count)) of \(all.count) lines) ---\n"
            + all.suffix(lines).joined(separator: "\n") + "\n--- end of log ---"
    }

    /// Whether the worker ended because a port was taken between the search and the bind: worth
    /// launching again on other ports.
    public var failedToOpenSockets: Bool {
        !isRunning && log.contains("cannot open the worker's sockets")
    }

    // MARK: readiness

    /// Waits until the worker answers `ping` on its control socket (`tcp://…`, without `@`), the
    /// process exits, or `timeout` passes. With `workerID`, only an answer naming that worker
    /// counts (another worker on a port this one lost would answer under its own name).
    public func waitUntilAnswersPing(control: String, workerID: String? = nil, timeout: Duration) throws {
        let context = try Context()
        let dealer = try context.makeSocket(.dealer)
        defer { dealer.close() }
        try dealer.setLinger(milliseconds: 0)
        try dealer.connect(control)
        let deadline = ContinuousClock.now + timeout
        var attempt = 0
        while ContinuousClock.now < deadline {
            guard isRunning else {
                throw WorkerLaunchError("the worker exited with status \(exitStatus ?? 0) before it was ready\n\(logTail())")
            }
            attempt += 1
            let ping = #"{"v":1,"id":"ready-\#(attempt)","op":"ping"}"#
            try dealer.send([Data(), Data(ping.utf8)], dontWait: true)
            let until = ContinuousClock.now + .milliseconds(250)
            while ContinuousClock.now < until {
                let events = try poll([.socket(dealer)], timeoutMs: 50)
                guard events[0].contains(.readable), let reply = try dealer.receive(dontWait: true), let body = reply.last else {
                    continue
                }
                let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
                if object?["type"] as? String == "result", workerID == nil || object?["worker"] as? String == workerID {
                    return
                }
            }
        }
        throw WorkerLaunchError("the worker did not answer ping on \(control) within \(timeout)\n\(logTail())")
    }

    /// Waits until the log satisfies `predicate`, the process exits, or `timeout` passes; the log
    /// file is read every 20 ms. Whether the predicate holds at the end.
    public func waitForLog(timeout: Duration, _ predicate: (String) -> Bool) -> Bool {
        let until = ContinuousClock.now + timeout
        while ContinuousClock.now < until {
            if predicate(log) { return true }
            if waitForExit(timeout: .milliseconds(20)) != nil { break }
        }
        return predicate(log)
    }

    // MARK: helpers

    // glibc's `_np` spawn actions and pipe2 are not in the Glibc module: they are looked up by name.
    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    private typealias ChangeDirectory = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    private static func symbol<T>(_ name: String, as: T.Type) -> T? {
        guard let handle = dlopen(nil, RTLD_NOW), let pointer = dlsym(handle, name) else { return nil }
        return unsafeBitCast(pointer, to: T.self)
    }

    /// Closes every descriptor above 2 in the child: at once where glibc can, else those open now.
    private static func closeFrom3(_ actions: inout posix_spawn_file_actions_t) {
        if let closeFrom = symbol("posix_spawn_file_actions_addclosefrom_np", as: CloseFrom.self) {
            _ = closeFrom(&actions, 3)
            return
        }
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for fd in open.compactMap({ Int32($0) }) where fd > 2 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
    }

    private static func changeDirectory(_ actions: inout posix_spawn_file_actions_t, _ directory: String) {
        if let chdir = symbol("posix_spawn_file_actions_addchdir_np", as: ChangeDirectory.self) {
            _ = chdir(&actions, directory)
        }
    }

    /// The monotonic clock, in nanoseconds.
    public static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// `count` distinct TCP ports of 127.0.0.1 that were free a moment ago.
    ///
    /// Plain sockets, bound to port 0 and never listening, closed before returning: a ZeroMQ
    /// socket would close its listener later, in its I/O thread, and a socket connecting to the
    /// port meanwhile would meet that stale listener, fail the ZeroMQ handshake, and never try
    /// again.
    public static func freePorts(_ count: Int) throws -> [Int] {
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        var ports: [Int] = []
        for _ in 0..<count {
            #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
            #endif
            guard fd >= 0 else { throw WorkerLaunchError("socket() failed: \(String(cString: strerror(errno)))") }
            fds.append(fd)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = 0
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
                }
            }
            guard bound else { throw WorkerLaunchError("cannot find a free port: \(String(cString: strerror(errno)))") }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}
