import CLibvirt

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The statistics groups of a bulk stats call (`virDomainStatsTypes`).
public struct DomainStatsGroups: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let state = DomainStatsGroups(rawValue: UInt32(VIR_DOMAIN_STATS_STATE.rawValue))
    public static let cpuTotal = DomainStatsGroups(rawValue: UInt32(VIR_DOMAIN_STATS_CPU_TOTAL.rawValue))
    public static let balloon = DomainStatsGroups(rawValue: UInt32(VIR_DOMAIN_STATS_BALLOON.rawValue))
    public static let vcpu = DomainStatsGroups(rawValue: UInt32(VIR_DOMAIN_STATS_VCPU.rawValue))
    public static let block = DomainStatsGroups(rawValue: UInt32(VIR_DOMAIN_STATS_BLOCK.rawValue))
    public static let interface = DomainStatsGroups(rawValue: UInt32(VIR_DOMAIN_STATS_INTERFACE.rawValue))

    /// What a machine's usage figures need.
    public static let usage: DomainStatsGroups = [.state, .cpuTotal, .balloon, .vcpu, .block, .interface]
}

/// One domain's record of a bulk stats call. A figure the driver did not report is nil: a
/// shut-off domain has no CPU time, and a driver may not support a group at all.
public struct DomainStatsRecord: Sendable, Equatable {
    public var name: String
    public var uuid: String
    public var state: DomainState?
    public var stateReason: Int32?
    /// `cpu.time`, nanoseconds.
    public var cpuTimeNs: UInt64?
    /// `balloon.current` and `balloon.maximum`, KiB.
    public var balloonCurrentKiB: UInt64?
    public var balloonMaximumKiB: UInt64?
    /// `vcpu.current`.
    public var vcpus: UInt32?
    public var blocks: [Block]
    public var interfaces: [Interface]

    /// `block.<n>.*`.
    public struct Block: Sendable, Equatable {
        public var name: String = ""
        public var rdBytes, wrBytes, rdReqs, wrReqs, errors: UInt64?
    }

    /// `net.<n>.*`.
    public struct Interface: Sendable, Equatable {
        public var name: String = ""
        public var rxBytes, txBytes, rxPkts, txPkts, rxErrs, txErrs, rxDrop, txDrop: UInt64?
    }

    public init(name: String, uuid: String) {
        self.name = name
        self.uuid = uuid
        self.blocks = []
        self.interfaces = []
    }
}

extension Connection {
    /// Stats of every domain in one call (`virConnectGetAllDomainStats`).
    ///
    /// `nowait` (`VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT`): a domain whose monitor is busy
    /// (a migration, a slow guest agent) is reported with what can be had without waiting
    /// for it, so one domain does not stall the sample of all. A group the driver does not
    /// support is left out of the records rather than failing the call.
    ///
    /// `fillFromInfo`: a record with none of the CPU, balloon and vCPU figures (a driver that
    /// has only the state group, such as the test driver) gets them from `virDomainGetInfo` on
    /// its domain; CPU time only while the domain is active, since an inactive one has none.
    public func allDomainStats(
        groups: DomainStatsGroups = .usage, nowait: Bool = true, fillFromInfo: Bool = false
    ) throws(LibvirtError) -> [DomainStatsRecord] {
        let flags = nowait ? UInt32(VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT.rawValue) : 0
        return try withPointer("virConnectGetAllDomainStats") { pointer -> [DomainStatsRecord]? in
            var records: UnsafeMutablePointer<virDomainStatsRecordPtr?>? = nil
            let count = virConnectGetAllDomainStats(pointer, groups.rawValue, &records, flags)
            guard count >= 0 else { return nil }
            defer { virDomainStatsRecordListFree(records) }
            return DomainStatsRecord.parse(records, count: Int(count), fillFromInfo: fillFromInfo)
        }
    }
}

extension Domain {
    /// Stats of the given domains in one call (`virDomainListGetStats`); a domain that no longer
    /// exists is left out. See ``Connection/allDomainStats(groups:nowait:)``.
    public static func stats(
        of domains: [Domain], groups: DomainStatsGroups = .usage, nowait: Bool = true, fillFromInfo: Bool = false
    ) throws(LibvirtError) -> [DomainStatsRecord] {
        guard !domains.isEmpty else { return [] }
        let flags = nowait ? UInt32(VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT.rawValue) : 0
        var list: [virDomainPtr?] = domains.map(\.pointer) + [nil]
        var records: UnsafeMutablePointer<virDomainStatsRecordPtr?>? = nil
        let count = list.withUnsafeMutableBufferPointer { buffer in
            virDomainListGetStats(buffer.baseAddress, groups.rawValue, &records, flags)
        }
        // The handles must outlive the call: the list borrows their pointers.
        withExtendedLifetime(domains) {}
        guard count >= 0 else { throw LibvirtError.last(operation: "virDomainListGetStats") }
        defer { virDomainStatsRecordListFree(records) }
        return DomainStatsRecord.parse(records, count: Int(count), fillFromInfo: fillFromInfo)
    }

