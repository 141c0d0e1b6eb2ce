import CLibvirt
import Synchronization
import Threading

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The process's libvirt event loop: an implementation of libvirt's event interface
/// (`virEventRegisterImpl`) and a dedicated thread that runs it for the life of the process.
///
/// Lifecycle events, close callbacks and keepalive all need it, and it must be running before the
/// connections that use them are opened.
///
/// It is libvirt's default loop in shape (`poll(2)` over the watched descriptors, timers in
/// milliseconds), with two differences that matter on a busy hypervisor:
/// - A connection can be opened unwatched (``withoutWatches(_:)``): its remote client then does
///   all its socket I/O on the calling thread. A watched connection's every call switches its
///   socket's watch off and on again and resets its keepalive timer, and libvirt's default loop
///   wakes its thread for each of those changes: about ten wake-ups and context switches a call.
/// - The loop thread is woken only when a change needs it to poll sooner or for more: a watch
///   switched on or a timer brought forward. A watch switched off is dropped at the next turn.
public enum EventLoop {
    /// Registers the event implementation and starts its thread.
    ///
    /// Idempotent and thread-safe: only the first call does anything. Also switches off libvirt's
    /// printing of errors to stderr (``Libvirt/silenceDefaultErrorPrinting()``).
    public static func startDefault() {
        _ = started
    }

    /// Whether ``startDefault()`` has registered the event implementation and started its thread.
    public static var isRunning: Bool {
        runningFlag.load(ordering: .acquiring)
    }

    /// Runs `body` (a connection's opening) with the loop refusing every watch this thread asks
    /// for; returns its result and whether a watch was asked for (and refused), which is how a
    /// caller learns that the connection talks to a daemon over a socket.
    ///
    /// libvirt opens a remote connection without async I/O when the event loop refuses its
    /// socket: no events, close callback or keepalive on it, and no loop hand-offs in its calls.
    static func withoutWatches<T>(_ body: () throws(LibvirtError) -> T) throws(LibvirtError) -> (T, refused: Bool) {
        let loop = EventPoll.shared
        loop.openings.lock()
        defer { loop.openings.unlock() }
        loop.locked { $0.refusing = (thread: pthread_self(), refused: false) }
        defer { loop.locked { $0.refusing = nil } }
        let value = try body()
        return (value, loop.locked { $0.refusing?.refused ?? false })
    }

    private static let runningFlag = Atomic<Bool>(false)

    /// Runs once per process (Swift initialises static stored properties once, thread-safely).
    private static let started: Void = {
        Libvirt.silenceDefaultErrorPrinting()
        let loop = EventPoll.shared
        virEventRegisterImpl(
            { fd, events, callback, opaque, free in EventPoll.shared.addHandle(fd, events, callback, opaque, free) },
            { watch, events in EventPoll.shared.updateHandle(watch, events) },
            { watch in EventPoll.shared.removeHandle(watch) },
            { interval, callback, opaque, free in EventPoll.shared.addTimer(interval, callback, opaque, free) },
            { timer, interval in EventPoll.shared.updateTimer(timer, interval) },
            { timer in EventPoll.shared.removeTimer(timer) })
        WorkerThread.start(name: "libvirt-events") {
            while true { loop.turn() }
        }
        runningFlag.store(true, ordering: .releasing)
    }()
}

/// The event loop's state and its turns.
final class EventPoll: @unchecked Sendable {
    static let shared = EventPoll()

    struct Handle {
        var fd: Int32
        var events: Int32
        var callback: virEventHandleCallback
        var opaque: UnsafeMutableRawPointer?
        var free: virFreeCallback?
        var removed = false
    }

    struct Timer {
        var interval: Int32
        var due: UInt64
        var callback: virEventTimeoutCallback
        var opaque: UnsafeMutableRawPointer?
        var free: virFreeCallback?
        var removed = false
    }

    struct State {
        var handles: [Int32: Handle] = [:]
        var timers: [Int32: Timer] = [:]
        var nextID: Int32 = 1
        /// While the loop thread is in `poll`: the handles' events it polls for, and when its
        /// wait ends (`UInt64.max`: no timer).
        var polling: (events: [Int32: Int32], until: UInt64)?
        /// The thread whose watches are refused, and whether it asked for one.
        var refusing: (thread: pthread_t, refused: Bool)?
        var anyRemoved = false

