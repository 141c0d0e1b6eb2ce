import ECPProtocol
import FoundationEssentials
import Glibc
import Logging
import Threading

/// What opening the state table found.
public enum StateTableLoad: Sendable, Equatable {
    case absent
    case present(machines: Int)
    case corrupt(movedTo: String, reason: String)

    /// The word for it in a restore summary's `table` field.
    public var tableWord: String {
        switch self {
        case .absent: return "absent"
        case .present: return "present"
        case .corrupt: return "corrupt"
        }
    }
}

/// Keeps the state table in memory and on disk.
///
/// The file is only ever replaced whole: a temporary file in the same directory, fsync, rename
/// over the old one, fsync of the directory. So a crash at any instant leaves the old table or the
/// new one. Changes that arrive while a write is under way are committed together by the next
/// write (group commit): durability costs one fsync per batch, not per command.
///
/// A write that fails (disk full, I/O error, the directory gone) leaves the changes in memory:
/// the writer tries again after a pause, until a write succeeds; `status` says since when the
/// file lags behind.
final class StateStore: @unchecked Sendable {
    /// Long enough not to hammer a full or failing disk, short enough that a change is on disk
    /// soon after the disk is back.
    static let defaultRetryMs = 200

    // Safety of @unchecked Sendable: the `var`s are only touched under `condition`'s lock (the
    // writer thread sleeps on it), but `blocked` and `lockFD`, set before the writer starts.
    let path: String
    private let workerID: String
    private let logger: Logger
    private let condition = Condition()
    /// Wakes `flush` callers; the writer waits on `condition` itself.
    private let flushed: Condition.Waiter
    private var table: StateTable
    private var dirty = false
    private var waiting: [@Sendable (Bool) -> Void] = []
    private var writing = false
    private var stopped = false
    private var writes = 0
    /// Batches the writer has taken, and those it has finished (written or failed).
    private var batchesTaken = 0
    private var batchesDone = 0
    private var writerEnded = false
    /// Set when a corrupt table could not be moved aside: it is then never overwritten.
    private var blocked: String?
    private var lockFD: Int32 = -1
    /// When the first of the writes failing since the last good one was tried; nil while the
    /// file holds everything written so far. Heartbeats report it.
    private var unsavedSince: String?
    /// Set by a host stop: the desired states it recorded stand, and the graceful stop after it
    /// does not replace them with the (stopped) states it sees. A restore lifts it.
    private var desiredPinned = false
    /// Machines a running restore has not reached yet: their desired states stand too.
    private var protectedDesired: Set<String> = []
    /// The pause after a failed write before the next try.
    private let retryNanos: UInt64
    private let metrics: EngineMetrics

    init(path: String, workerID: String, logger: Logger, retryMs: Int = StateStore.defaultRetryMs, metrics: EngineMetrics = .none) {
        self.metrics = metrics
        self.path = path
        self.workerID = workerID
        self.logger = logger
        self.retryNanos = UInt64(max(1, retryMs)) * 1_000_000
        self.table = StateTable(worker: workerID)
        self.flushed = condition.makeWaiter()
    }

