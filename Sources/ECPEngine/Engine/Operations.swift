import ECPProtocol
import Threading
import Glibc
import Libvirt
import Logging

/// What an operation came to, before it is written as a result.
struct OpOutcome: Sendable {
    var changed: Bool = false
    var state: DomainState?
    var data: JSONValue?
    /// `data` already written as JSON (a large result, such as `stats` of many machines, skips
    /// the detour through `JSONValue`).
    var dataJSON: [UInt8]?
    /// The machine's identity, when the op resolved one (for the state table and the result).
    var machineName: String?
    var machineUUID: String?
    var failure: OpFailure?

    static func failed(_ failure: OpFailure) -> OpOutcome {
        var o = OpOutcome()
        o.failure = failure
        return o
    }
}

/// Why an operation failed.
enum OpFailure: Error, Sendable {
    /// libvirt said no; `action` is the phrase for the summary ("start machine 'web1'").
    case libvirt(LibvirtError, action: String)
    /// The worker's own error (a wait that ran out).
    case worker(WorkerErrorRecord)
}

/// Carries out commands against a libvirt connection. Each method runs on a dispatcher thread
/// and blocks for as long as libvirt does.
struct Operations: Sendable {
    let session: LibvirtSession
    let startedAt: UInt64
    let logger: Logger
    /// How often a waiting `shutdown` repeats its ACPI request (0: never).
    let shutdownRetryMs: Int
    /// Where a waiting `shutdown` learns that its machine powered off.
    let machineStops: MachineStops
    /// Takes `stats` samples and remembers CPU times between them.
    let stats: StatsCollector

    func run(_ command: Command) -> OpOutcome {
        switch command.op {
        case .ping:
            var o = OpOutcome()
            o.data = ["uptime_s": .double((Double(monotonicNanos() - startedAt) / 1e9 * 1000).rounded() / 1000)]
            return o
        case .list: return list()
        case .define: return define(xml: command.args.xml ?? "")
        case .stats: return stats(command.machine)
        case .restore, .report, .hostStop:
            // Handled by the engine before it gets here.
            return OpOutcome()
        default:
            return onMachine(command)
        }
    }

    private func actionPhrase(_ op: Op, _ machine: String) -> String {
        switch op {
        case .status: return "read the state of machine '\(machine)'"
        default: return "\(op.verb) machine '\(machine)'"
        }
    }

    private func list() -> OpOutcome {
        let conn: Connection
        do { conn = try session.connection() } catch { return .failed(.libvirt(error, action: "list machines")) }
        do {
            let domains = try conn.listAllDomains()
            var machines: [JSONValue] = []
            machines.reserveCapacity(domains.count)
            for d in domains {
                let state = (try? d.state().state) ?? .nostate
                machines.append(["name": .string(d.name), "uuid": .string(d.uuid), "state": .string(state.name)])
            }
            var o = OpOutcome()
            o.data = ["machines": .array(machines)]
            return o
        } catch {
            session.noteFailure(error, on: conn)
            return .failed(.libvirt(error, action: "list machines"))
        }
    }

    private func stats(_ machine: String?) -> OpOutcome {
        do {
            let sample = try stats.sample(machine: machine)
            var o = OpOutcome()
            o.dataJSON = [UInt8](Codec.encode(sample))
            return o
        } catch {
            return .failed(.libvirt(error, action: machine.map { "read the stats of machine '\($0)'" } ?? "read the stats of the machines"))
        }
    }

    private func define(xml: String) -> OpOutcome {
        let conn: Connection
        do { conn = try session.connection() } catch { return .failed(.libvirt(error, action: "define a machine")) }
        do {
            let d = try conn.define(xml: xml)
            var o = OpOutcome()
            o.changed = true
            o.machineName = d.name
            o.machineUUID = d.uuid
            session.directory.learn(name: d.name, uuid: d.uuid)
            o.state = try? d.state().state
            o.data = ["name": .string(d.name), "uuid": .string(d.uuid)]
            return o
        } catch {
            session.noteFailure(error, on: conn)
            return .failed(.libvirt(error, action: "define a machine"))
        }
    }

