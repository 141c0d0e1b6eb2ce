import Foundation
import Libvirt
import Synchronization
import Testing

/// A one-shot wake-up: `wait()` returns once `signal()` has been called, before or after.
final class OneShot: Sendable {
    private let state = Mutex<(signalled: Bool, continuation: CheckedContinuation<Void, Never>?)>((false, nil))

    func signal() {
        let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.signalled = true
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume()
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let signalled = state.withLock { state -> Bool in
                if !state.signalled {
                    state.continuation = continuation
                }
                return state.signalled
            }
            if signalled {
                continuation.resume()
            }
        }
    }
}

/// Collects lifecycle events and lets a test wait, with a bound, for a number of them.
final class EventRecorder: Sendable {
    private let state = Mutex<(events: [LifecycleEvent], waiter: (count: Int, wakeUp: OneShot)?)>(([], nil))

    var events: [LifecycleEvent] {
        state.withLock { $0.events }
    }

    func record(_ event: LifecycleEvent) {
        let wakeUp = state.withLock { state -> OneShot? in
            state.events.append(event)
            guard let waiter = state.waiter, state.events.count >= waiter.count else {
                return nil
            }
            state.waiter = nil
            return waiter.wakeUp
        }
        wakeUp?.signal()
    }

    /// Waits until `count` events have arrived or `timeout` has passed, then returns the events.
    func waitFor(_ count: Int, timeout: Duration = .seconds(10)) async -> [LifecycleEvent] {
        let wakeUp = OneShot()
        let enough = state.withLock { state -> Bool in
            if state.events.count >= count {
                return true
            }
            state.waiter = (count, wakeUp)
            return false
        }
        if !enough {
            let timer = Task {
                try? await Task.sleep(for: timeout)
                wakeUp.signal()
            }
            await wakeUp.wait()
            timer.cancel()
            state.withLock { $0.waiter = nil }
        }
        return events
    }
}

@Suite("Lifecycle events")
struct LifecycleEventTests {
    @Test func operationsProduceMatchingEvents() async throws {
        EventLoop.startDefault()
        #expect(EventLoop.isRunning)
        let node = try NodeFile()
        let connection = try node.connect()
        let recorder = EventRecorder()
        let id = try connection.onLifecycleEvent { recorder.record($0) }
        #expect(id >= 0)

        let web1 = try connection.lookup(name: "web1")
        try web1.create()
        try web1.suspend()
        try web1.resume()
        try web1.destroy()
        try web1.create()
        try web1.shutdown()
        let defined = try connection.define(xml: domainXML(name: "new1", uuid: "aaaaaaaa-0000-0000-0000-000000000001"))
        _ = try connection.define(xml: domainXML(name: "new1", uuid: "aaaaaaaa-0000-0000-0000-000000000001", memoryKiB: 131_072))
        try defined.undefine()

        let expected: [(String, String, String)] = [
            ("web1", "started", "booted"),
            ("web1", "suspended", "paused"),
            ("web1", "resumed", "unpaused"),
            ("web1", "stopped", "destroyed"),
            ("web1", "started", "booted"),
            ("web1", "stopped", "shutdown"),
            ("new1", "defined", "added"),
            ("new1", "defined", "updated"),
            ("new1", "undefined", "removed"),
        ]
        let events = await recorder.waitFor(expected.count)
        try #require(events.count == expected.count, "\(events)")
        for (event, (name, eventName, detailName)) in zip(events, expected) {
            #expect(event.domainName == name)
            #expect(event.eventName == eventName)
            #expect(event.detailName == detailName)
            #expect(event.eventName == LifecycleEvent.eventName(event.event))
            #expect(event.detailName == LifecycleEvent.detailName(event: event.event, detail: event.detail))
        }
        #expect(events.filter { $0.domainName == "web1" }.allSatisfy { $0.domainUUID == web1.uuid })
        #expect(events.filter { $0.domainName == "new1" }.allSatisfy { $0.domainUUID == "aaaaaaaa-0000-0000-0000-000000000001" })
        connection.removeLifecycleHandler(id)
    }

    @Test func removedHandlersGetNoMoreEvents() async throws {
        EventLoop.startDefault()
        let node = try NodeFile()
        let connection = try node.connect()
        let removed = EventRecorder()
        let kept = EventRecorder()
        // A connection calls the handlers of one event in the order they were added, so once
        // `kept` has an event, `removed` would have had it too.
        let removedID = try connection.onLifecycleEvent { removed.record($0) }
        let keptID = try connection.onLifecycleEvent { kept.record($0) }
        #expect(removedID != keptID)

        let db1 = try connection.lookup(name: "db1")
        try db1.suspend()
        #expect(await kept.waitFor(1).count == 1)
        #expect(await removed.waitFor(1).map(\.eventName) == ["suspended"])

        connection.removeLifecycleHandler(removedID)
        try db1.resume()
        let keptEvents = await kept.waitFor(2)
        #expect(keptEvents.map(\.eventName) == ["suspended", "resumed"])
        #expect(removed.events.map(\.eventName) == ["suspended"])

        // Unknown ids are ignored.
        connection.removeLifecycleHandler(removedID)
        connection.removeLifecycleHandler(9999)
    }

