import CoreMetrics
import ECPProtocol
import Threading
import FoundationEssentials
import Libvirt
import Logging
import Synchronization

/// The engine's settings.
public struct EngineConfiguration: Sendable {
    public var workerID: String
    public var libvirtURI: String
    public var maxParallel: Int
    public var limits: CommandLimits
    public var dedupeCapacity: Int
    public var dedupeWindowSeconds: Double
    /// The most the remembered results may weigh, in bytes.
    public var dedupeBytes: Int = EngineConfiguration.defaultDedupeBytes
    /// Path of the state table.
    public var stateFile: String
    public var restore: RestoreSettings
    /// Commands accepted and not yet answered, past which new ones are answered `busy`.
    public var maxQueue: Int = 10_000
    /// While a `shutdown` waits (`wait_ms`), the ACPI request is sent again this often: a guest
    /// ignores the power button until its OS listens for it. 0 sends it once.
    public var shutdownRetryMs: Int = EngineConfiguration.defaultShutdownRetryMs
    /// After a failed write of the state table, the next try comes this long after. The protocol
    /// asks for a try at least once per heartbeat interval: the worker keeps it within that.
    public var stateRetryMs: Int = EngineConfiguration.defaultStateRetryMs

    /// Milliseconds between the periodic samples of the machines' usage (`stats` messages);
    /// 0 takes none, and the metrics take a sample when asked.
    public var statsIntervalMs: Int = EngineConfiguration.defaultStatsIntervalMs

    public static let defaultStatsIntervalMs = 15_000
    public static let defaultShutdownRetryMs = 5_000
    public static let defaultStateRetryMs = StateStore.defaultRetryMs
    public static let defaultDedupeBytes = 64 << 20

    public init(
        workerID: String, libvirtURI: String, stateFile: String, maxParallel: Int = 8, limits: CommandLimits = .default,
        dedupeCapacity: Int = 10_000, dedupeWindowSeconds: Double = 600, restore: RestoreSettings = .init(),
        maxQueue: Int = 10_000, shutdownRetryMs: Int = EngineConfiguration.defaultShutdownRetryMs,
        dedupeBytes: Int = EngineConfiguration.defaultDedupeBytes,
        stateRetryMs: Int = EngineConfiguration.defaultStateRetryMs,
        statsIntervalMs: Int = EngineConfiguration.defaultStatsIntervalMs
    ) {
        self.statsIntervalMs = statsIntervalMs
        self.dedupeBytes = dedupeBytes
        self.stateRetryMs = stateRetryMs
        self.maxQueue = maxQueue
        self.shutdownRetryMs = shutdownRetryMs
        self.workerID = workerID
        self.stateFile = stateFile
        self.restore = restore
        self.libvirtURI = libvirtURI
        self.maxParallel = maxParallel
        self.limits = limits
        self.dedupeCapacity = dedupeCapacity
        self.dedupeWindowSeconds = dedupeWindowSeconds
    }
}

/// One accepted command on its way through the dispatcher.
final class Job: DispatchJob {
    let command: Command
    let origin: Origin
    let acceptedAt: UInt64
    let lanes: [String]
    /// Work other than a command (a machine's restore), run in the command's place.
    let task: (@Sendable (Job) -> Void)?
    /// For a machine of a restore or host stop: the gate that admits it, and its stage.
    let stage: (gate: StageGate, index: Int)?
    private let state = Mutex(State())

    private struct State {
        var finished = false
        /// The job's deadline, cancelled when the job is finished so that it holds nothing after.
        var deadline: (scheduler: Scheduler, token: Scheduler.Token)?
    }

    init(
        command: Command, origin: Origin, lanes: [String], stage: (gate: StageGate, index: Int)? = nil,
        task: (@Sendable (Job) -> Void)? = nil
    ) {
        self.stage = stage
        self.command = command
        self.origin = origin
        self.acceptedAt = monotonicNanos()
        self.lanes = lanes
        self.task = task
    }

    /// `status` of the same machine, in the same spelling: what one read says answers both.
    func mayShareRun(with head: Job) -> Bool {
        task == nil && head.task == nil && command.op == .status && head.command.op == .status
            && command.machine == head.command.machine
    }

    var isGated: Bool { stage != nil }

    func admit() -> Bool {
        stage.map { $0.gate.admit(stage: $0.index) } ?? true
    }

    func leave() {
        stage?.gate.leave()
    }

    /// Whether the job has been finished (answered, timed out or cancelled).
    var isFinished: Bool { state.withLock { $0.finished } }

