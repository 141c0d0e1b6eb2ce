import CLibvirt
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A handle on a domain, that is a virtual machine (`virDomainPtr`), freed in `deinit`.
///
/// Like its ``Connection``, a domain handle may be used from many threads. It holds its own
/// reference to the libvirt connection, so it keeps working after the ``Connection`` it came
/// from is closed or released. Every failing call throws a ``LibvirtError`` copied on the calling
/// thread right after the failing libvirt call.
public final class Domain: @unchecked Sendable {
    // Safety of @unchecked Sendable: `pointer` is immutable and libvirt's domain calls are thread-safe.
    /// The domain's name, read once when the handle was made (`virDomainGetName`).
    public let name: String

    /// The domain's UUID in lower-case string form (`virDomainGetUUID`), read the first time it
    /// is asked for: a read such as `status` never needs it, and each libvirt call on a domain
    /// costs a formatted UUID in libvirt's own debug logging.
    public var uuid: String {
        cachedUUID.withLock { cached in
            if let cached { return cached }
            let value = Domain.uuidString(of: pointer) ?? ""
            cached = value
            return value
        }
    }

    private let cachedUUID = Mutex<String?>(nil)

    /// The libvirt handle, owned by this object.
    let pointer: virDomainPtr

    /// Takes ownership of a domain pointer returned by libvirt.
    init(taking pointer: virDomainPtr) {
        self.pointer = pointer
        self.name = virDomainGetName(pointer).map { String(cString: $0) } ?? ""
    }

    deinit {
        virDomainFree(pointer)
    }

    /// The domain's state and the reason for it (`virDomainGetState`).
    ///
    /// The reason is the raw value of the state's reason enum (for ``DomainState/shutoff``,
    /// `virDomainShutoffReason`: 1 shutdown, 2 destroyed, ...).
    public func state() throws(LibvirtError) -> (state: DomainState, reason: Int32) {
        var state: Int32 = 0
        var reason: Int32 = 0
        guard virDomainGetState(pointer, &state, &reason, 0) == 0 else {
            throw LibvirtError.last(operation: "virDomainGetState")
        }
        return (DomainState(raw: state), reason)
    }

    /// What the daemon says of a persistent domain, in one call: its name now (a rename shows
    /// here before its event arrives), its state and the state's reason. `nil` when the domain is
    /// transient or no longer exists (`virDomainListGetStats`, state group, persistent domains
    /// only; the daemon skips a domain that is gone).
    public func persistentState() throws(LibvirtError) -> (name: String, state: DomainState, reason: Int32)? {
        var domains: [virDomainPtr?] = [pointer, nil]
        var records: UnsafeMutablePointer<virDomainStatsRecordPtr?>? = nil
        let count = domains.withUnsafeMutableBufferPointer { list in
            virDomainListGetStats(
                list.baseAddress, UInt32(VIR_DOMAIN_STATS_STATE.rawValue), &records,
                UInt32(VIR_CONNECT_GET_ALL_DOMAINS_STATS_PERSISTENT.rawValue))
        }
        guard count >= 0 else {
            throw LibvirtError.last(operation: "virDomainListGetStats")
        }
        defer { virDomainStatsRecordListFree(records) }
        guard count > 0, let record = records?[0]?.pointee else { return nil }
        var state: Int32 = 0
        var reason: Int32 = 0
        for i in 0..<Int(record.nparams) {
            let param = record.params[i]
            let value = param.value.i
            withUnsafeBytes(of: param.field) { field in
                if strcmp(field.baseAddress!.assumingMemoryBound(to: CChar.self), "state.state") == 0 {
                    state = value
                } else if strcmp(field.baseAddress!.assumingMemoryBound(to: CChar.self), "state.reason") == 0 {
                    reason = value
                }
            }
        }
        let name = virDomainGetName(record.dom).map { String(cString: $0) } ?? ""
        return (name, DomainState(raw: state), reason)
    }

    /// The domain's state and resources (`virDomainGetInfo`).
    public func info() throws(LibvirtError) -> DomainInfo {
        var info = virDomainInfo()
        guard virDomainGetInfo(pointer, &info) == 0 else {
            throw LibvirtError.last(operation: "virDomainGetInfo")
        }
        return DomainInfo(
            state: DomainState(raw: Int32(truncatingIfNeeded: info.state)),
            maxMemoryKiB: UInt64(info.maxMem),
            memoryKiB: UInt64(info.memory),
            vcpus: UInt32(info.nrVirtCpu),
            cpuTimeNs: UInt64(info.cpuTime)
        )
    }

    /// Starts (boots) the defined domain (`virDomainCreateWithFlags`).
    ///
    /// - Parameter paused: start with the vCPUs paused (`VIR_DOMAIN_START_PAUSED`). The test
    ///   driver of libvirt 9.0.0 does not support this flag and throws `VIR_ERR_INVALID_ARG`.
    public func create(paused: Bool = false) throws(LibvirtError) {
        let flags = paused ? UInt32(VIR_DOMAIN_START_PAUSED.rawValue) : 0
        try check("virDomainCreateWithFlags", virDomainCreateWithFlags(pointer, flags))
    }

