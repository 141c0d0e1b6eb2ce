import CLibvirt
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A connection to a libvirt hypervisor driver (`virConnectPtr`).
///
/// A connection may be used from many threads at once, as libvirt allows. Its calls block (a
/// start or shutdown on a real hypervisor can take seconds), so make them from threads of your
/// own rather than from Swift's cooperative pool. The connection closes in `deinit`, or earlier
/// with ``close()``; ``Domain`` handles obtained from it stay usable after that, because each
/// holds its own reference to the underlying libvirt connection.
///
/// Every failing call throws a ``LibvirtError`` copied on the calling thread right after the
/// failing libvirt call.
public final class Connection: @unchecked Sendable {
    // Safety of @unchecked Sendable: libvirt's connection calls are thread-safe; the handle is under a Mutex.
    /// The URI the connection was opened with, for example `"qemu:///system"` or `"test:///default"`.
    public let uri: String

    /// The libvirt connection; `nil` once closed. Each call takes its own libvirt reference
    /// (`virConnectRef`) under the lock, so ``close()`` never frees a connection another thread is using.
    private let handle: Mutex<ConnectionPointer?>

    /// The handlers of lifecycle events, behind this connection's one libvirt lifecycle callback.
    let lifecycleHandlers = HandlerRegistry<LifecycleEvent>()

    /// The handlers of the connection's closing, behind its one libvirt close callback.
    let closeHandlers = HandlerRegistry<CloseReason>()

    /// Opens a connection (`virConnectOpen`).
    ///
    /// Also switches off libvirt's printing of errors to stderr
    /// (``Libvirt/silenceDefaultErrorPrinting()``). For lifecycle events, call
    /// ``EventLoop/startDefault()`` before opening the connection.
    ///
    /// - Parameter uri: the driver URI, for example `"qemu:///system"`, `"test:///default"` or
    ///   `"test:///abs/path/node.xml"`.
    public convenience init(uri: String) throws(LibvirtError) {
        self.init(uri: uri, taking: try Self.open(uri))
    }

    /// Opens a connection for calls only: the event loop refuses to watch it, so a remote
    /// connection does each call's socket I/O on the calling thread, with no hand-offs to the
    /// loop's thread, and has no events, close callback or keepalive.
    ///
    /// - Returns: the connection, and whether it talks to a daemon over a socket (it asked for a
    ///   watch); an in-process driver such as `test:///` does not.
    public static func openForCalls(uri: String) throws(LibvirtError) -> (connection: Connection, overSocket: Bool) {
        let (pointer, refused) = try EventLoop.withoutWatches { () throws(LibvirtError) in try open(uri) }
        return (Connection(uri: uri, taking: pointer), refused)
    }

    private init(uri: String, taking pointer: virConnectPtr) {
        self.uri = uri
        self.handle = Mutex(ConnectionPointer(pointer))
    }

    /// `virConnectOpen`, with libvirt's printing of errors to stderr switched off first.
    private static func open(_ uri: String) throws(LibvirtError) -> virConnectPtr {
        Libvirt.silenceDefaultErrorPrinting()
        guard let pointer = virConnectOpen(uri) else {
            throw LibvirtError.last(operation: "virConnectOpen")
        }
        return pointer
    }

    deinit {
        if let connection = handle.withLock({ $0.take() }) {
            virConnectClose(connection.pointer)
        }
    }

    /// Closes the connection (`virConnectClose`). Idempotent; calls made afterwards throw
    /// `VIR_ERR_INVALID_CONN`.
    public func close() {
        if let connection = handle.withLock({ $0.take() }) {
            virConnectClose(connection.pointer)
        }
    }

    /// Whether the connection is open and alive (`virConnectIsAlive` returns 1).
    public var isAlive: Bool {
        guard let pointer = retain() else {
            return false
        }
        defer { virConnectClose(pointer) }
        let alive = virConnectIsAlive(pointer)
        if alive < 0 {
            virResetLastError()
        }
        return alive == 1
    }