    /// Schedules the job's deadline; `action` is cancelled as soon as the job is finished.
    func schedule(deadlineAfterMilliseconds milliseconds: Int, on scheduler: Scheduler, _ action: @escaping @Sendable () -> Void) {
        let token = scheduler.run(afterMilliseconds: milliseconds, action)
        let finished = state.withLock { state in
            if !state.finished { state.deadline = (scheduler, token) }
            return state.finished
        }
        if finished { scheduler.cancel(token) }
    }

    /// True for exactly one caller: whoever finishes the job first (its run or its deadline).
    func claim() -> Bool {
        let claimed: (scheduler: Scheduler, token: Scheduler.Token)?? = state.withLock { state in
            if state.finished { return nil }
            state.finished = true
            defer { state.deadline = nil }
            return .some(state.deadline)
        }
        guard let deadline = claimed else { return false }
        // Outside the job's lock: the scheduler takes its own.
        if let deadline { deadline.scheduler.cancel(deadline.token) }
        return true
    }
}

/// The worker's pipeline behind the sockets: decode and validate, acknowledge, de-duplicate,
/// order per machine, run through libvirt, and publish what came of it.
///
/// It knows nothing of ZeroMQ: commands come in through `submit`, messages leave through a
/// `MessageSink`, so tests drive it in memory.
public final class Engine: Sendable {
    let config: EngineConfiguration
    let sink: any MessageSink
    let logger: Logger
    let session: LibvirtSession
    let store: StateStore
    let restoreSettings: RestoreSettings
    let restoreState = Mutex<RestoreCoordination>(.init())
    private let decoder: CommandDecoder
    let operations: Operations
    private let cache: IdempotencyCache<Origin>
    private let dispatcher: Dispatcher<Job>
    private let accepting = Atomic<Bool>(true)
    private let counters = Counters()
    let metrics: EngineMetrics
    let startedAt = monotonicNanos()
    let topics: Topics
    /// Lifecycle events, in order, off libvirt's event thread.
    private let events = Scheduler(name: "ecp-events")
    /// Commands' and restores' deadlines.
    let deadlines = Scheduler(name: "ecp-deadlines")
    private let machineStops = MachineStops()
    let statsCollector: StatsCollector
    /// The periodic samples of the machines' usage; none when `statsIntervalMs` is 0.
    private let statsTimer = Scheduler(name: "ecp-stats")
    /// Told of every periodic sample, on the sampling thread (the metrics endpoint renders it then).
    private let sampleObserver = Mutex<(@Sendable (StatsSample) -> Void)?>(nil)
    /// Commands accepted and not yet answered, so that those still running when the worker
    /// stops can be answered.
    private let unanswered = Mutex<[ObjectIdentifier: Job]>([:])

    /// The restore under way and the last one's record.
    struct RestoreCoordination: Sendable {
        var current: RestoreRun?
        var hostStop: HostStopRun?
        var last = RestoreRecord()
    }

    /// Counters for heartbeats, and the wait for the commands in flight at shutdown.
    final class Counters: Sendable {
        let inFlight = Atomic<Int>(0)
        let processed = Atomic<UInt64>(0)
        let failed = Atomic<UInt64>(0)
        /// Signalled when `inFlight` drops to 0. The count stays an atomic, off the lock, for
        /// the intake's sake; the lock is only taken to signal, which keeps a waiter that just
        /// read a count above 0 from missing the wake-up.
        private let idle = Condition()

        /// One command answered.
        func answered() {
            if inFlight.subtract(1, ordering: .relaxed).newValue == 0 {
                idle.lock()
                idle.broadcast()
                idle.unlock()
            }
        }

        /// Blocks until no command is in flight or the monotonic instant `deadline` passes.
        func waitUntilIdle(deadline: UInt64) {
            idle.lock()
            defer { idle.unlock() }
            while inFlight.load(ordering: .relaxed) > 0 {
                let now = monotonicNanos()
                if now >= deadline { return }
                idle.wait(seconds: Double(deadline - now) / 1e9)
            }
        }
    }

    struct Topics: Sendable {
        let ack, result, libvirtError, requestError, machine, heartbeat, worker, restore, stats: String
        init(_ id: String) {
            ack = Topic.ack(id)
            result = Topic.result(id)
            libvirtError = Topic.libvirtError(id)
            requestError = Topic.requestError(id)
            machine = Topic.machine(id)
            heartbeat = Topic.heartbeat(id)
            worker = Topic.worker(id)
            restore = Topic.restore(id)
            stats = Topic.stats(id)
        }
    }

