import CLibvirt

/// Process-wide libvirt settings and facts.
public enum Libvirt {
    /// Switches off libvirt's printing of every error to stderr.
    ///
    /// Installs a process-wide error handler that does nothing (`virSetErrorFunc`); errors are
    /// still recorded per thread and reach callers as ``LibvirtError``. Idempotent and
    /// thread-safe; ``Connection/init(uri:)`` and ``EventLoop/startDefault()`` call it.
    public static func silenceDefaultErrorPrinting() {
        _ = silencer
    }

    /// The version of the libvirt library in use, as `"major.minor.release"` (for example `"9.0.0"`).
    ///
    /// `"unknown"` if libvirt cannot tell.
    public static var version: String {
        var number: UInt = 0
        guard virGetVersion(&number, nil, nil) == 0 else {
            virResetLastError()
            return "unknown"
        }
        return "\(number / 1_000_000).\(number / 1_000 % 1_000).\(number % 1_000)"
    }
}

/// Runs `virSetErrorFunc` exactly once per process (Swift initialises globals once, thread-safely).
private let silencer: Void = {
    virSetErrorFunc(nil, silentErrorHandler)
}()

/// An error handler that ignores the error; libvirt's default handler would print it to stderr.
private func silentErrorHandler(_ userData: UnsafeMutableRawPointer?, _ error: virErrorPtr?) {}
