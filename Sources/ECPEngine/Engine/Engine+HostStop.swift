import ECPProtocol
import FoundationEssentials
import Libvirt
import Logging
import Threading

/// A host stop under way.
typealias HostStopRun = MachineRun<HostStopOutcomeMessage, Result<HostStopSummaryMessage, LibvirtError>>

/// What a host stop did with one machine.
enum HostStopAction: String, Sendable, CaseIterable {
    case shutDown = "shut_down"
    case forced, saved, destroyed
    case leftRunning = "left_running"
    case alreadyOff = "already_off"
    case failed
}

extension Engine {
    /// `host_stop`: every machine libvirt knows, in the reverse of the restore's order, stopped
    /// as its policy (or the command) says; their desired states are recorded first and then stand,
    /// so the restore after the reboot brings back exactly what ran. A host stop asked for while
    /// one runs joins it.
    func hostStop(_ command: Command, completion: @escaping @Sendable (Result<HostStopSummaryMessage, LibvirtError>) -> Void) {
        let parallel = runParallel(command.args.parallel ?? restoreSettings.parallel)
        let run: HostStopRun? = restoreState.withLock { state in
            if let current = state.hostStop {
                current.join(completion)
                return nil
            }
            let run = HostStopRun(trigger: "command", parallel: parallel)
            run.join(completion)
            state.hostStop = run
            return run
        }
        guard let run else {
            logger.info("host stop requested while one runs; joining it", metadata: command.logMetadata)
            return
        }
        WorkerThread.start { [self] in
            if let error = performHostStop(run, command: command) {
                restoreState.withLock { $0.hostStop = nil }
                // Every caller, the ones that joined included, learns it could not begin.
                for waiter in run.finish().waiters { waiter(.failure(error)) }
            }
        }
    }

    /// Returns the libvirt error that kept the host stop from beginning, if one did.
    private func performHostStop(_ run: HostStopRun, command: Command) -> LibvirtError? {
        let timeoutMs = command.args.hostStopTimeoutMs ?? Self.defaultHostStopTimeoutMs
        let connection: Connection
        let domains: [Domain]
        do {
            connection = try session.connection()
            domains = try connection.listAllDomains()
        } catch {
            logger.error("host stop cannot list the machines", metadata: command.logMetadata.merging(error.logMetadata) { _, n in n })
            return error
        }
        var observations: [(uuid: String, name: String, state: String)] = []
        var listed: [String: (domain: Domain, state: DomainState)] = [:]
        for d in domains {
            guard let state = try? d.state().state else { continue }
            observations.append((d.uuid, d.name, state.name))
            listed[d.uuid] = (d, state)
        }
        let found = listed
        let saved = OneShot<Bool>()
        store.recordHostStop(observations: observations) { saved.set($0) }
        if !saved.wait() {
            logger.error(
                "host stop: the desired states could not be saved; they are kept in memory and retried",
                metadata: command.logMetadata.merging(["state.file": "\(store.path)"]) { _, n in n })
        }
        let table = store.snapshot().machines
        let known = observations.map { o in (uuid: o.uuid, name: o.name, entry: table[o.uuid]) }
            .sorted { ($0.name, $0.uuid) < ($1.name, $1.uuid) }
        let machines = stagedByOrder(known, reversed: true)
        logger.notice(
            "host stop started",
            metadata: command.logMetadata.merging([
                "host_stop.id": "\(run.id)", "host_stop.machines": "\(machines.count)",
                "host_stop.mode": "\(command.args.hostStopMode?.rawValue ?? "per machine")", "host_stop.timeout_ms": "\(timeoutMs)",
                "host_stop.parallel": "\(run.gate.parallel)",
            ]) { _, n in n })
        // Room for the force after the ACPI wait, or for a managed save of a large guest.
        let machineTimeout = max(restoreSettings.machineTimeoutMs, timeoutMs + 60_000)
        runStages(
            machines, run: run, op: .hostStop, timeoutMs: machineTimeout,
            act: { [self] machine, _ in
                stopForHost(machine, run: run, mode: command.args.hostStopMode, timeoutMs: timeoutMs, found: found[machine.uuid])
            },
            timedOut: { machine, begun in
                let record = WorkerErrorRecord.commandTimeout(what: "stop machine '\(machine.name)' for a host shutdown", timeoutMs: machineTimeout)
                return HostStopOutcomeMessage(
                    hostStopId: run.id, machine: machine.name, uuid: machine.uuid,
                    mode: Self.hostStopMode(for: machine, given: command.args.hostStopMode).rawValue, order: machine.policy.order,
                    found: found[machine.uuid]?.state.name, action: HostStopAction.failed.rawValue, error: .worker(record),
                    durationMs: millis(since: begun))
            },
            conclude: { [self] outcome in publishHostStopOutcome(outcome, run: run) },
            pauseAfter: { _ in 0 })

        let outcomes = run.finish().outcomes
        var counts: [String: Int] = [:]
        for action in HostStopAction.allCases { counts[action.rawValue] = 0 }
        for o in outcomes { counts[o.action, default: 0] += 1 }
        let summary = HostStopSummaryMessage(hostStopId: run.id, total: outcomes.count, counts: counts, durationMs: millis(since: run.started))
        restoreState.withLock { $0.hostStop = nil }
        // The stops are in the table before anyone learns the host may go down.
        store.flush()
        sink.send(Outgoing(topic: topics.restore, body: Codec.encode(summary)))
        logger.notice(
            "host stop finished",
            metadata: command.logMetadata.merging([
                "host_stop.id": "\(run.id)", "host_stop.total": "\(summary.total)",
                "host_stop.counts": .dictionary(counts.mapValues { .stringConvertible($0) }), "duration_ms": "\(summary.durationMs)",
            ]) { _, n in n })
        var full = summary
        full.outcomes = outcomes
        for waiter in run.finish().waiters { waiter(.success(full)) }
        return nil
    }

