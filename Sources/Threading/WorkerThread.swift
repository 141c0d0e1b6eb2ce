import Glibc
import Synchronization

/// Threads of the worker's own, outside Swift's cooperative pool, for work that blocks: the
/// I/O loop in `zmq_poll`, libvirt calls and libvirt's event loop, the state writer waiting for
/// changes.
public enum WorkerThread {
    /// The longest thread name Linux keeps, in bytes (16 with the terminating NUL).
    public static let maxNameLength = 15

    /// Starts a detached thread running `body`; the thread ends when `body` returns.
    ///
    /// - Parameters:
    ///   - name: the thread's name, for debuggers, `top -H` and `ps -L`; only its first
    ///     ``maxNameLength`` bytes are kept.
    ///   - stackSize: the stack size in bytes; nil for the system default.
    ///   - body: what the thread runs.
    public static func start(name: String? = nil, stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) {
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        if let stackSize { pthread_attr_setstacksize(&attributes, stackSize) }

        // The new thread takes over this reference.
        let start = Unmanaged.passRetained(Start(name: name, body: body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, &attributes, { context in
            let start = Unmanaged<Start>.fromOpaque(context!).takeRetainedValue()
            if let name = start.name { WorkerThread.setCurrentName(name) }
            start.body()
            return nil
        }, start)
        guard result == 0 else {
            Unmanaged<Start>.fromOpaque(start).release()
            // Only exhausted system limits make this fail; the worker cannot run short of a thread.
            fatalError("cannot start the thread \(name ?? "(unnamed)"): \(String(cString: strerror(result)))")
        }
    }

    /// Runs `body` on a thread of its own and suspends the calling task until it returns: how
    /// async code waits for blocking work without holding a thread of Swift's cooperative pool.
    public static func run<T: Sendable>(name: String? = nil, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            start(name: name) { continuation.resume(returning: body()) }
        }
    }

    /// As `run`, but the task stops waiting after `timeout`: the result is then nil, and the
    /// thread runs on until `body` returns.
    public static func run<T: Sendable>(
        name: String? = nil, timeout: Duration, _ body: @escaping @Sendable () -> T
    ) async -> T? {
        let waiting = Waiting<T?>()
        return await withCheckedContinuation { continuation in
            waiting.continuation.withLock { $0 = continuation }
            let timer = Task {
                // Cancelled means the thread answered first: only a full sleep is a timeout.
                do { try await Task.sleep(for: timeout) } catch { return }
                waiting.resume(returning: nil)
            }
            start(name: name) {
                let result = body()
                waiting.resume(returning: result)
                timer.cancel()
            }
        }
    }

    /// A continuation that whichever comes first (the thread or the timer) resumes.
    private final class Waiting<T: Sendable>: Sendable {
        let continuation = Mutex<CheckedContinuation<T, Never>?>(nil)

        func resume(returning value: T) {
            continuation.withLock { $0.take() }?.resume(returning: value)
        }
    }

    /// Names the calling thread, cut to ``maxNameLength`` bytes (whole Unicode scalars only).
    private static func setCurrentName(_ name: String) {
        var kept = ""
        for scalar in name.unicodeScalars {
            if kept.utf8.count + UTF8.width(scalar) > maxNameLength { break }
            kept.unicodeScalars.append(scalar)
        }
        _ = setName?(pthread_self(), kept)
    }

    /// glibc's `pthread_setname_np`, looked up at run time: its header declares it only for
    /// `_GNU_SOURCE` builds, which Swift's Glibc module is not.
    private static let setName: (@convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32)? =
        dlsym(nil, "pthread_setname_np").map {
            unsafeBitCast($0, to: (@convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32).self)
        }

    /// What a new thread runs, handed to it through `pthread_create`'s context pointer.
    private final class Start {
        let name: String?
        let body: @Sendable () -> Void

        init(name: String?, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
}
