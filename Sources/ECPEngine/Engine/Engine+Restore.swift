import ECPProtocol
import FoundationEssentials
import Glibc
import Libvirt
import Logging
import Synchronization
import Threading

/// Settings of the state restore.
public struct RestoreSettings: Sendable {
    /// How many machines are restored at once.
    public var parallel: Int = 4
    /// Pause between two machine starts, to spare the host a boot storm.
    public var staggerMs: Int = 0
    /// How long one machine's restore may take before its outcome is `failed` with a timeout.
    public var machineTimeoutMs: Int = 120_000

    public init(parallel: Int = 4, staggerMs: Int = 0, machineTimeoutMs: Int = 120_000) {
        self.parallel = parallel
        self.staggerMs = staggerMs
        self.machineTimeoutMs = machineTimeoutMs
    }
}

/// The restore's decision for one machine, from the protocol's table.
enum RestoreAction: String, Sendable, CaseIterable {
    case started, resumed
    case alreadyRunning = "already_running"
    case missing, skipped, failed

    /// What to do for a machine whose desired state is `desired` and which was found `found`
    /// (nil: not defined in libvirt). Restore never stops a machine.
    static func decide(desired: String, found: DomainState?) -> (action: RestoreAction, startPaused: Bool) {
        guard let found else { return (.missing, false) }
        switch (desired, found) {
        case ("running", .shutoff), ("running", .crashed): return (.started, false)
        case ("running", .paused): return (.resumed, false)
        case ("running", .running), ("running", .blocked): return (.alreadyRunning, false)
        case ("paused", .shutoff), ("paused", .crashed): return (.started, true)
        default: return (.skipped, false)
        }
    }
}

/// What the last restore did, for `report`.
struct RestoreRecord: Sendable {
    var summary: RestoreSummaryMessage?
    var outcomes: [RestoreOutcomeMessage] = []
}

/// A restore under way, and who waits for its summary.
final class RestoreRun: @unchecked Sendable {
    // Safety of @unchecked Sendable: the `var`s are only touched under `condition`'s lock; a
    // condition variable, not a `Mutex`, because the stagger sleeps on it.
    let id = UUID().uuidString.lowercased()
    let trigger: String
    let started = monotonicNanos()
    let condition = Condition()
    var outcomes: [RestoreOutcomeMessage] = []
    var waiters: [@Sendable (RestoreSummaryMessage) -> Void] = []
    var nextStartAt: UInt64 = 0
    /// Set when the worker stops: machines still waiting for their turn are not started.
    var stopping = false
    /// Machines whose outcome is not in yet.
    var pending = 0

    init(trigger: String) {
        self.trigger = trigger
    }

    /// One machine's outcome is in.
    func concluded() {
        condition.lock()
        pending -= 1
        if pending == 0 { condition.broadcast() }
        condition.unlock()
    }

    /// Blocks until every machine's outcome is in.
    func waitForOutcomes() {
        condition.lock()
        while pending > 0 { condition.wait() }
        condition.unlock()
    }

    /// Ends the stagger's waits at once.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
    }
}

extension Engine {
    /// Runs a restore now, or joins the one under way; `completion` gets its summary.
    /// - Parameter table: what loading the table found (at startup); later restores read memory.
    public func restore(trigger: String, table: StateTableLoad? = nil, completion: @escaping @Sendable (RestoreSummaryMessage) -> Void) {
        let run: RestoreRun? = restoreState.withLock { state in
            if let current = state.current {
                current.condition.lock()
                current.waiters.append(completion)
                current.condition.unlock()
                return nil
            }
            let run = RestoreRun(trigger: trigger)
            run.waiters.append(completion)
            state.current = run
            return run
        }
        guard let run else {
            logger.info("restore requested while one runs; joining it", metadata: ["restore.trigger": "\(trigger)"])
            return
        }
        WorkerThread.start { [self] in
            perform(run, table: table ?? (FileManager.default.fileExists(atPath: store.path) ? .present(machines: 0) : .absent))
        }
    }