    /// `metrics` receives the engine's figures (commands, errors, restores, state commits); by
    /// default they go nowhere.
    public init(
        configuration: EngineConfiguration, sink: any MessageSink, logger: Logger,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) {
        self.config = configuration
        self.metrics = EngineMetrics(factory: metrics)
        self.sink = sink
        self.logger = logger
        self.decoder = CommandDecoder(limits: configuration.limits)
        self.cache = IdempotencyCache(
            capacity: configuration.dedupeCapacity, windowSeconds: configuration.dedupeWindowSeconds,
            maxBytes: configuration.dedupeBytes)
        self.topics = Topics(configuration.workerID)
        self.store = StateStore(
            path: configuration.stateFile, workerID: configuration.workerID, logger: logger,
            retryMs: configuration.stateRetryMs, metrics: self.metrics)
        self.restoreSettings = configuration.restore
        let box = SessionCallbacks()
        let statsCollector: StatsCollector
        self.session = LibvirtSession(
            uri: configuration.libvirtURI, logger: logger,
            onEvent: { event in box.engine?.handleLifecycle(event) })
        statsCollector = StatsCollector(session: session)
        self.statsCollector = statsCollector
        self.operations = Operations(
            session: session, startedAt: startedAt, logger: logger, shutdownRetryMs: configuration.shutdownRetryMs,
            machineStops: machineStops, stats: statsCollector)
        self.dispatcher = Dispatcher<Job>(threads: configuration.maxParallel, name: "ecp-exec")
        box.engine = self
        dispatcher.start { [weak self] job, sharing in
            self?.run(job, sharing: sharing)
        }
    }

    deinit {
        statsTimer.stop()
        events.stop()
        deadlines.stop()
        dispatcher.stop()
        session.stop()
        store.stopWriter()
    }

    /// Breaks the cycle between the session's callbacks and the engine.
    private final class SessionCallbacks: Sendable {
        private struct Reference { weak var engine: Engine? }
        private let reference = Mutex(Reference())

        var engine: Engine? {
            get { reference.withLock { $0.engine } }
            set { reference.withLock { $0.engine = newValue } }
        }
    }

    /// Takes the state table for this worker (a lock file keeps a second worker off it), reads
    /// it, and starts its writer; returns what loading found.
    @discardableResult
    public func openStateTable() throws(StateTableError) -> StateTableLoad {
        try store.lock()
        let result = store.load()
        store.start()
        return result
    }

    /// Opens libvirt; a failure is logged and the worker keeps trying in the background.
    public func start() {
        if let error = session.start() {
            logger.error(
                "libvirt connection failed; the worker runs on and retries",
                metadata: error.logMetadata.merging(["libvirt.uri": "\(config.libvirtURI)"]) { _, new in new })
        } else {
            logger.info("libvirt connected", metadata: ["libvirt.uri": "\(config.libvirtURI)"])
        }
    }

    // MARK: intake

