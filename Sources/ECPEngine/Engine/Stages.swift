import ECPProtocol
import FoundationEssentials
import Logging
import Synchronization
import Threading

/// Admission for the machines of a restore or a host stop: one stage (an order) at a time, and at
/// most `parallel` machines at once. The dispatcher asks it, under its own lock, before it runs a
/// machine's job; the job holds its machine's lanes meanwhile, so a command for that machine
/// waits for the machine's turn even before the stage opens.
final class StageGate: Sendable {
    private struct State {
        var open = -1
        var running = 0
    }

    let parallel: Int
    private let state = Mutex(State())

    init(parallel: Int) {
        self.parallel = max(1, parallel)
    }

    /// Takes a place for a job of `stage`, if its stage is open and a place is free.
    func admit(stage: Int) -> Bool {
        state.withLock { s in
            guard stage <= s.open, s.running < parallel else { return false }
            s.running += 1
            return true
        }
    }

    func leave() {
        state.withLock { $0.running -= 1 }
    }

    /// Opens every stage up to `stage`.
    func open(through stage: Int) {
        state.withLock { $0.open = max($0.open, stage) }
    }
}

/// One machine of a restore or host stop, in its stage.
struct StagedMachine: Sendable {
    let uuid: String
    let name: String
    let entry: StateTable.Entry?
    let policy: RestorePolicy
    let stage: Int
}

/// A restore or host stop under way: its outcomes as they come, and who waits for its summary.
final class MachineRun<Outcome: Sendable, Summary: Sendable>: @unchecked Sendable {
    // Safety of @unchecked Sendable: the `var`s are only touched under `condition`'s lock; a
    // condition variable, not a `Mutex`, because the pauses between stages sleep on it.
    let id = UUID().uuidString.lowercased()
    let trigger: String
    let started = monotonicNanos()
    let condition = Condition()
    /// Admits the run's machines.
    let gate: StageGate
    var outcomes: [Outcome] = []
    var waiters: [@Sendable (Summary) -> Void] = []
    /// Set when the worker stops: machines still waiting for their turn are not acted on.
    var stopping = false
    var nextStartAt: UInt64 = 0

    init(trigger: String, parallel: Int) {
        self.trigger = trigger
        self.gate = StageGate(parallel: parallel)
    }

    func add(_ outcome: Outcome) {
        condition.lock()
        outcomes.append(outcome)
        condition.broadcast()
        condition.unlock()
    }

    func join(_ waiter: @escaping @Sendable (Summary) -> Void) {
        condition.lock()
        waiters.append(waiter)
        condition.unlock()
    }

    /// Blocks until `count` outcomes are in.
    func waitForOutcomes(_ count: Int) {
        condition.lock()
        while outcomes.count < count { condition.wait() }
        condition.unlock()
    }

    /// Sleeps until the monotonic instant `deadline`; false when the worker stops first.
    func pause(until deadline: UInt64) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !stopping {
            let now = monotonicNanos()
            if now >= deadline { return true }
            condition.wait(seconds: Double(deadline - now) / 1e9)
        }
        return false
    }

    var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopping
    }

    /// Ends the pauses at once and opens every stage: the machines left each say they were not
    /// acted on. The dispatcher must then reconsider its waiting jobs.
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        condition.unlock()
        gate.open(through: .max)
    }

    /// The outcomes so far, and the waiters, once the run is over.
    func finish() -> (outcomes: [Outcome], waiters: [@Sendable (Summary) -> Void]) {
        condition.lock()
        defer { condition.unlock() }
        return (outcomes, waiters)
    }
}

extension Engine {
    /// How many machines of a restore or host stop run at once: as asked, but one of the
    /// `--max-parallel` threads always stays for the other commands (a host stop's ACPI waits
    /// and a restore's retry pauses hold their threads).
    func runParallel(_ wanted: Int) -> Int {
        min(max(1, wanted), max(1, config.maxParallel - 1))
    }