    @Test func everyHandlerOfAConnectionGetsEachEvent() async throws {
        EventLoop.startDefault()
        let node = try NodeFile()
        let connection = try node.connect()
        let recorders = (0..<3).map { _ in EventRecorder() }
        var ids: [Int32] = []
        for recorder in recorders {
            ids.append(try connection.onLifecycleEvent { recorder.record($0) })
        }
        #expect(Set(ids).count == recorders.count)

        try connection.lookup(name: "web2").create()
        for recorder in recorders {
            let events = await recorder.waitFor(1)
            #expect(events.map(\.domainName) == ["web2"])
            #expect(events.map(\.eventName) == ["started"])
            #expect(events.map(\.detailName) == ["booted"])
        }

        connection.close()
        let error = try #require(captureError { () throws(LibvirtError) in
            try connection.onLifecycleEvent { _ in }
        })
        #expect(error.codeName == "VIR_ERR_INVALID_CONN")
    }

    @Test func closeCallbackRegistrationIsAcceptedByTheTestDriver() throws {
        // libvirt 9.0.0 returns success for drivers without close callbacks (test:///); the
        // handler is simply never called.
        EventLoop.startDefault()
        let node = try NodeFile()
        let connection = try node.connect()
        try connection.onClose { _ in }
        try connection.onClose { _ in }
        connection.close()
        let error = try #require(captureError { () throws(LibvirtError) in try connection.onClose { _ in } })
        #expect(error.codeName == "VIR_ERR_INVALID_CONN")
    }
}

@Suite("Names")
struct NameTests {
    @Test(arguments: [
        (DomainState.nostate, "nostate"), (.running, "running"), (.blocked, "blocked"), (.paused, "paused"),
        (.shutdown, "shutdown"), (.shutoff, "shutoff"), (.crashed, "crashed"), (.pmsuspended, "pmsuspended"),
    ])
    func domainStateNames(state: DomainState, name: String) {
        #expect(state.name == name)
        #expect(DomainState(raw: state.rawValue) == state)
    }

    @Test func domainStatesMatchLibvirtValues() {
        #expect(DomainState.allCases.map(\.rawValue) == Array(0...7))
        #expect(DomainState(raw: 8) == .nostate)
        #expect(DomainState(raw: -1) == .nostate)
    }

    @Test(arguments: [
        (CloseReason.error, "error"), (.eof, "eof"), (.keepalive, "keepalive"), (.client, "client"),
    ])
    func closeReasonNames(reason: CloseReason, name: String) {
        #expect(reason.name == name)
    }

    @Test(arguments: [
        (Int32(0), Int32(0), "defined", "added"),
        (0, 3, "defined", "from_snapshot"),
        (1, 1, "undefined", "renamed"),
        (2, 4, "started", "wakeup"),
        (3, 6, "suspended", "api_error"),
        (3, 8, "suspended", "postcopy_failed"),
        (4, 0, "resumed", "unpaused"),
        (5, 1, "stopped", "destroyed"),
        (5, 6, "stopped", "from_snapshot"),
        (6, 2, "shutdown", "host"),
        (7, 1, "pmsuspended", "disk"),
        (8, 1, "crashed", "crashloaded"),
        (2, 5, "started", "unknown_5"),
        (2, -1, "started", "unknown_-1"),
        (9, 0, "unknown_9", "unknown_0"),
        (-1, 0, "unknown_-1", "unknown_0"),
    ])
    func lifecycleEventNames(event: Int32, detail: Int32, eventName: String, detailName: String) {
        let value = LifecycleEvent(domainName: "d", domainUUID: "u", event: event, detail: detail)
        #expect(value.eventName == eventName)
        #expect(value.detailName == detailName)
    }

    @Test(arguments: [
        ("11111111-2222-3333-4444-555555555555", true),
        ("ABCDEF01-abcd-ABCD-abcd-0123456789aB", true),
        ("11111111-2222-3333-4444-55555555555", false),
        ("11111111-2222-3333-4444-5555555555555", false),
        ("11111111x2222-3333-4444-555555555555", false),
        ("g1111111-2222-3333-4444-555555555555", false),
        ("111111112222333344445555555555555555", false),
        ("web1", false),
        ("", false),
    ])
    func uuidForm(string: String, isUUID: Bool) {
        #expect(Connection.isUUID(string) == isUUID)
    }
}