    /// Takes one command document. Called by the transport's thread; never blocks on libvirt.
    public func submit(_ payload: Data, from origin: Origin) {
        let command: Command
        switch decoder.decode(payload) {
        case .failure(let error):
            rejectRequest(error, origin: origin)
            return
        case .success(let c):
            command = c
        }
        if command.op == .replay {
            answerReplay(command, origin: origin)
            return
        }
        guard accepting.load(ordering: .relaxed) else {
            rejectRequest(
                RequestError(reason: .busy, id: command.id, detail: "the worker is stopping and takes no more commands"),
                origin: origin)
            return
        }
        if counters.inFlight.load(ordering: .relaxed) >= config.maxQueue {
            rejectRequest(
                RequestError(
                    reason: .busy, id: command.id,
                    detail: "\(config.maxQueue) commands are waiting; send it again later"),
                origin: origin)
            return
        }
        switch cache.begin(command.id, waiter: origin) {
        case .new:
            break
        case .running:
            logger.debug("duplicate command id; answering when the first run ends", metadata: commandMetadata(command))
            return
        case .done(let first):
            logger.debug("duplicate command id; answering with the first result", metadata: commandMetadata(command))
            sink.send(Outgoing(topic: topics.result, body: Self.duplicateAnswer(first), reply: origin.reply))
            return
        }
        sink.send(Outgoing(
            topic: topics.ack,
            body: AcceptedMessage(id: command.id, op: command.op.rawValue, machine: command.machine).jsonBytes()))
        counters.inFlight.add(1, ordering: .relaxed)
        let job = Job(command: command, origin: origin, lanes: lanes(for: command))
        unanswered.withLock { $0[ObjectIdentifier(job)] = job }
        if let timeout = command.timeoutMs {
            // Weakly: once answered, the job (its command may carry a large define XML) is
            // not kept for the deadline's sake, even before the cancellation takes it away.
            job.schedule(deadlineAfterMilliseconds: timeout, on: deadlines) { [weak self, weak job] in
                if let job { self?.expire(job) }
            }
        }
        switch command.op {
        case .report:
            var outcome = OpOutcome()
            outcome.data = reportData()
            finish(job, outcome: outcome)
        case .restore:
            restore(trigger: "command") { [self] summary in
                var outcome = OpOutcome()
                outcome.data = JSONValue.encoding(summary)
                finish(job, outcome: outcome)
            }
        case .hostStop:
            hostStop(command) { [self] result in
                switch result {
                case .success(let summary):
                    var outcome = OpOutcome()
                    outcome.data = JSONValue.encoding(summary)
                    finish(job, outcome: outcome)
                case .failure(let error):
                    finish(job, outcome: .failed(.libvirt(error, action: Self.what(command))))
                }
            }
        case .ping:
            finish(job, outcome: operations.run(command))
        default:
            // Every libvirt call, whatever the driver, runs on the dispatcher's threads: a slow
            // daemon never holds up the sockets, and what is measured is what a host runs.
            dispatcherSubmit(job)
        }
    }

    func dispatcherSubmit(_ job: Job) {
        dispatcher.submit(job, lanes: job.lanes)
    }

    func dispatcherSubmit(_ jobs: [(job: Job, lanes: [String])]) {
        dispatcher.submit(jobs)
    }

    func dispatcherReconsider() {
        dispatcher.reconsider()
    }

    func dispatcherRelease(_ job: Job) {
        dispatcher.release(job)
    }

    /// Lanes serialise commands per machine, whichever spelling names it.
    private func lanes(for command: Command) -> [String] {
        guard let machine = command.machine else { return [] }
        return session.directory.lanes(for: machine)
    }

    /// `replay`, on the control socket only: no ack, no number of the published stream, no place
    /// in the id memory; its page would flood every subscriber if it were published.
    private func answerReplay(_ command: Command, origin: Origin) {
        guard let route = origin.reply else {
            rejectRequest(
                RequestError(
                    reason: .invalidField, id: command.id, field: "op",
                    detail: "replay is answered on the control socket only; on the commands socket its pages would go to every subscriber"),
                origin: origin)
            return
        }
        let started = monotonicNanos()
        let args = command.args
        let (run, page) = sink.replay(
            since: args.sinceSeq ?? 0, limit: args.limit ?? ReplayLimits.defaultPage, topics: args.topics)
        var result = ResultMessage(id: command.id, op: command.op.rawValue, machine: nil, ok: true, durationMs: 0)
        result.dataJSON = page.jsonBytes(run: run)
        result.durationMs = millis(since: started)
        logger.debug(
            "replay answered",
            metadata: commandMetadata(command).merging([
                "replay.since_seq": "\(args.sinceSeq ?? 0)", "replay.messages": "\(page.messages.count)",
                "replay.next_seq": "\(page.nextSeq)", "replay.truncated": "\(page.truncated)",
            ]) { _, n in n })
        sink.send(Outgoing(topic: topics.result, body: result.jsonBytes(), reply: route, published: false))
    }

    /// Answers a frame that did not have the shape of a request (wrong frame count).
    public func rejectFrames(detail: String, origin: Origin) {
        rejectRequest(RequestError(reason: .badFrames, detail: detail), origin: origin)
    }

    func rejectRequest(_ error: RequestError, origin: Origin) {
        var metadata: Logger.Metadata = [
            "request.reason": "\(error.reason.rawValue)", "request.detail": "\(error.detail)",
            "request.origin": "\(origin.name)",
        ]
        if let id = error.id { metadata["command.id"] = "\(id)" }
        if let field = error.field { metadata["request.field"] = "\(field)" }
        logger.warning("command refused", metadata: metadata)
        metrics.requestError(error.reason)
        // A refused replay is answered to its client only, like a replay.
        let published = !(error.op == .replay && origin.reply != nil)
        sink.send(Outgoing(
            topic: topics.requestError, body: [UInt8](Codec.encode(RequestErrorMessage(error))), reply: origin.reply,
            published: published))
    }