    private func perform(_ run: RestoreRun, table: StateTableLoad) {
        let entries = store.snapshot().machines.sorted { ($0.value.name, $0.key) < ($1.value.name, $1.key) }
        logger.notice(
            "restore started",
            metadata: [
                "restore.id": "\(run.id)", "restore.trigger": "\(run.trigger)", "restore.table": "\(table.tableWord)",
                "restore.machines": "\(entries.count)", "state.file": "\(store.path)",
            ])
        run.condition.lock()
        run.pending = entries.count
        run.condition.unlock()
        var jobs: [(job: Job, lanes: [String])] = []
        for (uuid, entry) in entries {
            let command = Command(id: "restore-\(run.id)", op: .restore, machine: entry.name)
            let lanes = Array(Set([MachineDirectory.laneKey(entry.name), MachineDirectory.laneKey(uuid)]))
            let begun = monotonicNanos()
            let conclude: @Sendable (RestoreOutcomeMessage, Job) -> Void = { [self] outcome, job in
                guard job.claim() else { return }
                publishOutcome(outcome, run: run)
                dispatcherRelease(job)
                run.concluded()
            }
            let job = Job(command: command, origin: .local, lanes: lanes) { [self] job in
                let outcome = restoreMachine(uuid: uuid, entry: entry, run: run, begun: begun)
                conclude(outcome, job)
                dispatcherRelease(job)
            }
            let timeout = restoreSettings.machineTimeoutMs
            job.schedule(deadlineAfterMilliseconds: timeout, on: deadlines) {
                // Strongly: the restore waits for every machine's outcome, and this one must come.
                let record = WorkerErrorRecord.restoreTimeout(machine: entry.name, timeoutMs: timeout)
                conclude(
                    RestoreOutcomeMessage(
                        restoreId: run.id, trigger: run.trigger, machine: entry.name, uuid: uuid, desired: entry.desired,
                        found: nil, action: RestoreAction.failed.rawValue, error: .worker(record),
                        durationMs: millis(since: begun)),
                    job)
            }
            jobs.append((job, lanes))
        }
        // All at once: a command for one of these machines that arrives while the restore runs
        // waits for that machine's restore, even one the restore has not reached yet.
        dispatcherSubmit(jobs, limited: true)
        run.waitForOutcomes()

        run.condition.lock()
        let outcomes = run.outcomes
        run.condition.unlock()
        var counts: [String: Int] = [:]
        for action in RestoreAction.allCases { counts[action.rawValue] = 0 }
        for o in outcomes { counts[o.action, default: 0] += 1 }
        var summary = RestoreSummaryMessage(
            restoreId: run.id, trigger: run.trigger, table: table.tableWord, stateFile: store.path,
            total: outcomes.count, counts: counts, durationMs: millis(since: run.started))
        if case .corrupt(let movedTo, let reason) = table {
            summary.error = .corruptTable(path: store.path, movedTo: movedTo, reason: reason)
        }
        // Outcomes in table order, for a stable report.
        let order = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.key, $0) })
        let sorted = outcomes.sorted { (order[$0.uuid] ?? 0) < (order[$1.uuid] ?? 0) }
        restoreState.withLock { state in
            state.last = RestoreRecord(summary: summary, outcomes: sorted)
            state.current = nil
        }
        sink.send(Outgoing(topic: topics.restore, body: Codec.encode(summary)))
        logger.notice(
            "restore finished",
            metadata: [
                "restore.id": "\(run.id)", "restore.trigger": "\(run.trigger)", "restore.table": "\(table.tableWord)",
                "restore.total": "\(summary.total)", "restore.counts": .dictionary(counts.mapValues { .stringConvertible($0) }),
                "duration_ms": "\(summary.durationMs)",
            ])
        run.condition.lock()
        let waiters = run.waiters
        run.condition.unlock()
        for waiter in waiters { waiter(summary) }
    }

    private func publishOutcome(_ outcome: RestoreOutcomeMessage, run: RestoreRun) {
        run.condition.lock()
        run.outcomes.append(outcome)
        run.condition.unlock()
        metrics.restoreOutcome(action: outcome.action, milliseconds: outcome.durationMs)
        var metadata: Logger.Metadata = [
            "restore.id": "\(run.id)", "machine.name": "\(outcome.machine)", "machine.uuid": "\(outcome.uuid)",
            "restore.desired": "\(outcome.desired)", "restore.found": "\(outcome.found ?? "undefined")",
            "restore.action": "\(outcome.action)", "duration_ms": "\(outcome.durationMs)",
        ]
        if let error = outcome.error {
            metadata["error.summary"] = "\(error.summary)"
            metadata["error.category"] = "\(error.category)"
            if case .libvirt(let record) = error {
                metrics.libvirtError(codeName: record.codeName, category: record.category)
                metadata["libvirt.code_name"] = "\(record.codeName)"
                metadata["libvirt.message"] = "\(record.message ?? "")"
                sink.send(Outgoing(topic: topics.libvirtError, body: Codec.encode(record)))
            }
            logger.error("restore outcome", metadata: metadata)
        } else if outcome.action == RestoreAction.missing.rawValue {
            logger.warning("restore outcome", metadata: metadata)
        } else {
            logger.info("restore outcome", metadata: metadata)
        }
        sink.send(Outgoing(topic: topics.restore, body: Codec.encode(outcome)))
    }

    /// Compares one machine with libvirt and acts on the decision table.
    private func restoreMachine(uuid: String, entry: StateTable.Entry, run: RestoreRun, begun: UInt64) -> RestoreOutcomeMessage {
        func outcome(_ found: DomainState?, _ action: RestoreAction, _ error: ErrorRecord? = nil) -> RestoreOutcomeMessage {
            RestoreOutcomeMessage(
                restoreId: run.id, trigger: run.trigger, machine: entry.name, uuid: uuid, desired: entry.desired,
                found: found?.name, action: action.rawValue, error: error, durationMs: millis(since: begun))
        }
        func failure(_ error: LibvirtError, _ found: DomainState?, _ action: String) -> RestoreOutcomeMessage {
            outcome(found, .failed, .libvirt(E2LibvirtErrorRecord(error, id: nil, op: nil, machine: nil, action: action)))
        }
        let connection: Connection
        do {
            connection = try session.connection()
        } catch {
            return failure(error, nil, "restore machine '\(entry.name)'")
        }
        let domain: Domain
        let found: DomainState
        do {
            domain = try connection.lookup(uuid: uuid)
            found = try domain.state().state
        } catch {
            if error.code == .noDomain { return outcome(nil, .missing) }
            session.noteFailure(error, on: connection)
            return failure(error, nil, "restore machine '\(entry.name)'")
        }
        let (action, paused) = RestoreAction.decide(desired: entry.desired, found: found)
        switch action {
        case .started, .resumed:
            guard staggerWait(run) else { return outcome(found, .failed, .worker(.cancelled)) }
            do {
                if action == .started {
                    try Operations.create(domain, paused: paused, current: found)
                } else {
                    try domain.resume()
                }
            } catch {
                session.noteFailure(error, on: connection)
                return failure(error, found, "\(action == .started ? "start" : "resume") machine '\(entry.name)' during restore")
            }
            let now = (try? domain.state().state) ?? (paused ? .paused : .running)
            store.recordObserved(uuid: uuid, name: domain.name, observed: now.name)
            return outcome(found, action)
        default:
            store.recordObserved(uuid: uuid, name: domain.name, observed: found.name)
            return outcome(found, action)
        }
    }

    /// Spaces machine starts by `staggerMs`. Returns false when the worker stops before this
    /// machine's turn.
    private func staggerWait(_ run: RestoreRun) -> Bool {
        let stagger = UInt64(restoreSettings.staggerMs) * 1_000_000
        run.condition.lock()
        defer { run.condition.unlock() }
        guard stagger > 0 else { return !run.stopping }
        let at = max(monotonicNanos(), run.nextStartAt)
        run.nextStartAt = at + stagger
        while !run.stopping {
            let now = monotonicNanos()
            if now >= at { return true }
            run.condition.wait(seconds: Double(at - now) / 1e9)
        }
        return false
    }

    /// The `report` data: the last summary, its outcomes, and the state table.
    func reportData() -> JSONValue {
        let last = restoreState.withLock { $0.last }
        let table = store.snapshot()
        return [
            "restore": last.summary.map(JSONValue.encoding) ?? .null,
            "outcomes": .array(last.outcomes.map(JSONValue.encoding)),
            "machines": JSONValue.encoding(table.machines),
        ]
    }
}

extension JSONValue {
    /// Any encodable value as a JSON value.
    static func encoding<T: Encodable>(_ value: T) -> JSONValue {
        (try? JSONDecoder().decode(JSONValue.self, from: Codec.encode(value))) ?? .null
    }
}
