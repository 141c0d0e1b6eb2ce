import CLibvirt
import Synchronization
import Threading

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
        WorkerThread.start(name: "libvirt-events") {
            while true {
                if virEventRunDefaultImpl() < 0 {
                    virResetLastError()
                }
            }
        }
        runningFlag.store(true, ordering: .releasing)
    }()
}