    private func onMachine(_ command: Command) -> OpOutcome {
        let machine = command.machine ?? ""
        // The phrase for an error's summary, made only when there is an error.
        var action: String { actionPhrase(command.op, machine) }
        let conn: Connection
        do { conn = try session.connection() } catch { return .failed(.libvirt(error, action: action)) }
        do {
            if command.op == .status { return try status(machine, on: conn) }
            let domain = try conn.lookup(nameOrUUID: machine)
            // A machine defined behind the worker's back between its listing and its events.
            if !session.directory.knows(name: domain.name) { session.directory.remember(domain) }
            var o = try perform(command, on: domain)
            o.machineName = domain.name
            // Only a change goes into the state table, which is keyed by UUID.
            if command.op.changesState || command.op == .setPolicy { o.machineUUID = domain.uuid }
            return o
        } catch let error as LibvirtError {
            session.noteFailure(error, on: conn)
            return .failed(.libvirt(error, action: action))
        } catch let failure as OpFailure {
            return .failed(failure)
        } catch {
            return .failed(.worker(.internalError(action: action, error: error)))
        }
    }

    /// What the protocol's `status` reports, in three libvirt calls for a persistent machine
    /// the directory has a handle on: its name, state and persistence in one (so a rename, an
    /// undefine or a define behind the worker's back shows at once, whatever the events say),
    /// then its resources, then autostart, which nothing announces. Otherwise the machine is
    /// looked up first, and a transient one costs a call more.
    private func status(_ machine: String, on conn: Connection) throws -> OpOutcome {
        let byUUID = Connection.canonicalUUID(machine) != nil
        let d: Domain
        let now: (name: String, state: DomainState, reason: Int32)?
        if let cached = session.directory.handle(for: machine), let seen = try cached.persistentState(),
            byUUID || seen.name == machine
        {
            (d, now) = (cached, seen)
        } else {
            d = try conn.lookup(nameOrUUID: machine)
            session.directory.remember(d)
            now = try d.persistentState()
        }
        let state: DomainState
        let reason: Int32
        let persistent = now != nil
        if let now {
            (state, reason) = (now.state, now.reason)
        } else {
            (state, reason) = try d.state()
        }
        let info = try d.info()
        let autostart = try d.autostart()
        var o = OpOutcome()
        o.machineName = now?.name ?? d.name
        o.state = state
        o.data = [
            "state": .string(state.name),
            "reason": .int(Int64(reason)),
            "vcpus": .int(Int64(info.vcpus)),
            "memory_kib": .int(Int64(clamping: info.memoryKiB)),
            "max_memory_kib": .int(Int64(clamping: info.maxMemoryKiB)),
            "cpu_time_ns": .int(Int64(clamping: info.cpuTimeNs)),
            "persistent": .bool(persistent),
            "autostart": .bool(autostart),
        ]
        return o
    }

    private func perform(_ command: Command, on d: Domain) throws -> OpOutcome {
        var o = OpOutcome()
        let before = try d.state().state
        switch command.op {
        case .start:
            if before.isActive {
                o.changed = false
            } else {
                try Self.create(d, paused: command.args.paused ?? false, current: before)
                o.changed = true
            }
        case .destroy:
            if before == .shutoff {
                o.changed = false
            } else {
                try d.destroy()
                o.changed = true
            }
        case .shutdown:
            if before == .shutoff {
                o.changed = false
            } else {
                o.changed = true
                try shutdown(d, command: command, outcome: &o)
            }
        case .reboot:
            try d.reboot()
            o.changed = true
        case .suspend:
            if before == .paused {
                o.changed = false
            } else {
                try d.suspend()
                o.changed = true
            }
        case .resume:
            if before == .running {
                o.changed = false
            } else {
                try d.resume()
                o.changed = true
            }
        case .setPolicy:
            // The state table is the engine's: it records the policy once this read found the machine.
            o.state = before
            return o
        case .undefine:
            try d.undefine()
            o.changed = true
            // A running machine keeps running as a transient one; an inactive one is gone.
            o.state = try? d.state().state
            if o.state == nil { o.state = before.isActive ? before : .shutoff }
            return o
        default:
            break
        }
        o.state = try Self.stateAfterStop(d)
        return o
    }