    // MARK: execution

    /// Runs a job, and answers the jobs that share its run with the same outcome.
    private func run(_ job: Job, sharing: [Job]) {
        // A job whose deadline passed while it waited is not run at all. Its lanes were freed
        // when it was answered; if it was answered before it was queued, they are freed here.
        var jobs: [Job] = []
        for j in CollectionOfOne(job) + sharing {
            if j.isFinished { dispatcher.release(j) } else { jobs.append(j) }
        }
        guard let first = jobs.first else { return }
        if let task = first.task {
            task(first)
            return
        }
        let outcome = operations.run(first.command)
        for j in jobs { finish(j, outcome: outcome) }
    }

    private func expire(_ job: Job) {
        guard job.claim() else { return }
        let command = job.command
        let timeout = command.timeoutMs ?? 0
        let record = WorkerErrorRecord.commandTimeout(what: Self.what(command), timeoutMs: timeout)
        logger.warning("command timed out", metadata: commandMetadata(command).merging(["timeout_ms": "\(timeout)"]) { _, n in n })
        publishResult(job, outcome: .failed(.worker(record)))
        // The machine's lane is freed: the worker moves on while the libvirt call runs out.
        dispatcher.release(job)
    }

    /// The operation, with its machine if it has one, as error summaries name it.
    static func what(_ command: Command) -> String {
        command.machine.map { "\(command.op.verb) machine '\($0)'" } ?? command.op.verb
    }

    /// Answers a job and frees its lanes.
    private func finish(_ job: Job, outcome: OpOutcome) {
        guard job.claim() else {
            var metadata = commandMetadata(job.command)
            metadata["command.late"] = "true"
            if case .libvirt(let e, _) = outcome.failure { metadata.merge(e.logMetadata) { _, n in n } }
            logger.notice("command finished after it was answered (its deadline passed, or the worker stopped)", metadata: metadata)
            return
        }
        publishResult(job, outcome: outcome)
        dispatcher.release(job)
    }

