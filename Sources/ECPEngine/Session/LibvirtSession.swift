import ECPProtocol
import Libvirt
import Logging
import Threading

/// Holds the worker's libvirt connection: opens it, notices when it is lost (the close callback,
/// or a failing call whose connection is no longer alive), and reconnects by itself with backoff.
///
/// While disconnected, `connection()` throws the error of the last failed connection attempt, so
/// commands get a real, retryable libvirt error at once instead of waiting.
final class LibvirtSession: @unchecked Sendable {
    // Safety of @unchecked Sendable: the `var`s are only touched under `condition`'s lock; the
    // reconnecting thread sleeps on it.
    let uri: String
    private let logger: Logger
    private let condition = Condition()
    private var current: Connection?
    /// The connection the events come on: `current` itself, or a second one to its daemon.
    private var currentEvents: Connection?
    private var lastError: LibvirtError?
    private var stopped = false
    private var wanted = true
    private let onEvent: @Sendable (LifecycleEvent) -> Void
    /// The machines of the current connection, by name and UUID.
    let directory = MachineDirectory()
    /// Backoff bounds for reconnecting, in seconds.
    var minimumBackoff = 0.25
    var maximumBackoff = 5.0

    init(
        uri: String, logger: Logger,
        onEvent: @escaping @Sendable (LifecycleEvent) -> Void
    ) {
        self.uri = uri
        self.logger = logger
        self.onEvent = onEvent
    }

    /// Opens the connection once; on failure the worker runs on and keeps trying in the background.
    /// Returns the error of the first attempt, if it failed.
    @discardableResult
    func start() -> LibvirtError? {
        EventLoop.startDefault()
        let error = attempt()
        WorkerThread.start(name: "libvirt-reconn") { self.reconnectLoop() }
        return error
    }

    /// Whether a connection is open and believed alive.
    var isConnected: Bool {
        condition.lock()
        defer { condition.unlock() }
        return current != nil
    }

    /// Blocks until a connection is open, at most `seconds`; returns whether one is.
    func waitUntilConnected(seconds: Double) -> Bool {
        let deadline = monotonicNanos() + UInt64(seconds * 1e9)
        condition.lock()
        defer { condition.unlock() }
        while current == nil && !stopped {
            let now = monotonicNanos()
            if now >= deadline { return false }
            condition.wait(seconds: Double(deadline - now) / 1e9)
        }
        return current != nil
    }

    /// The live connection, or the error that says why there is none.
    func connection() throws(LibvirtError) -> Connection {
        condition.lock()
        defer { condition.unlock() }
        if let c = current { return c }
        throw lastError ?? LibvirtError(
            code: .internalError, domain: .none, level: .error, message: "no connection to \(uri) has been opened yet",
            str1: nil, str2: nil, str3: nil, int1: -1, int2: -1)
    }

    /// Tells the session a call failed; if the error looks like a lost connection and the
    /// connection is indeed dead, it is dropped and reconnecting starts.
    func noteFailure(_ error: LibvirtError, on connection: Connection) {
        guard Self.mayMeanConnectionLoss(error) else { return }
        if connection.isAlive { return }
        drop(connection, reason: "call failed", error: error)
    }

    static func mayMeanConnectionLoss(_ error: LibvirtError) -> Bool {
        LibvirtErrorCatalog.category(code: error.code, domain: error.domain, int1: error.int1, message: error.message)
            == .connection
    }

    private func drop(_ connection: Connection, reason: String, error: LibvirtError?) {
        condition.lock()
        guard current === connection else {
            condition.unlock()
            return
        }
        current = nil
        let events = currentEvents
        currentEvents = nil
        if let error { lastError = error }
        condition.broadcast()
        condition.unlock()
        if let events, events !== connection { events.close() }
        var metadata: Logger.Metadata = ["libvirt.uri": "\(uri)", "libvirt.close_reason": "\(reason)"]
        if let error { metadata.merge(error.logMetadata) { _, new in new } }
        logger.error("libvirt connection lost; reconnecting", metadata: metadata)
        connection.close()
    }

