import Glibc
import Logging

extension Worker {
    /// Raises the soft limit on open descriptors to the hard one. Every peer connection holds a
    /// descriptor, and the soft limit a service manager or shell hands down (often 1,024) is
    /// reached long before the hard one; past it libzmq can accept no connection, admitted
    /// clients' included.
    static func raiseOpenFileLimit(logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            logger.warning("cannot read the open file limit", metadata: ["error.errno": "\(errno)"])
            return
        }
        let before = limit.rlim_cur
        if before < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
                logger.warning(
                    "cannot raise the open file limit",
                    metadata: ["limits.nofile_soft": "\(before)", "limits.nofile_hard": "\(limit.rlim_max)", "error.errno": "\(errno)"])
                return
            }
        }
        logger.info(
            "open file limit",
            metadata: ["limits.nofile_soft_before": "\(before)", "limits.nofile_soft": "\(limit.rlim_cur)", "limits.nofile_hard": "\(limit.rlim_max)"])
    }
}
