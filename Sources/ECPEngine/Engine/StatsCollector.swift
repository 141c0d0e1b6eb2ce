import ECPProtocol
import Libvirt
import Synchronization
import Threading

/// Takes samples of the machines' usage in one bulk libvirt call, and works out each machine's
/// CPU share from the sample before it.
final class StatsCollector: Sendable {
    private let session: LibvirtSession
    /// Per machine UUID, its CPU time at the last sample and the monotonic instant of that sample.
    private let previous = Mutex<[String: (cpuNs: UInt64, at: UInt64)]>([:])
    /// The last sample of every machine, for the metrics endpoint.
    private let latest = Mutex<StatsSample?>(nil)
    /// Past this, the CPU memory is dropped: machines sampled one at a time and never in a sample
    /// of all (with periodic samples off) would otherwise make it grow without end.
    static let maxRemembered = 100_000

    init(session: LibvirtSession) {
        self.session = session
    }

    var latestSample: StatsSample? { latest.withLock { $0 } }

    /// A sample of one machine (by name or UUID, as other ops take it), or of every machine.
    func sample(machine: String?) throws(LibvirtError) -> StatsSample {
        let conn = try session.connection()
        do {
            let records: [DomainStatsRecord]
            if let machine {
                let domain = try conn.lookup(nameOrUUID: machine)
                if let record = try domain.stats(fillFromInfo: true) {
                    records = [record]
                } else {
                    // Gone between the lookup and the stats: the state read says so in libvirt's words.
                    _ = try domain.state()
                    records = []
                }
            } else {
                records = try conn.allDomainStats(fillFromInfo: true)
            }
            let sample = StatsSample(
                collectedAt: Timestamp.now(), machines: figures(records, at: monotonicNanos(), all: machine == nil))
            if machine == nil { latest.withLock { $0 = sample } }
            return sample
        } catch {
            session.noteFailure(error, on: conn)
            throw error
        }
    }

    private func figures(_ records: [DomainStatsRecord], at now: UInt64, all: Bool) -> [MachineStats] {
        var machines: [MachineStats] = []
        machines.reserveCapacity(records.count)
        previous.withLock { previous in
            if all {
                // Only the machines of this sample are remembered: the rest are gone.
                var next: [String: (cpuNs: UInt64, at: UInt64)] = [:]
                next.reserveCapacity(records.count)
                for r in records {
                    machines.append(Self.machine(r, before: previous[r.uuid], now: now))
                    if let cpu = r.cpuTimeNs { next[r.uuid] = (cpu, now) }
                }
                previous = next
            } else {
                if previous.count >= Self.maxRemembered { previous.removeAll() }
                for r in records {
                    machines.append(Self.machine(r, before: previous[r.uuid], now: now))
                    previous[r.uuid] = r.cpuTimeNs.map { ($0, now) }
                }
            }
        }
        machines.sort { $0.name < $1.name }
        return machines
    }

    static func machine(_ r: DomainStatsRecord, before: (cpuNs: UInt64, at: UInt64)?, now: UInt64) -> MachineStats {
        var percent: Double?
        if let cpu = r.cpuTimeNs, let before, now > before.at, cpu >= before.cpuNs {
            // CPU time over wall time: 100 is one host core busy for the whole interval.
            let share = Double(cpu - before.cpuNs) / Double(now - before.at) * 100
            percent = (share * 100).rounded() / 100
        }
        return MachineStats(
            name: r.name, uuid: r.uuid, state: (r.state ?? .nostate).name, cpuTimeNs: r.cpuTimeNs, cpuPercent: percent,
            vcpus: r.vcpus.map { Int($0) }, memoryKiB: r.balloonCurrentKiB, maxMemoryKiB: r.balloonMaximumKiB,
            block: r.blocks.map {
                BlockStats(name: $0.name, rdBytes: $0.rdBytes, wrBytes: $0.wrBytes, rdReqs: $0.rdReqs, wrReqs: $0.wrReqs, errs: $0.errors)
            },
            net: r.interfaces.map {
                var n = InterfaceStats(name: $0.name)
                (n.rxBytes, n.txBytes, n.rxPkts, n.txPkts) = ($0.rxBytes, $0.txBytes, $0.rxPkts, $0.txPkts)
                (n.rxErrs, n.txErrs, n.rxDrop, n.txDrop) = ($0.rxErrs, $0.txErrs, $0.rxDrop, $0.txDrop)
                return n
            })
    }
}
