import CLibvirt
import Glibc
import Synchronization

/// libvirt's default event loop: `virEventRegisterDefaultImpl` plus a dedicated thread that runs
/// `virEventRunDefaultImpl` for the life of the process.
///
/// Lifecycle events, close callbacks and keepalive all need it, and it must be running before
/// the connections that use them are opened.
public enum EventLoop {
    /// Registers libvirt's default event implementation and starts its thread.
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

    private static let runningFlag = Atomic<Bool>(false)

    /// Runs once per process (Swift initialises static stored properties once, thread-safely).
    private static let started: Void = {
        Libvirt.silenceDefaultErrorPrinting()
        if virEventRegisterDefaultImpl() < 0 {
            // Nothing to report to: without an event implementation events simply never arrive.
            virResetLastError()
            return
        }
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let result = pthread_create(&thread, &attributes, { _ in
            // Linux keeps 15 bytes of a thread name.
            _ = setThreadName?(pthread_self(), "libvirt-events")
            while true {
                if virEventRunDefaultImpl() < 0 {
                    virResetLastError()
                }
            }
        }, nil)
        guard result == 0 else {
            // Only exhausted system limits make this fail; events would then never arrive.
            fatalError("cannot start the libvirt event loop thread: \(String(cString: strerror(result)))")
        }
        runningFlag.store(true, ordering: .releasing)
    }()
}

/// glibc's `pthread_setname_np`, looked up at run time: its header declares it only for
/// `_GNU_SOURCE` builds, which Swift's Glibc module is not.
private let setThreadName: (@convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32)? =
    dlsym(nil, "pthread_setname_np").map {
        unsafeBitCast($0, to: (@convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32).self)
    }