    /// The temporary file a write goes through; a fixed name, so one left by a crash is reused.
    private var temporaryPath: String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp").path
    }

    /// Takes the table's lock file (`.<file>.lock`, next to it): one worker per table.
    func lock() throws(StateTableError) {
        let url = URL(fileURLWithPath: path)
        let lockPath = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).lock").path
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StateTableError("cannot open the lock file \(lockPath): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw StateTableError("another worker is using the state table \(path) (its lock file \(lockPath) is held)")
        }
        lockFD = fd
    }

    deinit {
        if lockFD >= 0 { close(lockFD) }
    }

    /// Reads the table from disk. A corrupt file is moved aside under a new name (never
    /// overwritten) and the worker starts from an empty table.
    func load() -> StateTableLoad {
        // A temporary file left by a crash during a write holds nothing the table does not.
        unlink(temporaryPath)
        let url = URL(fileURLWithPath: path)
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            if !FileManager.default.fileExists(atPath: path) {
                logger.info("state table absent; it is created at the first change", metadata: ["state.file": "\(path)"])
                return .absent
            }
            return quarantine(reason: "it cannot be read: \(error.systemDescription)")
        }
        do {
            let loaded = try StateTable.parse(data)
            condition.lock()
            table = loaded
            table.worker = workerID
            condition.unlock()
            if loaded.worker != workerID {
                logger.warning(
                    "state table was written by another worker id; using it",
                    metadata: ["state.file": "\(path)", "state.worker": "\(loaded.worker)"])
            }
            logger.info("state table loaded", metadata: ["state.file": "\(path)", "state.machines": "\(loaded.machines.count)"])
            return .present(machines: loaded.machines.count)
        } catch {
            return quarantine(reason: error.description)
        }
    }

    private func quarantine(reason: String) -> StateTableLoad {
        let stamp = Timestamp.now().replacing(":", with: "")
        var target = "\(path).corrupt-\(stamp)"
        var n = 1
        while FileManager.default.fileExists(atPath: target) {
            n += 1
            target = "\(path).corrupt-\(stamp)-\(n)"
        }
        // link + unlink never replaces an existing file, unlike rename.
        if link(path, target) == 0 {
            unlink(path)
        } else {
            let why = String(cString: strerror(errno))
            blocked = "the corrupt table \(path) could not be moved aside (\(why)); it is kept and not overwritten"
            logger.critical(
                "state table is corrupt and cannot be moved aside; changes will not be saved",
                metadata: ["state.file": "\(path)", "state.error": "\(reason)", "os.error": "\(why)"])
            return .corrupt(movedTo: path, reason: reason)
        }
        logger.error(
            "state table is corrupt; moved aside, starting from an empty table",
            metadata: ["state.file": "\(path)", "state.corrupt_file": "\(target)", "state.error": "\(reason)"])
        return .corrupt(movedTo: target, reason: reason)
    }

    /// Starts the writer thread.
    func start() {
        WorkerThread.start(name: "ecp-state") { self.writerLoop() }
    }

    /// A copy of the table as it stands in memory.
    func snapshot() -> StateTable {
        condition.lock()
        defer { condition.unlock() }
        return table
    }

    /// One machine's row as it stands in memory.
    func entry(_ uuid: String) -> StateTable.Entry? {
        condition.lock()
        defer { condition.unlock() }
        return table.machines[uuid.lowercased()]
    }

    /// Records what a command asked for (and what it left); `durable` runs once it is on disk
    /// (with false if the write failed).
    func recordIntent(uuid: String, name: String, desired: String?, observed: String?, remove: Bool, durable: @escaping @Sendable (Bool) -> Void) {
        let now = Timestamp.now()
        condition.lock()
        let key = uuid.lowercased()
        if remove {
            table.machines.removeValue(forKey: key)
        } else if var entry = table.machines[key] {
            entry.name = name
            if let desired {
                entry.desired = desired
                entry.desiredFrom = "command"
            }
            if let observed { entry.observed = observed }
            entry.updatedAt = now
            table.machines[key] = entry
        } else {
            table.machines[key] = .init(
                name: name, desired: desired ?? observed ?? "shutoff", observed: observed, updatedAt: now,
                desiredFrom: desired == nil ? "observed" : "command")
        }
        dirty = true
        waiting.append(durable)
        condition.signal()
        condition.unlock()
    }

    /// Changes a machine's policy (adding the machine, its observed state as desired, when the
    /// table lacks it); `durable` runs once it is on disk. Returns the policy now in force and
    /// whether it changed.
    func setPolicy(
        uuid: String, name: String, observed: String?, change: PolicyChange, durable: @escaping @Sendable (Bool) -> Void
    ) -> (policy: RestorePolicy, changed: Bool) {
        let now = Timestamp.now()
        condition.lock()
        defer { condition.unlock() }
        let key = uuid.lowercased()
        var entry = table.machines[key] ?? .init(
            name: name, desired: observed ?? "shutoff", observed: observed, updatedAt: now, desiredFrom: "observed")
        let before = entry.policy ?? RestorePolicy()
        let after = before.applying(change)
        entry.name = name
        entry.policy = after.isEmpty ? nil : after
        entry.updatedAt = now
        table.machines[key] = entry
        // Written even when nothing changed: the result says the policy is on disk.
        dirty = true
        waiting.append(durable)
        condition.signal()
        return (after, after != before)
    }

    /// At a host stop: every machine no command touched takes the state it is in now as its
    /// desired state (as a graceful stop would record), and those desired states then stand
    /// until the next restore. `durable` runs once they are on disk.
    func recordHostStop(observations: [(uuid: String, name: String, state: String)], durable: @escaping @Sendable (Bool) -> Void) {
        condition.lock()
        applyObservations(observations)
        desiredPinned = true
        waiting.append(durable)
        condition.unlock()
    }

    /// A restore begins: until each of these machines has its outcome, a graceful stop keeps
    /// its desired state.
    func protectDesired(_ uuids: [String]) {
        condition.lock()
        protectedDesired.formUnion(uuids.map { $0.lowercased() })
        condition.unlock()
    }

    /// The restore has given this machine's outcome.
    func unprotectDesired(_ uuid: String) {
        condition.lock()
        protectedDesired.remove(uuid.lowercased())
        condition.unlock()
    }

    /// A restore ran: graceful stops record desired states again.
    func unpinDesired() {
        condition.lock()
        desiredPinned = false
        condition.unlock()
    }

    /// Records a state seen (an event, a restore); written with the next batch.
    func recordObserved(uuid: String, name: String, observed: String?, createIfMissing: Bool = true) {
        let now = Timestamp.now()
        condition.lock()
        defer { condition.unlock() }
        let key = uuid.lowercased()
        if var entry = table.machines[key] {
            if entry.observed == observed && entry.name == name { return }
            entry.name = name
            entry.observed = observed
            entry.updatedAt = now
            table.machines[key] = entry
        } else if createIfMissing, let observed {
            table.machines[key] = .init(name: name, desired: observed, observed: observed, updatedAt: now, desiredFrom: "observed")
        } else {
            return
        }
        dirty = true
        condition.signal()
    }

    /// At graceful shutdown: every machine no command touched takes the state it is in now as
    /// its desired state. `observations` is every machine libvirt knows, (uuid, name, state).
    func recordShutdown(observations: [(uuid: String, name: String, state: String)]) {
        condition.lock()
        applyObservations(observations)
        condition.unlock()
    }

    /// Under the lock: the graceful stop's record (see `recordShutdown`).
    private func applyObservations(_ observations: [(uuid: String, name: String, state: String)]) {
        let now = Timestamp.now()
        for o in observations {
            let key = o.uuid.lowercased()
            if var entry = table.machines[key] {
                entry.name = o.name
                entry.observed = o.state
                if !entry.touchedByCommand && !desiredPinned && !protectedDesired.contains(key) { entry.desired = o.state }
                entry.updatedAt = now
                table.machines[key] = entry
            } else {
                table.machines[key] = .init(name: o.name, desired: o.state, observed: o.state, updatedAt: now, desiredFrom: "observed")
            }
        }
        dirty = true
        condition.signal()
    }

    /// Blocks until everything recorded so far is on disk.
    func flush() {
        condition.lock()
        defer { condition.unlock() }
        dirty = true
        condition.signal()
        // The next batch the writer takes holds everything recorded so far.
        let batch = batchesTaken + 1
        while batchesDone < batch && !writerEnded { flushed.wait() }
    }

    /// Writes what is pending, then stops the writer.
    func stop() {
        flush()
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    /// Ends the writer thread after the writes already pending, without waiting for them.
    func stopWriter() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    /// Whether the file holds every change that was to be written; if not, since when (the time
    /// the first failing write was tried).
    var status: (saved: Bool, unsavedSince: String?) {
        condition.lock()
        defer { condition.unlock() }
        return (unsavedSince == nil, unsavedSince)
    }

    /// How many times the file has been written (for tests and benchmarks).
    var writeCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return writes
    }

    private func writerLoop() {
        defer {
            condition.lock()
            writerEnded = true
            flushed.broadcast()
            condition.unlock()
        }
        while true {
            condition.lock()
            while !dirty && !stopped { condition.wait() }
            if !dirty && stopped {
                condition.unlock()
                return
            }
            var snapshot = table
            let callbacks = waiting
            waiting.removeAll()
            dirty = false
            batchesTaken += 1
            let batch = batchesTaken
            condition.unlock()

            let attemptedAt = Timestamp.now()
            snapshot.savedAt = attemptedAt
            let ok: Bool
            let writeStarted = monotonicNanos()
            do {
                try write(snapshot)
                ok = true
                metrics.stateCommits.increment()
                metrics.stateCommitDuration.recordNanoseconds(Int64(clamping: monotonicNanos() &- writeStarted))
            } catch {
                ok = false
                metrics.stateCommitFailures.increment()
                condition.lock()
                dirty = true
                let since = unsavedSince
                if since == nil { unsavedSince = attemptedAt }
                condition.unlock()
                if let since {
                    // Once per retry while the disk stays unwritable: the first failure said it already.
                    logger.debug(
                        "state table still cannot be written",
                        metadata: ["state.file": "\(path)", "state.error": "\(error)", "state.unsaved_since": "\(since)"])
                } else {
                    logger.error(
                        "state table unsaved: it could not be written; changes stay in memory and are retried",
                        metadata: [
                            "state.file": "\(path)", "state.error": "\(error)", "state.unsaved_since": "\(attemptedAt)",
                            "state.retry_ms": "\(retryNanos / 1_000_000)",
                        ])
                }
            }
            if ok {
                condition.lock()
                let since = unsavedSince
                unsavedSince = nil
                condition.unlock()
                if let since {
                    logger.notice(
                        "state table saved again",
                        metadata: ["state.file": "\(path)", "state.unsaved_since": "\(since)", "state.saved_at": "\(attemptedAt)"])
                }
            }
            condition.lock()
            writes += 1
            batchesDone = batch
            flushed.broadcast()
            condition.unlock()
            for callback in callbacks { callback(ok) }
            if !ok && !pauseBeforeRetry() {
                logger.error("state table writer stopped with changes unsaved", metadata: ["state.file": "\(path)"])
                return
            }
        }
    }

    /// After a failed write, waits a moment before the next try, so that a full or read-only disk
    /// is not hammered. Returns false when the writer is stopped meanwhile (or already was): the
    /// failed attempt was its last.
    private func pauseBeforeRetry() -> Bool {
        let retryAt = monotonicNanos() + retryNanos
        condition.lock()
        defer { condition.unlock() }
        // Changes recorded meanwhile signal too; they wait for the retry.
        while !stopped {
            let now = monotonicNanos()
            if now >= retryAt { return true }
            condition.wait(seconds: Double(retryAt - now) / 1e9)
        }
        return false
    }

    /// Replaces the file whole: temporary file, fsync, rename, directory fsync.
    private func write(_ table: StateTable) throws {
        if let blocked { throw StateTableError(blocked) }
        let data = table.fileBytes()
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let tmp = temporaryPath
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw POSIXFailure(call: "open", path: tmp) }
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        try data.withUnsafeBytes { buf in
            var offset = 0
            while offset < buf.count {
                let n = Glibc.write(fd, buf.baseAddress! + offset, buf.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    let failure = POSIXFailure(call: "write", path: tmp)
                    close(fd)
                    throw failure
                }
                offset += n
            }
        }
        if fsync(fd) != 0 {
            let failure = POSIXFailure(call: "fsync", path: tmp)
            close(fd)
            throw failure
        }
        close(fd)
        guard rename(tmp, path) == 0 else { throw POSIXFailure(call: "rename", path: path) }
        ok = true
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }
}

/// A failed system call on a file, with errno's text.
struct POSIXFailure: Error, CustomStringConvertible {
    let call: String
    let path: String
    let code: Int32

    init(call: String, path: String) {
        self.call = call
        self.path = path
        self.code = errno
    }

    var description: String { "\(call)(\(path)) failed: \(String(cString: strerror(code))) (errno \(code))" }
}