    /// The name of the host the driver runs on (`virConnectGetHostname`).
    public func hostname() throws(LibvirtError) -> String {
        try withPointer("virConnectGetHostname") { pointer -> String? in
            guard let raw = virConnectGetHostname(pointer) else {
                return nil
            }
            defer { free(raw) }
            return String(cString: raw)
        }
    }

    /// The driver's name for the hypervisor, for example `"QEMU"` or `"TEST"` (`virConnectGetType`).
    public func hypervisorType() throws(LibvirtError) -> String {
        try withPointer("virConnectGetType") { pointer -> String? in
            // The string belongs to the driver: not freed.
            virConnectGetType(pointer).map { String(cString: $0) }
        }
    }

    /// The hypervisor's version as `major.minor.release`, for example `"7.2.0"` (`virConnectGetVersion`).
    public func hypervisorVersion() throws(LibvirtError) -> String {
        try withPointer("virConnectGetVersion") { pointer -> String? in
            var version: UInt = 0
            guard virConnectGetVersion(pointer, &version) == 0 else { return nil }
            return "\(version / 1_000_000).\((version / 1000) % 1000).\(version % 1000)"
        }
    }

    /// The host's capabilities XML: its CPU, and the guest types, emulators and domain types it
    /// offers (`virConnectGetCapabilities`).
    public func capabilities() throws(LibvirtError) -> String {
        try withPointer("virConnectGetCapabilities") { pointer -> String? in
            guard let raw = virConnectGetCapabilities(pointer) else { return nil }
            defer { free(raw) }
            return String(cString: raw)
        }
    }

    /// Finds a domain by name (`virDomainLookupByName`).
    public func lookup(name: String) throws(LibvirtError) -> Domain {
        try withPointer("virDomainLookupByName") { pointer in
            virDomainLookupByName(pointer, name).map(Domain.init(taking:))
        }
    }

    /// Finds a domain by UUID string (`virDomainLookupByUUIDString`).
    public func lookup(uuid: String) throws(LibvirtError) -> Domain {
        try withPointer("virDomainLookupByUUIDString") { pointer in
            virDomainLookupByUUIDString(pointer, uuid).map(Domain.init(taking:))
        }
    }

    /// Finds a domain by UUID if `nameOrUUID` has a UUID's form (8-4-4-4-12 hexadecimal digits,
    /// either case), by name otherwise. 32 hexadecimal digits without dashes are a UUID too
    /// (libvirt parses that form), but such a string is also a valid name: it is looked up as a
    /// UUID first, and as a name only when no domain has that UUID.
    public func lookup(nameOrUUID: String) throws(LibvirtError) -> Domain {
        if Connection.isUUID(nameOrUUID) {
            return try lookup(uuid: nameOrUUID)
        }
        if let uuid = Connection.canonicalUUID(nameOrUUID) {
            do {
                return try lookup(uuid: uuid)
            } catch where error.code == .noDomain {
                return try lookup(name: nameOrUUID)
            }
        }
        return try lookup(name: nameOrUUID)
    }

    /// Defines (or redefines) a persistent domain from its XML description (`virDomainDefineXML`).
    public func define(xml: String) throws(LibvirtError) -> Domain {
        try withPointer("virDomainDefineXML") { pointer in
            virDomainDefineXML(pointer, xml).map(Domain.init(taking:))
        }
    }

    /// Every domain the driver knows, running or not (`virConnectListAllDomains`, no flags).
    public func listAllDomains() throws(LibvirtError) -> [Domain] {
        try withPointer("virConnectListAllDomains") { pointer -> [Domain]? in
            var list: UnsafeMutablePointer<virDomainPtr?>? = nil
            let count = virConnectListAllDomains(pointer, &list, 0)
            guard count >= 0 else {
                return nil
            }
            defer { free(list) }
            guard let list else {
                return []
            }
            return (0..<Int(count)).compactMap { index in
                list[index].map(Domain.init(taking:))
            }
        }
    }

