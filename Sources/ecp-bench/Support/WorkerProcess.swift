import Foundation
import Synchronization
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the bench started and must clean up, even when it is interrupted: worker processes not
/// yet reaped, and temporary directories.
enum Cleanup {
    static let workers = Mutex<Set<Int32>>([])
    static let directories = Mutex<Set<String>>([])

    /// Stops every worker still registered (SIGTERM, then SIGKILL after `graceSeconds`) and
    /// removes the temporary directories. Safe from any thread.
    static func all(graceSeconds: Double = 5) {
        let pids = workers.withLock { $0 }
        for pid in pids { kill(pid, SIGTERM) }
        let deadline = Clock.nanos() + Clock.ns(seconds: graceSeconds)
        var waiting = pids
        while !waiting.isEmpty && Clock.nanos() < deadline {
            for pid in waiting {
                var status: Int32 = 0
                let rc = waitpid(pid, &status, WNOHANG)
                if rc == pid || (rc < 0 && errno == ECHILD) { waiting.remove(pid) }
            }
            if !waiting.isEmpty { Clock.sleep(ms: 10) }
        }
        for pid in waiting {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
        }
        workers.withLock { $0.subtract(pids) }
        let dirs = directories.withLock { d in
            defer { d.removeAll() }
            return d
        }
        for dir in dirs { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// A new private temporary directory, removed by ``all(graceSeconds:)``.
    static func makeDirectory(_ label: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("ecp-bench-\(label)-\(UUID().uuidString.prefix(8).lowercased())", isDirectory: true)
        try FileManager.default.createDirectory(
            at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        directories.withLock { _ = $0.insert(url.path) }
        return url
    }
}

/// Stops spawned workers when the bench itself is interrupted (SIGINT, SIGTERM), then exits
/// with 128 + the signal number.
enum InterruptHandler {
    private final class Sources: @unchecked Sendable {
        // Safety of @unchecked Sendable: written once, under the lock, by `install()`.
        let lock = NSLock()
        var sources: [any DispatchSourceSignal] = []
    }

    private static let holder = Sources()

    static func install() {
        holder.lock.withLock {
            guard holder.sources.isEmpty else { return }
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler {
                    FileHandle.standardError.write(Data("ecp-bench: interrupted, stopping spawned workers\n".utf8))
                    Cleanup.all(graceSeconds: 5)
                    exit(128 + sig)
                }
                source.resume()
                holder.sources.append(source)
            }
        }
    }
}

/// A failure that ends the run with an exit status and a sentence on standard error.
struct BenchFailure: Error, CustomStringConvertible {
    /// 1: the run did not complete; 2: it could not be set up.
    var status: Int32
    var description: String

    init(_ status: Int32, _ description: String) {
        self.status = status
        self.description = description
    }
}

/// An `ecp-worker` process the bench started: stdin from /dev/null, stdout and stderr to a
/// log file. Owned by the thread that made it.
final class SpawnedWorker {
    let pid: Int32
    /// Monotonic time just before `posix_spawn`.
    let spawnedAt: UInt64
    let logPath: String
    let commandLine: [String]
    /// The exit status (negative: the signal that ended it), once reaped.
    private(set) var exitStatus: Int32?

    private init(pid: Int32, spawnedAt: UInt64, logPath: String, commandLine: [String]) {
        self.pid = pid
        self.spawnedAt = spawnedAt
        self.logPath = logPath
        self.commandLine = commandLine
    }

    deinit {
        if exitStatus == nil { _ = stop(graceSeconds: 5) }
    }

    /// Starts `binary` with `arguments`. The environment is the bench's without `ECP_*`
    /// variables, so the worker runs with exactly the options the bench gives it.
    static func launch(binary: String, arguments: [String], logPath: String) throws -> SpawnedWorker {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchFailure(2, "the worker binary \(binary) is not an executable file (set it with --worker)")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        // The bench ignores SIGINT and SIGTERM (a dispatch source handles them); the worker
        // must get the default dispositions and an empty signal mask.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for sig in [SIGINT, SIGTERM, SIGPIPE, SIGHUP] { sigaddset(&defaults, sig) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let commandLine = [binary] + arguments
        let argv = commandLine.map { strdup($0) } + [nil]
        let environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ECP_") }
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid: pid_t = 0
        let spawnedAt = Clock.nanos()
        let rc = posix_spawn(&pid, binary, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            throw BenchFailure(2, "cannot start \(binary): \(String(cString: strerror(rc)))")
        }
        Cleanup.workers.withLock { _ = $0.insert(pid) }
        return SpawnedWorker(pid: pid, spawnedAt: spawnedAt, logPath: logPath, commandLine: commandLine)
    }

    /// Whether the process still runs (reaps it when it has ended).
    var isRunning: Bool {
        guard exitStatus == nil else { return false }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid {
            record(status)
            return false
        }
        if rc < 0 && errno == ECHILD {
            // Reaped elsewhere (the interrupt handler).
            exitStatus = -1
            Cleanup.workers.withLock { _ = $0.remove(pid) }
            return false
        }
        return true
    }

    private func record(_ status: Int32) {
        let signal = status & 0x7f
        exitStatus = signal == 0 ? (status >> 8) & 0xff : -signal
        Cleanup.workers.withLock { _ = $0.remove(pid) }
    }

    /// SIGTERM, then waits up to `graceSeconds` for the exit, then SIGKILL. Returns the exit
    /// status, and how long the worker took to exit after SIGTERM.
    @discardableResult
    func stop(graceSeconds: Double = 15) -> (status: Int32?, ms: Double) {
        guard isRunning else { return (exitStatus, 0) }
        let start = Clock.nanos()
        kill(pid, SIGTERM)
        let deadline = start + Clock.ns(seconds: graceSeconds)
        while isRunning {
            if Clock.nanos() >= deadline {
                kill(pid, SIGKILL)
                var status: Int32 = 0
                if waitpid(pid, &status, 0) == pid { record(status) } else { exitStatus = -Int32(SIGKILL) }
                Cleanup.workers.withLock { _ = $0.remove(pid) }
                return (nil, Clock.ms(from: start, to: Clock.nanos()))
            }
            Clock.sleep(ms: 2)
        }
        return (exitStatus, Clock.ms(from: start, to: Clock.nanos()))
    }

    /// Everything the worker wrote.
    var log: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// The last lines of the log, framed, for error messages.
    func logTail(lines: Int = 15) -> String {
        let all = log.split(separator: "\n", omittingEmptySubsequences: true)
        return "--- worker log, last \(min(lines, all.count)) of \(all.count) lines (\(logPath)) ---\n"
            + all.suffix(lines).joined(separator: "\n") + "\n--- end of worker log ---"
    }

    /// Whether the worker ended because a port was taken between the search and the bind.
    var failedToOpenSockets: Bool {
        !isRunning && log.contains("cannot open the worker's sockets")
    }

    /// `ecp-worker` next to the running `ecp-bench`, else on the PATH.
    static func defaultBinary() -> String {
        let fm = FileManager.default
        let me = (try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().path
        let beside = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("ecp-worker").path
        if fm.isExecutableFile(atPath: beside) { return beside }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(dir)/ecp-worker"
            if fm.isExecutableFile(atPath: candidate) { return candidate }
        }
        return beside
    }

    /// `count` distinct TCP ports of 127.0.0.1 that were free a moment ago.
    ///
    /// Plain sockets, bound to port 0 and never listening, closed before returning: a ZeroMQ
    /// socket would close its listener later, in its I/O thread, and a bench socket connecting
    /// to the port meanwhile would meet that stale listener, fail the ZeroMQ handshake, and
    /// never try again.
    static func freePorts(_ count: Int) throws -> [Int] {
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        var ports: [Int] = []
        for _ in 0..<count {
            #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
            #endif
            guard fd >= 0 else { throw BenchFailure(2, "socket() failed: \(String(cString: strerror(errno)))") }
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
            guard bound else { throw BenchFailure(2, "cannot find a free port: \(String(cString: strerror(errno)))") }
            ports.append(Int(UInt16(bigEndian: address.sin_port)))
        }
        return ports
    }
}