    private func publishResult(_ job: Job, outcome: OpOutcome) {
        unanswered.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(job)) }
        let command = job.command
        let duration = millis(since: job.acceptedAt)
        let outcomeLabel: CommandOutcomeLabel
        switch outcome.failure {
        case .none: outcomeLabel = .ok
        case .libvirt: outcomeLabel = .libvirtError
        case .worker: outcomeLabel = .workerError
        }
        metrics.command(command.op, outcome: outcomeLabel, nanoseconds: monotonicNanos() &- job.acceptedAt)
        var result = ResultMessage(
            id: command.id, op: command.op.rawValue, machine: command.machine, ok: outcome.failure == nil,
            durationMs: duration)
        switch outcome.failure {
        case .none:
            result.changed = outcome.changed
            result.state = outcome.state?.name
            if let json = outcome.dataJSON, outcome.data == nil {
                result.dataJSON = json
            } else {
                result.data = outcome.data ?? .object([:])
            }
        case .libvirt(let error, let action):
            let record = E2LibvirtErrorRecord(
                error, id: command.id, op: command.op.rawValue, machine: command.machine, action: action)
            result.error = .libvirt(record)
            metrics.libvirtError(codeName: record.codeName, category: record.category)
            logger.error(
                "command failed",
                metadata: commandMetadata(command).merging(error.logMetadata) { _, n in n }.merging([
                    "error.category": "\(record.category)", "error.retryable": "\(record.retryable)",
                    "error.summary": "\(record.summary)", "duration_ms": "\(duration)",
                ]) { _, n in n })
            sink.send(Outgoing(topic: topics.libvirtError, body: Codec.encode(record)))
        case .worker(let record):
            result.error = .worker(record)
            logger.error(
                "command failed",
                metadata: commandMetadata(command).merging([
                    "error.type": "\(record.type)", "error.category": "\(record.category)",
                    "error.summary": "\(record.summary)", "duration_ms": "\(duration)",
                ]) { _, n in n })
        }
        if outcome.failure == nil {
            logger.debug(
                "command done",
                metadata: commandMetadata(command).merging([
                    "command.changed": "\(outcome.changed)", "machine.state": "\(outcome.state?.name ?? "-")",
                    "duration_ms": "\(duration)",
                ]) { _, n in n })
        }
        if outcome.failure == nil, command.op == .setPolicy, let uuid = outcome.machineUUID, let name = outcome.machineName {
            recordPolicy(result, job: job, uuid: uuid, name: name, observed: outcome.state?.name)
            return
        }
        if outcome.failure == nil, let uuid = outcome.machineUUID, let name = outcome.machineName {
            if let desired = Self.desiredState(after: command, outcome: outcome) {
                // A result that reports a state change goes out once the change is on disk.
                // If it cannot be, the result still says what happened, and that a host reboot now
                // would bring back the previous desired state; the store keeps trying to write it.
                let result = result
                store.recordIntent(
                    uuid: uuid, name: name, desired: desired, observed: outcome.state?.name,
                    remove: command.op == .undefine
                ) { [self] saved in
                    var result = result
                    if !saved {
                        result.saved = false
                        logger.warning("command's state change is not saved yet; publishing its result anyway", metadata: commandMetadata(command))
                    }
                    deliver(result, job: job, failed: false)
                }
                return
            }
            // Reads leave `observed` to the lifecycle events, which report every change.
            if command.op.changesState {
                store.recordObserved(uuid: uuid, name: name, observed: outcome.state?.name)
            }
        }
        deliver(result, job: job, failed: outcome.failure != nil)
    }

    /// `set_policy`: the policy goes into the state table, and the result out once it is on disk.
    private func recordPolicy(_ result: ResultMessage, job: Job, uuid: String, name: String, observed: String?) {
        let command = job.command
        let pending = Mutex<(result: ResultMessage?, saved: Bool?)>((nil, nil))
        // The store may call back before `setPolicy` returns the policy the result shows.
        let deliverOnce: @Sendable () -> Void = { [self] in
            let ready = pending.withLock { p -> ResultMessage? in
                guard var result = p.result, let saved = p.saved else { return nil }
                if !saved { result.saved = false }
                p.result = nil
                return result
            }
            guard let ready else { return }
            if ready.saved == false {
                logger.warning("policy is not saved yet; publishing its result anyway", metadata: commandMetadata(command))
            }
            deliver(ready, job: job, failed: false)
        }
        let (policy, changed) = store.setPolicy(
            uuid: uuid, name: name, observed: observed, change: command.args.policy ?? PolicyChange()
        ) { saved in
            pending.withLock { $0.saved = saved }
            deliverOnce()
        }
        var result = result
        result.changed = changed
        let effective = policy.effective(defaultRetries: restoreSettings.retries)
        result.data = ["policy": JSONValue.encoding(effective)]
        logger.info(
            "restore policy set",
            metadata: commandMetadata(command).merging([
                "machine.uuid": "\(uuid)", "policy.order": "\(effective.order.map(String.init) ?? "none")",
                "policy.up_delay_ms": "\(effective.upDelayMs)", "policy.retries": "\(effective.retries)",
                "policy.host_stop": "\(effective.hostStop.rawValue)", "command.changed": "\(changed)",
            ]) { _, n in n })
        pending.withLock { $0.result = result }
        deliverOnce()
    }

    /// The answer to a duplicate of a finished command: its first result, as remembered, with
    /// `duplicate: true`. Duplicates are rare; the memory keeps results in their compact, sent
    /// form and reads one back only for them.
    static func duplicateAnswer(_ first: [UInt8]) -> [UInt8] {
        do {
            var result = try JSONDecoder().decode(ResultMessage.self, from: Data(first))
            result.duplicate = true
            return result.jsonBytes()
        } catch {
            preconditionFailure("a remembered result does not read back: \(error)")
        }
    }

    /// The state a successful command asks the machine to be in (nil: it asks for none), and for
    /// `define`/`undefine` the table row's creation or removal.
    static func desiredState(after command: Command, outcome: OpOutcome) -> String? {
        switch command.op {
        case .start:
            // Starting a machine that is already up and paused leaves it paused: that is its intent.
            if command.args.paused == true || (!outcome.changed && outcome.state == .paused) { return "paused" }
            return "running"
        case .resume, .reboot: return "running"
        case .suspend: return "paused"
        case .shutdown, .destroy: return "shutoff"
        case .undefine: return "shutoff"
        default: return nil
        }
    }

    private func deliver(_ result: ResultMessage, job: Job, failed: Bool) {
        let command = job.command
        counters.processed.add(1, ordering: .relaxed)
        if failed { counters.failed.add(1, ordering: .relaxed) }
        counters.answered()
        let body = result.jsonBytes()
        let waiters = cache.complete(command.id, result: body)
        sink.send(Outgoing(topic: topics.result, body: body, reply: job.origin.reply))
        if !waiters.isEmpty {
            var duplicate = result
            duplicate.duplicate = true
            let body = duplicate.jsonBytes()
            for waiter in waiters {
                sink.send(Outgoing(topic: topics.result, body: body, reply: waiter.reply))
            }
        }
    }

    func commandMetadata(_ command: Command) -> Logger.Metadata {
        command.logMetadata
    }

    // MARK: events

    func handleLifecycle(_ event: LifecycleEvent) {
        // A waiting shutdown hears of its machine's power-off from here, not behind the queue.
        if Self.stateAfter(event) == .shutoff { machineStops.stopped(event.domainUUID) }
        // Runs on libvirt's event thread; events keep their order on a thread of their own, where
        // a `defined` event, which does not imply a state, may ask libvirt for it.
        events.run { [self] in publishLifecycle(event) }
    }

    private func publishLifecycle(_ event: LifecycleEvent) {
        var state = Self.stateAfter(event)
        if state == nil, event.eventName == "defined", let connection = try? session.connection() {
            state = try? connection.lookup(uuid: event.domainUUID).state().state
        }
        logger.info(
            "machine lifecycle event",
            metadata: [
                "machine.name": "\(event.domainName)", "machine.uuid": "\(event.domainUUID)",
                "event.name": "\(event.eventName)", "event.detail": "\(event.detailName)",
                "machine.state": "\(state?.name ?? "-")",
            ])
        if let state { store.recordObserved(uuid: event.domainUUID, name: event.domainName, observed: state.name) }
        sink.send(Outgoing(
            topic: topics.machine,
            body: MachineEventMessage(
                machine: event.domainName, uuid: event.domainUUID, event: event.eventName,
                detail: event.detailName, state: state?.name).jsonBytes()))
    }

    /// The state a lifecycle event leaves the machine in, without asking libvirt from the event thread.
    static func stateAfter(_ event: LifecycleEvent) -> DomainState? {
        switch event.eventName {
        case "started", "resumed": return .running
        case "suspended": return .paused
        case "stopped": return .shutoff
        case "shutdown": return event.detailName == "finished" ? .shutoff : .shutdown
        case "crashed": return .crashed
        case "pmsuspended": return .pmsuspended
        case "defined": return nil
        default: return nil
        }
    }

    /// Publishes one heartbeat.
    public func heartbeat(intervalMs: Int) {
        let table = store.status
        let message = HeartbeatMessage(
            uptimeS: (Double(monotonicNanos() - startedAt) / 1e6).rounded() / 1000,
            libvirt: session.isConnected ? "connected" : "disconnected",
            inFlight: counters.inFlight.load(ordering: .relaxed),
            processed: counters.processed.load(ordering: .relaxed),
            failed: counters.failed.load(ordering: .relaxed),
            intervalMs: intervalMs,
            stateTable: table.saved ? "saved" : "unsaved",
            unsavedSince: table.unsavedSince)
        sink.send(Outgoing(topic: topics.heartbeat, body: Codec.encode(message)))
    }

    // MARK: stats

    /// Starts the periodic samples: the first now, then one every `statsIntervalMs`, on a thread
    /// of their own, so that a slow libvirt holds up neither the commands nor the sockets.
    public func startStatsSampling() {
        let interval = config.statsIntervalMs
        guard interval > 0 else { return }
        statsTimer.run { [weak self] in self?.periodicSample(due: monotonicNanos(), intervalMs: interval) }
    }

    /// `observer` gets every periodic sample once it is published, on the sampling thread.
    public func observeSamples(_ observer: @escaping @Sendable (StatsSample) -> Void) {
        sampleObserver.withLock { $0 = observer }
    }

    private func periodicSample(due: UInt64, intervalMs: Int) {
        guard accepting.load(ordering: .relaxed) else { return }
        do {
            let sample = try statsCollector.sample(machine: nil)
            sink.send(Outgoing(topic: topics.stats, body: Codec.encode(StatsMessage(sample))))
            sampleObserver.withLock { $0 }?(sample)
        } catch {
            logger.warning("periodic stats sample failed; the next one comes at its time", metadata: error.logMetadata)
        }
        // Each sample is due a whole number of intervals after the first; one that ran late
        // skips the instants it missed rather than catching up in a burst.
        let step = UInt64(intervalMs) * 1_000_000
        let now = monotonicNanos()
        var next = due + step
        if next <= now { next += (now - next) / step * step + step }
        let due = next
        _ = statsTimer.run(afterMilliseconds: Int((due - now) / 1_000_000)) { [weak self] in
            self?.periodicSample(due: due, intervalMs: intervalMs)
        }
    }

    /// Publishes `worker.started`.
    public func announceStart(version: String, endpoints: [String: String]) {
        sink.send(Outgoing(
            topic: topics.worker,
            body: Codec.encode(WorkerStartedMessage(version: version, libvirtUri: config.libvirtURI, endpoints: endpoints))))
    }

    /// Publishes `worker.stopping`.
    public func announceStop(reason: String) {
        sink.send(Outgoing(topic: topics.worker, body: Codec.encode(WorkerStoppingMessage(reason: reason))))
    }

    // MARK: shutdown

    /// Commands in flight (accepted, not yet answered).
    public var inFlight: Int { counters.inFlight.load(ordering: .relaxed) }

    /// Whether the libvirt connection is up, as heartbeats report it.
    public var libvirtConnected: Bool { session.isConnected }

    /// Seconds since the engine was made.
    public var uptimeSeconds: Double { Double(monotonicNanos() &- startedAt) / 1e9 }

    /// Stops taking commands: from now on they are answered `busy`.
    public func stopIntake() {
        accepting.store(false, ordering: .relaxed)
    }

    /// Waits up to `graceSeconds` for commands in flight; those that have not started by then are
    /// answered with a `cancelled` error, those still running with an `interrupted` one. Then
    /// stops the threads and the libvirt session.
    public func drain(graceSeconds: Double) async {
        // All of it blocks (the wait, libvirt, the last write of the table): it runs on a thread
        // of its own, off Swift's cooperative pool.
        await WorkerThread.run(name: "ecp-drain") { [self] in drainBlocking(graceSeconds: graceSeconds) }
    }

    private func drainBlocking(graceSeconds: Double) {
        counters.waitUntilIdle(deadline: monotonicNanos() + UInt64(max(0, graceSeconds) * 1e9))
        // Machines of a restore still waiting for their staggered turn have not started either.
        let runs = restoreState.withLock { ($0.current, $0.hostStop) }
        runs.0?.stop()
        runs.1?.stop()
        dispatcher.reconsider()
        for job in dispatcher.drainQueued() where job.claim() {
            publishResult(job, outcome: .failed(.worker(.cancelled)))
        }
        // The rest have started (a libvirt call, or a restore) and cannot be stopped: they are
        // answered now, or never, since the worker exits without waiting for them.
        let running = unanswered.withLock { Array($0.values) }
        for job in running.sorted(by: { $0.acceptedAt < $1.acceptedAt }) where job.claim() {
            logger.warning("command still running at shutdown; answered as interrupted", metadata: commandMetadata(job.command))
            publishResult(job, outcome: .failed(.worker(.interrupted(what: Self.what(job.command)))))
        }
        if inFlight > 0 {
            // Every command is answered by now; a success may still wait for its state change to
            // be written, which the store's last flush below does.
            logger.warning("stopping with results waiting for their state to be saved", metadata: ["in_flight": "\(inFlight)"])
        }
        statsTimer.stop()
        dispatcher.stop()
        recordShutdownStates()
        store.stop()
        session.stop()
    }

    /// At graceful shutdown: the state of every machine goes into the table; for machines no
    /// command touched it becomes their desired state.
    private func recordShutdownStates() {
        guard let connection = try? session.connection(), let domains = try? connection.listAllDomains() else {
            logger.warning("cannot list machines at shutdown; the state table keeps its last states")
            return
        }
        var observations: [(uuid: String, name: String, state: String)] = []
        for d in domains {
            if let state = try? d.state().state { observations.append((d.uuid, d.name, state.name)) }
        }
        store.recordShutdown(observations: observations)
        logger.info("machine states saved for the next start", metadata: ["state.file": "\(store.path)", "state.machines": "\(observations.count)"])
    }
}

extension Command {
    /// What every log line about this command carries.
    var logMetadata: Logger.Metadata {
        var m: Logger.Metadata = ["command.id": "\(id)", "command.op": "\(op.rawValue)"]
        if let machine { m["machine.name"] = "\(machine)" }
        return m
    }
}

extension Engine: StatsSource {
    /// The last periodic sample (nil before the first); with periodic samples off, a fresh one
    /// taken on the caller's thread, which must not be one of the sockets'.
    public func latestStats() -> StatsSample? {
        if config.statsIntervalMs > 0 { return statsCollector.latestSample }
        return try? statsCollector.sample(machine: nil)
    }
}