    /// This domain's stats (`virDomainListGetStats` of one); nil when it no longer exists.
    public func stats(
        groups: DomainStatsGroups = .usage, nowait: Bool = true, fillFromInfo: Bool = false
    ) throws(LibvirtError) -> DomainStatsRecord? {
        try Domain.stats(of: [self], groups: groups, nowait: nowait, fillFromInfo: fillFromInfo).first
    }
}

extension DomainStatsRecord {
    static func parse(
        _ records: UnsafeMutablePointer<virDomainStatsRecordPtr?>?, count: Int, fillFromInfo: Bool
    ) -> [DomainStatsRecord] {
        guard let records else { return [] }
        var out: [DomainStatsRecord] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            guard let record = records[i]?.pointee, let dom = record.dom else { continue }
            let name = virDomainGetName(dom).map { String(cString: $0) } ?? ""
            var r = DomainStatsRecord(name: name, uuid: Domain.uuidString(of: dom) ?? "")
            if let params = record.params {
                for p in 0..<Int(record.nparams) {
                    r.take(params[p])
                }
            }
            if fillFromInfo { r.fillFromInfo(dom) }
            out.append(r)
        }
        return out
    }

    mutating func fillFromInfo(_ dom: virDomainPtr) {
        guard cpuTimeNs == nil, balloonCurrentKiB == nil, balloonMaximumKiB == nil, vcpus == nil else { return }
        var info = virDomainInfo()
        guard virDomainGetInfo(dom, &info) == 0 else {
            // The domain went away since the call listed it: its record stays as the call gave it.
            virResetLastError()
            return
        }
        let current = state ?? DomainState(raw: Int32(truncatingIfNeeded: info.state))
        if state == nil { state = current }
        switch current {
        case .shutoff, .crashed, .nostate: break
        default: cpuTimeNs = UInt64(info.cpuTime)
        }
        balloonCurrentKiB = UInt64(info.memory)
        balloonMaximumKiB = UInt64(info.maxMem)
        vcpus = UInt32(info.nrVirtCpu)
    }

    /// Reads one typed parameter into the record; fields it does not know are skipped.
    mutating func take(_ param: virTypedParameter) {
        let field: String = withUnsafeBytes(of: param.field) { raw in
            String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
        let number: UInt64? =
            switch Int32(param.type) {
            case Int32(VIR_TYPED_PARAM_INT.rawValue): UInt64(clamping: param.value.i)
            case Int32(VIR_TYPED_PARAM_UINT.rawValue): UInt64(param.value.ui)
            case Int32(VIR_TYPED_PARAM_LLONG.rawValue): UInt64(clamping: param.value.l)
            case Int32(VIR_TYPED_PARAM_ULLONG.rawValue): param.value.ul
            default: nil
            }
        switch field {
        case "state.state": state = DomainState(raw: param.value.i)
        case "state.reason": stateReason = param.value.i
        case "cpu.time": cpuTimeNs = number
        case "balloon.current": balloonCurrentKiB = number
        case "balloon.maximum": balloonMaximumKiB = number
        case "vcpu.current": vcpus = number.map { UInt32(clamping: $0) }
        default:
            if field.hasPrefix("block.") {
                takeIndexed(field.dropFirst(6), param, number, into: &blocks) { b, key, n, s in
                    switch key {
                    case "name": if let s { b.name = s }
                    case "rd.bytes": b.rdBytes = n
                    case "wr.bytes": b.wrBytes = n
                    case "rd.reqs": b.rdReqs = n
                    case "wr.reqs": b.wrReqs = n
                    case "errors": b.errors = n
                    default: break
                    }
                }
            } else if field.hasPrefix("net.") {
                takeIndexed(field.dropFirst(4), param, number, into: &interfaces) { f, key, n, s in
                    switch key {
                    case "name": if let s { f.name = s }
                    case "rx.bytes": f.rxBytes = n
                    case "tx.bytes": f.txBytes = n
                    case "rx.pkts": f.rxPkts = n
                    case "tx.pkts": f.txPkts = n
                    case "rx.errs": f.rxErrs = n
                    case "tx.errs": f.txErrs = n
                    case "rx.drop": f.rxDrop = n
                    case "tx.drop": f.txDrop = n
                    default: break
                    }
                }
            }
        }
    }

    /// `<n>.<key>`: fills item n of `items`, growing it as libvirt numbers them from 0.
    private func takeIndexed<Item>(
        _ rest: Substring, _ param: virTypedParameter, _ number: UInt64?, into items: inout [Item],
        _ set: (inout Item, Substring, UInt64?, String?) -> Void
    ) where Item: DefaultInitializable {
        guard let dot = rest.firstIndex(of: "."), let index = Int(rest[..<dot]), index >= 0, index < 4096 else { return }
        let key = rest[rest.index(after: dot)...]
        let string: String? =
            Int32(param.type) == Int32(VIR_TYPED_PARAM_STRING.rawValue) ? param.value.s.map { String(cString: $0) } : nil
        while items.count <= index { items.append(Item()) }
        set(&items[index], key, number, string)
    }
}

protocol DefaultInitializable { init() }
extension DomainStatsRecord.Block: DefaultInitializable {}
extension DomainStatsRecord.Interface: DefaultInitializable {}
