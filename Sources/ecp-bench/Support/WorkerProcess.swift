import Foundation
import Synchronization
import WorkerLauncher
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the bench started and must clean up, even when it is interrupted: worker processes,
/// guests on a real host, and temporary directories.
enum Cleanup {
    static let workers = Mutex<[Int32: SpawnedWorker]>([:])
    static let directories = Mutex<Set<String>>([])
    static let hosts = Mutex<[HostGuests]>([])

    /// Stops every worker still registered (SIGTERM, then SIGKILL after `graceSeconds`), then
    /// destroys and undefines the bench's guests (after the workers, so that no worker acts on
    /// them meanwhile), and removes the temporary directories. Safe from any thread.
    static func all(graceSeconds: Double = 5) {
        let started = workers.withLock { w in
            defer { w.removeAll() }
            return Array(w.values)
        }
        for worker in started { worker.signal(SIGTERM) }
        let deadline = ContinuousClock.now + .nanoseconds(Int64(Clock.ns(seconds: graceSeconds)))
        for worker in started {
            if worker.waitForExit(timeout: max(.zero, deadline - .now)) == nil {
                worker.signal(SIGKILL)
                worker.waitForExit(timeout: .seconds(5))
            }
        }
        let hostList = hosts.withLock { h in
            defer { h.removeAll() }
            return h
        }
        for host in hostList {
            let left = host.remove()
            if !left.isEmpty { note("could not remove guests \(left.joined(separator: ", ")) from \(host.uri)") }
        }
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
            // A reader that goes away (`ecp-bench ... | head`) must not kill the bench before it
            // has stopped its workers and removed its guests: a failed write is ignored instead.
            signal(SIGPIPE, SIG_IGN)
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler {
                    try? FileHandle.standardError.write(contentsOf: Data("ecp-bench: interrupted, stopping spawned workers and removing the bench's guests\n".utf8))
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

/// An `ecp-worker` process the bench started (stdin from /dev/null, stdout and stderr to a log
/// file), registered for ``Cleanup``.
extension SpawnedWorker {
    /// Starts `binary` with `arguments`.
    static func launch(binary: String, arguments: [String], logPath: String) throws -> SpawnedWorker {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw BenchFailure(2, "the worker binary \(binary) is not an executable file (set it with --worker)")
        }
        let worker: SpawnedWorker
        do {
            worker = try SpawnedWorker(binary: binary, arguments: arguments, logPath: logPath)
        } catch {
            throw BenchFailure(2, "\(error)")
        }
        Cleanup.workers.withLock { $0[worker.pid] = worker }
        return worker
    }

    /// SIGTERM, then waits up to `graceSeconds` for the exit, then SIGKILL. Returns the exit
    /// status (negative: the signal that ended it; nil: it had to be killed), and how long the
    /// worker took to exit after SIGTERM.
    @discardableResult
    func stop(graceSeconds: Double) -> (status: Int32?, ms: Double) {
        if let exit { return (exit.status, 0) }
        let start = Clock.nanos()
        let exit = stop(timeout: .nanoseconds(Int64(Clock.ns(seconds: graceSeconds))))
        Cleanup.workers.withLock { _ = $0.removeValue(forKey: pid) }
        return (exit?.status, Clock.ms(from: start, to: exit?.at ?? Clock.nanos()))
    }

    /// Asks ``launchAnswering(context:binary:uri:directory:extraArguments:deadline:commands:)`` for
    /// another try on fresh ports: a port found free was taken before the bench could bind it.
    struct PortsTaken: Error {
        var log: String
    }

    /// Where a worker from ``launchAnswering(context:binary:uri:directory:extraArguments:deadline:commands:)``
    /// is: it binds `events` and `control`, and its commands socket connects to `commands`.
    struct BenchEndpoints {
        var events: String
        var control: String
        var commands: String
    }

    /// Starts a worker `bench` on `uri` with its events and control sockets on free ports, and
    /// waits up to 30 s (and at most until `deadline`) for its control socket to answer `ping`.
    /// `commands` is given the events endpoint and a third free port, and returns the address the
    /// worker's commands socket connects to and whatever the caller keeps. A port can be taken
    /// between the search and the bind, so a worker that could not open its sockets, or a
    /// `commands` that throws ``PortsTaken``, is tried again on other ports, up to three times.
    static func launchAnswering<Value>(
        context: Context, binary: String, uri: String, directory: URL, extraArguments: [String],
        deadline: UInt64 = .max,
        commands: (_ events: String, _ port: Int, _ attempt: Int) throws -> (address: String, value: Value)
    ) throws -> (worker: SpawnedWorker, endpoints: BenchEndpoints, value: Value) {
        var lastLog = ""
        for attempt in 1...3 {
            let ports = try freePorts(3)
            let events = "tcp://127.0.0.1:\(ports[0])"
            let control = "tcp://127.0.0.1:\(ports[1])"
            let prepared: (address: String, value: Value)
            do {
                prepared = try commands(events, ports[2], attempt)
            } catch let taken as PortsTaken {
                lastLog = taken.log
                continue
            }
            let arguments = [
                "--worker-id", "bench",
                "--libvirt-uri", uri,
                "--commands=>\(prepared.address)",
                "--events=@\(events)",
                "--control=@\(control)",
                "--state-file", directory.appendingPathComponent("state.json").path,
                "--shutdown-grace-s", "5",
            ] + extraArguments
            let worker = try launch(
                binary: binary, arguments: arguments, logPath: directory.appendingPathComponent("worker-\(attempt).log").path)
            let probe = try Probe.run(
                context: context, control: control, events: nil, worker: worker,
                deadline: min(deadline, Clock.nanos() + 30_000_000_000))
            if probe.pingAnsweredAt != nil {
                return (worker, BenchEndpoints(events: events, control: control, commands: prepared.address), prepared.value)
            }
            if worker.failedToOpenSockets {
                lastLog = worker.benchLogTail
                continue
            }
            let tail = worker.benchLogTail
            let status = worker.isRunning ? "it is running but did not answer ping within 30 s" : "it exited with status \(worker.exitStatus ?? -1)"
            worker.stop(graceSeconds: 2)
            throw BenchFailure(2, "the started worker is not ready: \(status)\n\(tail)")
        }
        throw BenchFailure(2, "the started worker could not open its sockets three times\n\(lastLog)")
    }

    /// The last lines of the log, framed, for error messages.
    var benchLogTail: String { logTail(lines: 15, title: "worker log \(logPath)") }

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
}