    /// Logs one machine's outcome of a restore or host stop (an error, a `notable` one as a
    /// warning), publishes the libvirt error record it carries, then the outcome on `restore.`.
    func publishRunOutcome(_ body: Data, error: ErrorRecord?, metadata: Logger.Metadata, message: Logger.Message, notable: Bool) {
        var metadata = metadata
        if let error {
            metadata["error.summary"] = "\(error.summary)"
            metadata["error.category"] = "\(error.category)"
            if case .libvirt(let record) = error {
                metrics.libvirtError(codeName: record.codeName, category: record.category)
                metadata["libvirt.code_name"] = "\(record.codeName)"
                metadata["libvirt.message"] = "\(record.message ?? "")"
                sink.send(Outgoing(topic: topics.libvirtError, body: Codec.encode(record)))
            }
            logger.error(message, metadata: metadata)
        } else if notable {
            logger.warning(message, metadata: metadata)
        } else {
            logger.info(message, metadata: metadata)
        }
        sink.send(Outgoing(topic: topics.restore, body: body))
    }

    /// Runs `act` for every machine, stage by stage: each stage's machines in parallel (at most
    /// the gate's `parallel`), the next stage once every outcome of this one is in and
    /// `pauseAfter` of them has passed. Every machine's job is queued at once, in stage order, so
    /// commands for any of them wait for its turn. Returns when every outcome is in.
    ///
    /// - Parameters:
    ///   - timeoutMs: how long one machine may take once it is admitted; then `timedOut` gives its
    ///     outcome (with the instant it was admitted), and `act`'s `abandoned` says true from then on.
    ///   - conclude: publishes an outcome; called exactly once per machine.
    func runStages<Outcome: Sendable, Summary: Sendable>(
        _ machines: [StagedMachine], run: MachineRun<Outcome, Summary>, op: Op, timeoutMs: Int,
        act: @escaping @Sendable (StagedMachine, _ abandoned: @escaping @Sendable () -> Bool) -> Outcome,
        timedOut: @escaping @Sendable (StagedMachine, _ begun: UInt64) -> Outcome,
        conclude: @escaping @Sendable (Outcome) -> Void,
        pauseAfter: ([Outcome]) -> Int
    ) {
        let gate = run.gate
        let stageCount = (machines.map(\.stage).max() ?? -1) + 1
        var jobs: [(job: Job, lanes: [String])] = []
        var perStage = Array(repeating: 0, count: stageCount)
        // In stage order: two machines that share a lane (a name kept by a stale row) never have
        // the later stage's job ahead of the earlier one's.
        for machine in machines.sorted(by: { $0.stage < $1.stage }) {
            let command = Command(id: "\(op.rawValue)-\(run.id)", op: op, machine: machine.name)
            let lanes = Array(Set([MachineDirectory.laneKey(machine.name), MachineDirectory.laneKey(machine.uuid)]))
            let finish: @Sendable (Outcome, Job) -> Void = { [self] outcome, job in
                guard job.claim() else { return }
                conclude(outcome)
                run.add(outcome)
                dispatcherRelease(job)
            }
            let job = Job(command: command, origin: .local, lanes: lanes, stage: (gate, machine.stage)) { [self] job in
                let admitted = monotonicNanos()
                // Strongly: the run waits for every machine's outcome, and this one must come.
                job.schedule(deadlineAfterMilliseconds: timeoutMs, on: deadlines) {
                    finish(timedOut(machine, admitted), job)
                }
                finish(act(machine, { job.isFinished }), job)
            }
            jobs.append((job, lanes))
            perStage[machine.stage] += 1
        }
        dispatcherSubmit(jobs)
        var concluded = 0
        for stage in 0..<stageCount {
            gate.open(through: stage)
            dispatcherReconsider()
            concluded += perStage[stage]
            run.waitForOutcomes(concluded)
            if stage + 1 < stageCount {
                let stageOutcomes = Array(run.finish().outcomes.suffix(perStage[stage]))
                let pause = pauseAfter(stageOutcomes)
                if pause > 0 { _ = run.pause(until: monotonicNanos() + UInt64(pause) * 1_000_000) }
            }
        }
    }
}