    /// Stops reconnecting and closes the connection.
    func stop() {
        condition.lock()
        stopped = true
        let c = current
        let events = currentEvents
        current = nil
        currentEvents = nil
        condition.broadcast()
        condition.unlock()
        c?.close()
        events?.close()
    }

    /// One connection attempt; on success the connections are installed with their callbacks.
    ///
    /// Calls go through a connection of their own, unwatched by the event loop, so that none of
    /// them hands off to the loop's thread; the events, close callback and keepalive come on a
    /// second, watched connection to the same daemon. An in-process driver (the test driver,
    /// whose `test:///path` connections each load their own copy of the node) has one connection
    /// for both.
    private func attempt() -> LibvirtError? {
        let calls: Connection
        let events: Connection
        do {
            let opened = try Connection.openForCalls(uri: uri)
            calls = opened.connection
            events = opened.overSocket ? try Connection(uri: uri) : calls
        } catch {
            condition.lock()
            lastError = error
            condition.unlock()
            return error
        }
        do {
            _ = try events.onLifecycleEvent { [onEvent, directory] event in
                directory.apply(event)
                onEvent(event)
            }
        } catch {
            logger.warning("libvirt lifecycle events unavailable", metadata: error.logMetadata)
        }
        // Keepalive and the close callback need a daemon; the in-process test driver has neither.
        try? events.setKeepAlive(intervalSeconds: 5, count: 3)
        try? events.onClose { [weak self, weak calls] reason in
            guard let self, let calls else { return }
            // The close callback runs on the event loop thread; drop the connection elsewhere.
            WorkerThread.start { self.drop(calls, reason: reason.name, error: nil) }
        }
        // Listed after the events are on, so that no define falls between the listing and them.
        if let machines = try? calls.listAllDomains() {
            directory.replaceAll(machines)
        }
        condition.lock()
        current = calls
        currentEvents = events
        lastError = nil
        condition.broadcast()
        condition.unlock()
        return nil
    }

    private func reconnectLoop() {
        var backoff = minimumBackoff
        var failures = 0
        while true {
            condition.lock()
            while current != nil && !stopped { condition.wait() }
            if stopped {
                condition.unlock()
                return
            }
            condition.unlock()
            if let error = attempt() {
                failures += 1
                if failures == 1 || failures.isMultiple(of: 10) {
                    logger.warning(
                        "libvirt connection attempt failed",
                        metadata: error.logMetadata.merging([
                            "libvirt.uri": "\(uri)", "retry.attempt": "\(failures)",
                            "retry.backoff_ms": "\(Int(backoff * 1000))",
                        ]) { _, new in new })
                }
                condition.lock()
                if !stopped { condition.wait(seconds: backoff) }
                condition.unlock()
                backoff = min(backoff * 2, maximumBackoff)
            } else {
                if failures > 0 {
                    logger.notice(
                        "libvirt connection restored",
                        metadata: ["libvirt.uri": "\(uri)", "retry.attempts": "\(failures)"])
                }
                failures = 0
                backoff = minimumBackoff
            }
        }
    }
}

extension LibvirtError {
    /// The full error record as log metadata, libvirt's strings cut as in the published record.
    var logMetadata: Logger.Metadata {
        var m: Logger.Metadata = [
            "libvirt.code": "\(code.rawValue)", "libvirt.code_name": "\(codeName)",
            "libvirt.domain": "\(domain.rawValue)", "libvirt.domain_name": "\(domainName)",
            "libvirt.level": "\(levelName)",
            "libvirt.int1": "\(int1)", "libvirt.int2": "\(int2)",
        ]
        if let message { m["libvirt.message"] = "\(LibvirtText.cut(message))" }
        if let str1 { m["libvirt.str1"] = "\(LibvirtText.cut(str1))" }
        if let str2 { m["libvirt.str2"] = "\(LibvirtText.cut(str2))" }
        if let str3 { m["libvirt.str3"] = "\(LibvirtText.cut(str3))" }
        return m
    }
}