    /// The machine's state; a transient machine (running, no longer defined) vanishes when it
    /// stops, which libvirt reports as "no domain": it is then shut off.
    static func stateAfterStop(_ d: Domain) throws(LibvirtError) -> DomainState {
        do {
            return try d.state().state
        } catch where error.code == .noDomain {
            return .shutoff
        }
    }

    /// Boots a machine, paused if asked. libvirt's test driver cannot start paused (it takes no
    /// flags); it has no guest that could run meanwhile, so there the worker starts, then pauses.
    ///
    /// A crashed machine kept by libvirt for inspection (`on_crash` preserve) is still active and
    /// cannot boot; its dead instance is destroyed first. `current` is the state the caller read.
    static func create(_ d: Domain, paused: Bool, current: DomainState) throws(LibvirtError) {
        if current == .crashed, try d.isActive() {
            try d.destroy()
        }
        do {
            try d.create(paused: paused)
        } catch where paused && error.code == .invalidArg && error.domain == .test {
            try d.create(paused: false)
            try d.suspend()
        }
    }

    /// ACPI shutdown; with `wait_ms`, waits for the machine to be off, and with `force`, destroys
    /// it when it is not off by then. A guest whose OS is not listening yet loses a press of the
    /// power button, so while it waits the request is repeated every `shutdownRetryMs`.
    ///
    /// The wait sleeps until the machine's stop event, the next request or the deadline. The state
    /// is read again at each of them: the event may have come before the watch began, and events
    /// are lost while the libvirt connection is down.
    func shutdown(_ d: Domain, command: Command, outcome o: inout OpOutcome) throws {
        try d.shutdown()
        guard let waitMs = command.args.waitMs else { return }
        let deadline = monotonicNanos() + UInt64(waitMs) * 1_000_000
        let retryNanos = UInt64(shutdownRetryMs) * 1_000_000
        var nextRequest = retryNanos > 0 ? monotonicNanos() + retryNanos : UInt64.max
        var requests = 1
        let uuid = d.uuid
        var stops = machineStops.watch(uuid)
        defer { machineStops.unwatch(uuid) }
        while true {
            if try Self.stateAfterStop(d) == .shutoff { return }
            let now = monotonicNanos()
            if now >= deadline { break }
            if now >= nextRequest {
                requests += 1
                var metadata = command.logMetadata
                metadata["shutdown.request"] = "\(requests)"
                metadata["shutdown.retry_ms"] = "\(shutdownRetryMs)"
                logger.info("guest not off yet; shutdown request sent again", metadata: metadata)
                if try Self.offMeanwhile(d, after: { try d.shutdown() }) { return }
                nextRequest = monotonicNanos() + retryNanos
            }
            stops = machineStops.wait(uuid, beyond: stops, until: min(deadline, nextRequest))
        }
        if command.args.force == true {
            if try Self.offMeanwhile(d, after: { try d.destroy() }) { return }
            o.data = ["forced": true]
            return
        }
        let name = command.machine ?? d.name
        throw OpFailure.worker(.shutdownTimeout(machine: name, waitMs: waitMs))
    }
}

extension Operations {
    /// Sends a request to stop a machine that was seen running a moment ago. True when it failed
    /// because the machine powered off meanwhile, which is no failure; any other error is thrown.
    static func offMeanwhile(_ d: Domain, after request: () throws -> Void) throws -> Bool {
        do {
            try request()
            return false
        } catch {
            if (try? stateAfterStop(d)) == .shutoff { return true }
            throw error
        }
    }
}

extension DomainState {
    /// Whether the machine is booted (running, paused, blocked or suspended to memory).
    var isActive: Bool {
        switch self {
        case .running, .blocked, .paused, .pmsuspended, .shutdown: return true
        case .nostate, .shutoff, .crashed: return false
        }
    }
}