        mutating func makeID() -> Int32 {
            defer { nextID = nextID == Int32.max ? 1 : nextID + 1 }
            return nextID
        }
    }

    // Safety of @unchecked Sendable: `current` is only touched under `lock`. Its raw pointers
    // are libvirt's opaque data, handed back only to libvirt's callbacks.
    private let lock = Condition()
    private var current = State()

    func locked<T>(_ body: (inout State) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&current)
    }
    /// Serialises the openings that refuse watches.
    let openings = Condition()
    /// A pipe whose write end wakes the loop thread from `poll`.
    let wakeFD: Int32
    private let wakeWriteFD: Int32

    private init() {
        var ends: [Int32] = [-1, -1]
        precondition(pipe(&ends) == 0, "cannot make the event loop's wake-up pipe")
        for fd in ends {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeFD = ends[0]
        wakeWriteFD = ends[1]
    }

    private static func now() -> UInt64 { monotonicNanos() / 1_000_000 }

    private func wake() {
        var one: UInt8 = 1
        // A full pipe already wakes the loop.
        _ = write(wakeWriteFD, &one, 1)
    }

    func addHandle(
        _ fd: Int32, _ events: Int32, _ callback: virEventHandleCallback?, _ opaque: UnsafeMutableRawPointer?,
        _ free: virFreeCallback?
    ) -> Int32 {
        guard let callback else { return -1 }
        let (id, mustWake): (Int32, Bool) = locked { s in
            if let r = s.refusing, pthread_equal(r.thread, pthread_self()) != 0 {
                s.refusing!.refused = true
                return (-1, false)
            }
            let id = s.makeID()
            s.handles[id] = Handle(fd: fd, events: events, callback: callback, opaque: opaque, free: free)
            return (id, events != 0 && s.polling != nil)
        }
        if mustWake { wake() }
        return id
    }

    func updateHandle(_ watch: Int32, _ events: Int32) {
        let mustWake: Bool = locked { s in
            guard s.handles[watch] != nil, !s.handles[watch]!.removed else { return false }
            s.handles[watch]!.events = events
            // Fewer events need no wake-up: the loop ignores what it no longer watches.
            guard let polling = s.polling else { return false }
            return events & ~(polling.events[watch] ?? 0) != 0
        }
        if mustWake { wake() }
    }

    func removeHandle(_ watch: Int32) -> Int32 {
        locked { s in
            guard s.handles[watch] != nil, !s.handles[watch]!.removed else { return -1 }
            s.handles[watch]!.removed = true
            s.anyRemoved = true
            return 0
        }
    }

    func addTimer(
        _ interval: Int32, _ callback: virEventTimeoutCallback?, _ opaque: UnsafeMutableRawPointer?,
        _ free: virFreeCallback?
    ) -> Int32 {
        guard let callback else { return -1 }
        let now = Self.now()
        let (id, mustWake): (Int32, Bool) = locked { s in
            let id = s.makeID()
            let due = interval >= 0 ? now + UInt64(interval) : UInt64.max
            s.timers[id] = Timer(interval: interval, due: due, callback: callback, opaque: opaque, free: free)
            return (id, due < (s.polling?.until ?? UInt64.max))
        }
        if mustWake { wake() }
        return id
    }

    func updateTimer(_ timer: Int32, _ interval: Int32) {
        let now = Self.now()
        let mustWake: Bool = locked { s in
            guard s.timers[timer] != nil, !s.timers[timer]!.removed else { return false }
            let due = interval >= 0 ? now + UInt64(interval) : UInt64.max
            s.timers[timer]!.interval = interval
            s.timers[timer]!.due = due
            // A timer pushed later (keepalive's, at every message) need not wake the loop: it
            // finds the new due time when its wait ends.
            return due < (s.polling?.until ?? UInt64.max)
        }
        if mustWake { wake() }
    }

    func removeTimer(_ timer: Int32) -> Int32 {
        locked { s in
            guard s.timers[timer] != nil, !s.timers[timer]!.removed else { return -1 }
            s.timers[timer]!.removed = true
            s.anyRemoved = true
            return 0
        }
    }

    /// One turn: poll the watched descriptors until the next timer, then run the timers that are
    /// due and the handles that are ready, then free what was removed. Callbacks run without the
    /// lock, since they call back into the loop.
    func turn() {
        var fds: [pollfd] = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        var watches: [Int32] = [0]
        let timeout: Int32 = locked { s in
            var polled: [Int32: Int32] = [:]
            for (id, h) in s.handles where !h.removed && h.events != 0 {
                fds.append(pollfd(fd: h.fd, events: Self.pollEvents(h.events), revents: 0))
                watches.append(id)
                polled[id] = h.events
            }
            let until = s.timers.values.lazy.filter { !$0.removed }.map(\.due).min() ?? UInt64.max
            s.polling = (polled, until)
            if until == UInt64.max { return -1 }
            let now = Self.now()
            return until <= now ? 0 : Int32(clamping: until - now)
        }
        let ready = poll(&fds, nfds_t(fds.count), timeout)
        locked { $0.polling = nil }
        if ready > 0, fds[0].revents != 0 {
            var drained = [UInt8](repeating: 0, count: 64)
            while read(wakeFD, &drained, drained.count) == drained.count {}
        }
        runDueTimers()
        if ready > 0 {
            for i in 1..<fds.count where fds[i].revents != 0 {
                let watch = watches[i]
                let call: (virEventHandleCallback, Int32, Int32, UnsafeMutableRawPointer?)? = locked { s in
                    guard let h = s.handles[watch], !h.removed else { return nil }
                    let events = Self.libvirtEvents(fds[i].revents) & (h.events | Self.alwaysReported)
                    return events == 0 ? nil : (h.callback, h.fd, events, h.opaque)
                }
                if let (callback, fd, events, opaque) = call { callback(watch, fd, events, opaque) }
            }
        }
        freeRemoved()
    }

    private func runDueTimers() {
        let now = Self.now()
        let due: [(Int32, virEventTimeoutCallback, UnsafeMutableRawPointer?)] = locked { s in
            var out: [(Int32, virEventTimeoutCallback, UnsafeMutableRawPointer?)] = []
            for (id, t) in s.timers where !t.removed && t.due <= now {
                s.timers[id]!.due = now + UInt64(max(t.interval, 0))
                out.append((id, t.callback, t.opaque))
            }
            return out
        }
        for (id, callback, opaque) in due {
            // An earlier callback of this turn may have removed or disabled it.
            let live = locked { s in s.timers[id].map { !$0.removed && $0.interval >= 0 } ?? false }
            if live { callback(id, opaque) }
        }
    }

    /// libvirt's free callbacks, run here and not in `remove`: a callback of the same turn may
    /// still be using what they free.
    private func freeRemoved() {
        let frees: [(virFreeCallback, UnsafeMutableRawPointer?)] = locked { s in
            guard s.anyRemoved else { return [] }
            s.anyRemoved = false
            var out: [(virFreeCallback, UnsafeMutableRawPointer?)] = []
            for (id, h) in s.handles where h.removed {
                if let free = h.free { out.append((free, h.opaque)) }
                s.handles.removeValue(forKey: id)
            }
            for (id, t) in s.timers where t.removed {
                if let free = t.free { out.append((free, t.opaque)) }
                s.timers.removeValue(forKey: id)
            }
            return out
        }
        for (free, opaque) in frees { free(opaque) }
    }

    private static let alwaysReported = Int32(VIR_EVENT_HANDLE_ERROR.rawValue | VIR_EVENT_HANDLE_HANGUP.rawValue)

    static func pollEvents(_ events: Int32) -> Int16 {
        var out: Int16 = 0
        if events & Int32(VIR_EVENT_HANDLE_READABLE.rawValue) != 0 { out |= Int16(POLLIN) }
        if events & Int32(VIR_EVENT_HANDLE_WRITABLE.rawValue) != 0 { out |= Int16(POLLOUT) }
        return out
    }

    static func libvirtEvents(_ revents: Int16) -> Int32 {
        var out: Int32 = 0
        if revents & Int16(POLLIN) != 0 { out |= Int32(VIR_EVENT_HANDLE_READABLE.rawValue) }
        if revents & Int16(POLLOUT) != 0 { out |= Int32(VIR_EVENT_HANDLE_WRITABLE.rawValue) }
        if revents & Int16(POLLERR | POLLNVAL) != 0 { out |= Int32(VIR_EVENT_HANDLE_ERROR.rawValue) }
        if revents & Int16(POLLHUP) != 0 { out |= Int32(VIR_EVENT_HANDLE_HANGUP.rawValue) }
        return out
    }
}