    static let defaultHostStopTimeoutMs = 120_000

    /// The command's mode applies to every machine but those whose policy leaves them running.
    static func hostStopMode(for machine: StagedMachine, given: HostStopMode?) -> HostStopMode {
        let own = machine.policy.hostStop ?? .shutdown
        return own == .none ? .none : (given ?? own)
    }

    private func stopForHost(
        _ machine: StagedMachine, run: HostStopRun, mode given: HostStopMode?, timeoutMs: Int,
        found listed: (domain: Domain, state: DomainState)?
    ) -> HostStopOutcomeMessage {
        let begun = monotonicNanos()
        let mode = Self.hostStopMode(for: machine, given: given)
        func outcome(_ found: DomainState?, _ action: HostStopAction, _ error: ErrorRecord? = nil) -> HostStopOutcomeMessage {
            HostStopOutcomeMessage(
                hostStopId: run.id, machine: machine.name, uuid: machine.uuid, mode: mode.rawValue, order: machine.policy.order,
                found: found?.name, action: action.rawValue, error: error, durationMs: millis(since: begun))
        }
        guard let (d, _) = listed else { return outcome(nil, .alreadyOff) }
        if run.isStopping { return outcome(nil, .failed, .worker(.cancelled)) }
        var current: DomainState?
        var action = "stop machine '\(machine.name)' for a host shutdown"
        do {
            let state = try Operations.stateAfterStop(d)
            current = state
            guard state.isActive else { return outcome(state, .alreadyOff) }
            let done: HostStopAction
            switch mode {
            case .none:
                return outcome(state, .leftRunning)
            case .destroy:
                action = "destroy machine '\(machine.name)' for a host shutdown"
                done = try Operations.offMeanwhile(d, after: { try d.destroy() }) ? .shutDown : .destroyed
            case .managedsave:
                action = "save machine '\(machine.name)' for a host shutdown"
                try d.managedSave()
                done = .saved
            case .shutdown:
                action = "shut down machine '\(machine.name)' for a host shutdown"
                // A paused guest cannot hear the power button.
                if state == .paused { try d.resume() }
                var o = OpOutcome()
                let request = Command(
                    id: "host-stop-\(run.id)", op: .shutdown, machine: machine.name,
                    args: .init(waitMs: timeoutMs, force: true))
                try operations.shutdown(d, command: request, outcome: &o)
                done = o.data?["forced"] == .bool(true) ? .forced : .shutDown
            }
            store.recordObserved(uuid: machine.uuid, name: d.name, observed: (try? Operations.stateAfterStop(d))?.name ?? "shutoff")
            return outcome(state, done)
        } catch let error as LibvirtError {
            if let c = try? session.connection() { session.noteFailure(error, on: c) }
            return outcome(current, .failed, .libvirt(E2LibvirtErrorRecord(error, id: nil, op: nil, machine: nil, action: action)))
        } catch OpFailure.worker(let record) {
            // A waiting shutdown's own error; its libvirt errors are thrown as they are.
            return outcome(current, .failed, .worker(record))
        } catch {
            return outcome(current, .failed, .worker(.internalError(action: action, error: error)))
        }
    }

    private func publishHostStopOutcome(_ outcome: HostStopOutcomeMessage, run: HostStopRun) {
        let metadata: Logger.Metadata = [
            "host_stop.id": "\(run.id)", "machine.name": "\(outcome.machine)", "machine.uuid": "\(outcome.uuid)",
            "host_stop.mode": "\(outcome.mode)", "host_stop.found": "\(outcome.found ?? "undefined")",
            "host_stop.action": "\(outcome.action)", "host_stop.order": "\(outcome.order.map(String.init) ?? "none")",
            "duration_ms": "\(outcome.durationMs)",
        ]
        publishRunOutcome(
            Codec.encode(outcome), error: outcome.error, metadata: metadata, message: "host stop outcome",
            notable: outcome.action == HostStopAction.forced.rawValue)
    }
}