    /// Asks the guest to power off (`virDomainShutdown`); returns before it is off.
    public func shutdown() throws(LibvirtError) {
        try check("virDomainShutdown", virDomainShutdown(pointer))
    }

    /// Powers the domain off at once (`virDomainDestroy`).
    public func destroy() throws(LibvirtError) {
        try check("virDomainDestroy", virDomainDestroy(pointer))
    }

    /// Asks the guest to reboot (`virDomainReboot`, default method).
    public func reboot() throws(LibvirtError) {
        try check("virDomainReboot", virDomainReboot(pointer, 0))
    }

    /// Pauses the domain's vCPUs (`virDomainSuspend`).
    public func suspend() throws(LibvirtError) {
        try check("virDomainSuspend", virDomainSuspend(pointer))
    }

    /// Unpauses the domain's vCPUs (`virDomainResume`).
    public func resume() throws(LibvirtError) {
        try check("virDomainResume", virDomainResume(pointer))
    }

    /// Saves the running domain's memory to disk and stops it; its next start resumes from the
    /// image instead of booting (`virDomainManagedSave`).
    public func managedSave() throws(LibvirtError) {
        try check("virDomainManagedSave", virDomainManagedSave(pointer, 0))
    }

    /// Whether a managed save image waits for the domain's next start (`virDomainHasManagedSaveImage`).
    public func hasManagedSaveImage() throws(LibvirtError) -> Bool {
        try flag("virDomainHasManagedSaveImage", virDomainHasManagedSaveImage(pointer, 0))
    }

    /// Removes the domain's persistent definition (`virDomainUndefine`); a running domain keeps
    /// running as a transient one.
    public func undefine() throws(LibvirtError) {
        try check("virDomainUndefine", virDomainUndefine(pointer))
    }

    /// Whether the domain has a persistent definition (`virDomainIsPersistent`).
    public func isPersistent() throws(LibvirtError) -> Bool {
        try flag("virDomainIsPersistent", virDomainIsPersistent(pointer))
    }

    /// Whether the domain is running, paused or otherwise active (`virDomainIsActive`).
    public func isActive() throws(LibvirtError) -> Bool {
        try flag("virDomainIsActive", virDomainIsActive(pointer))
    }

    /// Whether the domain starts when the host boots (`virDomainGetAutostart`).
    public func autostart() throws(LibvirtError) -> Bool {
        var value: Int32 = 0
        guard virDomainGetAutostart(pointer, &value) == 0 else {
            throw LibvirtError.last(operation: "virDomainGetAutostart")
        }
        return value != 0
    }

    /// Sets whether the domain starts when the host boots (`virDomainSetAutostart`).
    public func setAutostart(_ enabled: Bool) throws(LibvirtError) {
        try check("virDomainSetAutostart", virDomainSetAutostart(pointer, enabled ? 1 : 0))
    }

    /// The domain's XML description (`virDomainGetXMLDesc`, no flags).
    public func xmlDescription() throws(LibvirtError) -> String {
        guard let raw = virDomainGetXMLDesc(pointer, 0) else {
            throw LibvirtError.last(operation: "virDomainGetXMLDesc")
        }
        defer { free(raw) }
        return String(cString: raw)
    }

    // MARK: - Helpers

    /// Throws the thread's last error if `result`, the return value of `operation`, is negative.
    private func check(_ operation: String, _ result: Int32) throws(LibvirtError) {
        if result < 0 {
            throw LibvirtError.last(operation: operation)
        }
    }

    /// Maps a libvirt tri-state result (1 yes, 0 no, -1 error).
    private func flag(_ operation: String, _ result: Int32) throws(LibvirtError) -> Bool {
        if result < 0 {
            throw LibvirtError.last(operation: operation)
        }
        return result == 1
    }

    /// The UUID string of a domain, lower-case, or `nil` if libvirt cannot give it.
    ///
    /// Reads the 16 raw bytes (`virDomainGetUUID`) and formats them here: libvirt's own string
    /// form goes through `printf`, which costs more than the lookup itself.
    static func uuidString(of pointer: virDomainPtr) -> String? {
        var raw = [UInt8](repeating: 0, count: 16)
        let rc = raw.withUnsafeMutableBufferPointer { buf in
            buf.withMemoryRebound(to: CUnsignedChar.self) { virDomainGetUUID(pointer, $0.baseAddress) }
        }
        guard rc == 0 else {
            virResetLastError()
            return nil
        }
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        return String(unsafeUninitializedCapacity: 36) { out in
            var o = 0
            for (i, byte) in raw.enumerated() {
                if i == 4 || i == 6 || i == 8 || i == 10 {
                    out[o] = UInt8(ascii: "-")
                    o += 1
                }
                out[o] = hex[Int(byte >> 4)]
                out[o + 1] = hex[Int(byte & 0x0f)]
                o += 2
            }
            return o
        }
    }
}