    /// Sets up keepalive messages on the connection (`virConnectSetKeepAlive`).
    ///
    /// Needs a running ``EventLoop``; drivers without a daemon (`test:///`) do not support it and
    /// throw `VIR_ERR_NO_SUPPORT`.
    ///
    /// - Parameters:
    ///   - intervalSeconds: seconds of silence before a keepalive message is sent; 0 or less
    ///     switches keepalive off.
    ///   - count: unanswered keepalive messages after which the connection is closed.
    public func setKeepAlive(intervalSeconds: Int32, count: UInt32) throws(LibvirtError) {
        try withPointer("virConnectSetKeepAlive") { pointer -> Void? in
            virConnectSetKeepAlive(pointer, intervalSeconds, count) < 0 ? nil : ()
        }
    }

    /// The UUID a string spells, in libvirt's form (lower case, 8-4-4-4-12), when it is 36
    /// characters in that form or 32 hexadecimal digits without dashes, either case; nil otherwise.
    public static func canonicalUUID(_ string: String) -> String? {
        let utf8 = string.utf8
        var hex: [UInt8] = []
        hex.reserveCapacity(32)
        if utf8.count == 36 {
            guard isUUID(string) else { return nil }
            hex = utf8.filter { $0 != UInt8(ascii: "-") }
        } else if utf8.count == 32 {
            hex = Array(utf8)
        } else {
            return nil
        }
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for (index, byte) in hex.enumerated() {
            if index == 8 || index == 12 || index == 16 || index == 20 { out.append(UInt8(ascii: "-")) }
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"): out.append(byte)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): out.append(byte + 32)
            default: return nil
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether a string has the form of a UUID: 8-4-4-4-12 hexadecimal digits, either case.
    public static func isUUID(_ string: String) -> Bool {
        let utf8 = Array(string.utf8)
        guard utf8.count == 36 else {
            return false
        }
        for (index, byte) in utf8.enumerated() {
            switch index {
            case 8, 13, 18, 23:
                guard byte == UInt8(ascii: "-") else { return false }
            default:
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"),
                    UInt8(ascii: "a")...UInt8(ascii: "f"),
                    UInt8(ascii: "A")...UInt8(ascii: "F"):
                    continue
                default:
                    return false
                }
            }
        }
        return true
    }

    // MARK: - Handle access

    /// Takes a libvirt reference on the connection, or returns `nil` once closed. Release it with
    /// `virConnectClose`.
    func retain() -> virConnectPtr? {
        handle.withLock { connection -> ConnectionPointer? in
            guard let connection else {
                return nil
            }
            virConnectRef(connection.pointer)
            return connection
        }?.pointer
    }

    /// Runs `body` with a referenced connection pointer; a `nil` result means the libvirt call in
    /// `body` failed, and the thread's libvirt error is captured before the reference is dropped.
    func withPointer<Result>(
        _ operation: String,
        _ body: (virConnectPtr) -> Result?
    ) throws(LibvirtError) -> Result {
        guard let pointer = retain() else {
            throw LibvirtError.closedConnection(operation: operation)
        }
        // `virConnectClose` resets the thread's last error, so it runs only after the capture:
        // the operand of `throw` is evaluated before the deferred statement.
        defer { virConnectClose(pointer) }
        guard let result = body(pointer) else {
            throw LibvirtError.last(operation: operation)
        }
        return result
    }
}

/// A `virConnectPtr` that may cross threads: libvirt connections are thread-safe.
struct ConnectionPointer: @unchecked Sendable {
    let pointer: virConnectPtr

    init(_ pointer: virConnectPtr) {
        self.pointer = pointer
    }
}

extension LibvirtError {
    /// The error for a call on a ``Connection`` that was closed: `VIR_ERR_INVALID_CONN`.
    static func closedConnection(operation: String) -> LibvirtError {
        LibvirtError(
            code: .invalidConn,
            domain: .none,
            level: .error,
            message: "invalid connection pointer in \(operation): the connection is closed",
            str1: nil,
            str2: nil,
            str3: nil,
            int1: -1,
            int2: -1
        )
    }
}
