import ECPProtocol
import FoundationEssentials
import Glibc
import Libvirt
import Logging
import Synchronization
import Threading

/// Settings of the state restore.
public struct RestoreSettings: Sendable {
    /// How many machines are restored (or stopped by a host stop) at once.
    public var parallel: Int = 4
    /// Pause between two machine starts, to spare the host a boot storm.
    public var staggerMs: Int = 0
    /// How long one machine's restore may take before its outcome is `failed` with a timeout.
    public var machineTimeoutMs: Int = 120_000
    /// Tries after a start or resume failed with a retryable error, for machines whose policy
    /// does not say.
    public var retries: Int = RestoreSettings.defaultRetries
    /// The first pause before a retry; each next one doubles.
    public var retryMs: Int = RestoreSettings.defaultRetryMs

    public static let defaultRetries = 2
    public static let defaultRetryMs = 1000

    public init(
        parallel: Int = 4, staggerMs: Int = 0, machineTimeoutMs: Int = 120_000, retries: Int = RestoreSettings.defaultRetries,
        retryMs: Int = RestoreSettings.defaultRetryMs
    ) {
        self.parallel = parallel
        self.staggerMs = staggerMs
        self.machineTimeoutMs = machineTimeoutMs
        self.retries = retries
        self.retryMs = retryMs
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

/// A restore under way.
typealias RestoreRun = MachineRun<RestoreOutcomeMessage, RestoreSummaryMessage>

/// Machines in stages by their policy's order, lowest first, those without one last.
func stagedByOrder(_ machines: [(uuid: String, name: String, entry: StateTable.Entry?)], reversed: Bool = false) -> [StagedMachine] {
    // nil sorts after every order; reversed, before.
    let orders = Set(machines.map { $0.entry?.policy?.order ?? Int.max }).sorted()
    let ranked = reversed ? Array(orders.reversed()) : orders
    let stageOf = Dictionary(uniqueKeysWithValues: ranked.enumerated().map { ($1, $0) })
    return machines.map { m in
        let policy = m.entry?.policy ?? RestorePolicy()
        return StagedMachine(uuid: m.uuid, name: m.name, entry: m.entry, policy: policy, stage: stageOf[policy.order ?? Int.max]!)
    }
}

extension Engine {
    /// Runs a restore now, or joins the one under way; `completion` gets its summary.
    /// - Parameter table: what loading the table found (at startup); later restores read memory.
    public func restore(trigger: String, table: StateTableLoad? = nil, completion: @escaping @Sendable (RestoreSummaryMessage) -> Void) {
        let run: RestoreRun? = restoreState.withLock { state in
            if let current = state.current {
                current.join(completion)
                return nil
            }
            let run = RestoreRun(trigger: trigger, parallel: runParallel(restoreSettings.parallel))
            run.join(completion)
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
        if run.trigger == "startup" { waitForLibvirt(run) }
        let entries = store.snapshot().machines.sorted { ($0.value.name, $0.key) < ($1.value.name, $1.key) }
        // A graceful stop before a machine's turn must not replace the desired state it is to get.
        store.protectDesired(entries.map(\.key))
        let machines = stagedByOrder(entries.map { (uuid: $0.key, name: $0.value.name, entry: $0.value) })
        logger.notice(
            "restore started",
            metadata: [
                "restore.id": "\(run.id)", "restore.trigger": "\(run.trigger)", "restore.table": "\(table.tableWord)",
                "restore.machines": "\(entries.count)", "state.file": "\(store.path)",
                "restore.stages": "\((machines.map(\.stage).max() ?? -1) + 1)",
            ])
        let timeout = restoreSettings.machineTimeoutMs
        runStages(
            machines, run: run, op: .restore, timeoutMs: timeout,
            act: { [self] machine, abandoned in restoreMachine(machine, run: run, abandoned: abandoned) },
            timedOut: { machine, begun in
                let record = WorkerErrorRecord.restoreTimeout(machine: machine.name, timeoutMs: timeout)
                return RestoreOutcomeMessage(
                    restoreId: run.id, trigger: run.trigger, machine: machine.name, uuid: machine.uuid,
                    desired: machine.entry?.desired ?? "shutoff", found: nil, action: RestoreAction.failed.rawValue,
                    error: .worker(record), durationMs: millis(since: begun), order: machine.policy.order)
            },
            conclude: { [self] outcome in
                store.unprotectDesired(outcome.uuid)
                publishOutcome(outcome, run: run)
            },
            pauseAfter: { outcomes in
                // The next order waits for the slowest riser among the machines this one started.
                let delays = Dictionary(machines.map { ($0.uuid, $0.policy.upDelayMs ?? 0) }) { a, _ in a }
                return outcomes.filter { $0.action == RestoreAction.started.rawValue }.map { delays[$0.uuid] ?? 0 }.max() ?? 0
            })

        let outcomes = run.finish().outcomes
        // What a host stop recorded has been brought back.
        store.unpinDesired()
        var counts: [String: Int] = [:]
        for action in RestoreAction.allCases { counts[action.rawValue] = 0 }
        for o in outcomes { counts[o.action, default: 0] += 1 }
        var summary = RestoreSummaryMessage(
            restoreId: run.id, trigger: run.trigger, table: table.tableWord, stateFile: store.path,
            total: outcomes.count, counts: counts, durationMs: millis(since: run.started))
        if case .corrupt(let movedTo, let reason) = table {
            summary.error = .corruptTable(path: store.path, movedTo: movedTo, reason: reason)
        }
        // Outcomes in restore order (stage, then table order), for a stable report.
        let position = Dictionary(uniqueKeysWithValues: machines.enumerated().map { ($1.uuid, ($1.stage, $0)) })
        let sorted = outcomes.sorted { (position[$0.uuid] ?? (0, 0)) < (position[$1.uuid] ?? (0, 0)) }
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
        for waiter in run.finish().waiters { waiter(summary) }
    }

    /// At startup, libvirtd may come up after the worker: nothing is decided before libvirt
    /// answers, so no machine fails only because it was not up yet.
    private func waitForLibvirt(_ run: RestoreRun) {
        guard !session.isConnected else { return }
        logger.warning("restore waits for the libvirt connection", metadata: ["restore.id": "\(run.id)", "libvirt.uri": "\(config.libvirtURI)"])
        let began = monotonicNanos()
        while !session.waitUntilConnected(seconds: 1) {
            if run.isStopping { return }
        }
        logger.notice(
            "libvirt connected; restore goes on",
            metadata: ["restore.id": "\(run.id)", "restore.waited_ms": "\(millis(since: began))"])
    }

    private func publishOutcome(_ outcome: RestoreOutcomeMessage, run: RestoreRun) {
        metrics.restoreOutcome(action: outcome.action, milliseconds: outcome.durationMs)
        var metadata: Logger.Metadata = [
            "restore.id": "\(run.id)", "machine.name": "\(outcome.machine)", "machine.uuid": "\(outcome.uuid)",
            "restore.desired": "\(outcome.desired)", "restore.found": "\(outcome.found ?? "undefined")",
            "restore.action": "\(outcome.action)", "restore.attempts": "\(outcome.attempts)",
            "restore.order": "\(outcome.order.map(String.init) ?? "none")", "duration_ms": "\(outcome.durationMs)",
        ]
        if outcome.fromSave == true { metadata["restore.from_save"] = "true" }
        publishRunOutcome(
            Codec.encode(outcome), error: outcome.error, metadata: metadata, message: "restore outcome",
            notable: outcome.action == RestoreAction.missing.rawValue)
    }

    /// One machine's restore: tried again after a retryable failure, up to its policy's retries,
    /// with the pause doubling from `retryMs`.
    /// `abandoned` says true once the machine's outcome was given without it (its time ran out):
    /// then no further try is made, since a command may have changed the machine since.
    private func restoreMachine(_ machine: StagedMachine, run: RestoreRun, abandoned: @Sendable () -> Bool) -> RestoreOutcomeMessage {
        let begun = monotonicNanos()
        let retries = machine.policy.retries ?? restoreSettings.retries
        var attempt = 1
        while true {
            var outcome = restoreAttempt(machine, run: run, begun: begun)
            outcome.attempts = attempt
            guard outcome.action == RestoreAction.failed.rawValue, case .libvirt(let record) = outcome.error, record.retryable,
                attempt <= retries
            else { return outcome }
            let pauseMs = restoreSettings.retryMs << min(attempt - 1, 16)
            logger.warning(
                "restore attempt failed; trying again",
                metadata: [
                    "restore.id": "\(run.id)", "machine.name": "\(machine.name)", "machine.uuid": "\(machine.uuid)",
                    "restore.attempt": "\(attempt)", "restore.retries": "\(retries)", "retry.backoff_ms": "\(pauseMs)",
                    "libvirt.code_name": "\(record.codeName)", "error.summary": "\(record.summary)",
                ])
            guard run.pause(until: monotonicNanos() + UInt64(pauseMs) * 1_000_000), !abandoned() else { return outcome }
            attempt += 1
        }
    }

    /// Compares one machine with libvirt and acts on the decision table.
    private func restoreAttempt(_ machine: StagedMachine, run: RestoreRun, begun: UInt64) -> RestoreOutcomeMessage {
        let uuid = machine.uuid
        let name = machine.name
        // Read now, holding the machine's lanes: a command that ran between the restore's start and
        // this machine's turn may have changed what it should be.
        let desired = store.entry(uuid)?.desired ?? machine.entry?.desired ?? "shutoff"
        func outcome(_ found: DomainState?, _ action: RestoreAction, _ error: ErrorRecord? = nil, fromSave: Bool = false) -> RestoreOutcomeMessage {
            RestoreOutcomeMessage(
                restoreId: run.id, trigger: run.trigger, machine: name, uuid: uuid, desired: desired,
                found: found?.name, action: action.rawValue, error: error, durationMs: millis(since: begun),
                order: machine.policy.order, fromSave: fromSave ? true : nil)
        }
        func failure(_ error: LibvirtError, _ found: DomainState?, _ action: String) -> RestoreOutcomeMessage {
            outcome(found, .failed, .libvirt(E2LibvirtErrorRecord(error, id: nil, op: nil, machine: nil, action: action)))
        }
        if run.isStopping { return outcome(nil, .failed, .worker(.cancelled)) }
        let connection: Connection
        do {
            connection = try session.connection()
        } catch {
            return failure(error, nil, "restore machine '\(name)'")
        }
        let domain: Domain
        let found: DomainState
        do {
            domain = try connection.lookup(uuid: uuid)
            found = try domain.state().state
        } catch {
            if error.code == .noDomain { return outcome(nil, .missing) }
            session.noteFailure(error, on: connection)
            return failure(error, nil, "restore machine '\(name)'")
        }
        let (action, paused) = RestoreAction.decide(desired: desired, found: found)
        switch action {
        case .started, .resumed:
            guard staggerWait(run) else { return outcome(found, .failed, .worker(.cancelled)) }
            var fromSave = false
            do {
                if action == .started {
                    fromSave = (try? domain.hasManagedSaveImage()) ?? false
                    try Operations.create(domain, paused: paused, current: found)
                } else {
                    try domain.resume()
                }
            } catch {
                session.noteFailure(error, on: connection)
                return failure(error, found, "\(action == .started ? "start" : "resume") machine '\(name)' during restore")
            }
            let now = (try? domain.state().state) ?? (paused ? .paused : .running)
            store.recordObserved(uuid: uuid, name: domain.name, observed: now.name)
            return outcome(found, action, fromSave: fromSave)
        default:
            store.recordObserved(uuid: uuid, name: domain.name, observed: found.name)
            return outcome(found, action)
        }
    }

    /// Spaces machine starts by `staggerMs`. Returns false when the worker stops before this
    /// machine's turn.
    private func staggerWait(_ run: RestoreRun) -> Bool {
        let stagger = UInt64(restoreSettings.staggerMs) * 1_000_000
        guard stagger > 0 else { return !run.isStopping }
        run.condition.lock()
        let at = max(monotonicNanos(), run.nextStartAt)
        run.nextStartAt = at + stagger
        run.condition.unlock()
        return run.pause(until: at)
    }

    /// The `report` data: the last summary, its outcomes, and the state table.
    func reportData() -> JSONValue {
        let last = restoreState.withLock { $0.last }
        let table = store.snapshot()
        return [
            "restore": last.summary.map(JSONValue.encoding) ?? .null,
            "outcomes": .array(last.outcomes.map(JSONValue.encoding)),
            "machines": .object(table.machines.mapValues { entry in
                // Every member of the policy, its defaults included.
                guard case .object(var row) = JSONValue.encoding(entry) else { return .null }
                row["policy"] = JSONValue.encoding((entry.policy ?? RestorePolicy()).effective(defaultRetries: restoreSettings.retries))
                return .object(row)
            }),
        ]
    }
}

extension JSONValue {
    /// Any encodable value as a JSON value.
    static func encoding<T: Encodable>(_ value: T) -> JSONValue {
        (try? JSONDecoder().decode(JSONValue.self, from: Codec.encode(value))) ?? .null
    }
}
