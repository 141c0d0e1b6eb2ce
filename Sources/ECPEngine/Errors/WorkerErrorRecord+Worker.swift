import ECPProtocol

// The worker's own failures, one factory each: their wording and fields are part of the protocol
// (clients and tests read the summaries), so each is spelled in one place only.

extension WorkerErrorRecord {
    /// A command ran past its `timeout_ms`; the worker answered and moved on.
    ///
    /// - Parameters:
    ///   - what: the operation, with its machine if it has one ("start machine 'web1'", "list").
    ///   - timeoutMs: the command's `timeout_ms`.
    static func commandTimeout(what: String, timeoutMs: Int) -> WorkerErrorRecord {
        deadline(
            message: "command did not finish within timeout_ms (\(timeoutMs) ms)",
            summary: "worker: cannot \(what): it did not finish within \(timeoutMs) ms; \(callGoesOn)",
            timeoutMs: timeoutMs)
    }

    /// Restoring one machine ran past the restore's per-machine limit.
    ///
    /// The record has no `timeout_ms`: the limit is the worker's setting, not a command's field.
    static func restoreTimeout(machine: String, timeoutMs: Int) -> WorkerErrorRecord {
        deadline(
            message: "restoring the machine took longer than \(timeoutMs) ms",
            summary: "worker: cannot restore machine '\(machine)': it did not finish within \(timeoutMs) ms; \(callGoesOn)",
            timeoutMs: nil)
    }

    /// A `shutdown` with `wait_ms` and without `force`: the guest was still on when the wait ended.
    static func shutdownTimeout(machine: String, waitMs: Int) -> WorkerErrorRecord {
        deadline(
            message: "machine did not power off within \(waitMs) ms",
            summary: "worker: cannot shut down machine '\(machine)': the guest did not power off within \(waitMs) ms (send force: true to destroy it then)",
            timeoutMs: waitMs)
    }

    /// A queued command the worker did not run because it is stopping.
    static let cancelled = WorkerErrorRecord(
        type: "cancelled", category: .resource, retryable: true,
        message: "the worker stopped before the command could run",
        summary: "worker: the command was not run because the worker is stopping; send it again when the worker is back")

    /// A command still running when the worker stopped, its shutdown grace over: it is answered
    /// so that no client waits for ever, but libvirt's call cannot be interrupted.
    ///
    /// - Parameter what: the operation, with its machine if it has one ("shut down machine 'web1'").
    static func interrupted(what: String) -> WorkerErrorRecord {
        WorkerErrorRecord(
            type: "interrupted", category: .timeout, retryable: true,
            message: "the worker stopped before the command finished",
            summary: "worker: cannot \(what): the worker stopped before the command finished; the libvirt call may still complete, and what it did shows as a machine.event or in the next status")
    }

    /// An error that is neither libvirt's nor one the worker expects.
    ///
    /// - Parameter action: what was being done, for the summary ("start machine 'web1'").
    static func internalError(action: String, error: any Error) -> WorkerErrorRecord {
        WorkerErrorRecord(
            type: "internal", category: .internal, retryable: false, message: "\(error)",
            summary: "worker: cannot \(action): \(error)")
    }

    /// The state table could not be read, so the restore started from an empty one.
    ///
    /// - Parameters:
    ///   - path: where the table is kept.
    ///   - movedTo: where the unreadable file is now; `path` when it could not be moved aside.
    ///   - reason: why it could not be read.
    static func corruptTable(path: String, movedTo: String, reason: String) -> WorkerErrorRecord {
        let kept = movedTo == path ? "it was kept where it is" : "it was kept aside as \(movedTo)"
        return WorkerErrorRecord(
            type: "corrupt_table", category: .config, retryable: false,
            message: "the state table \(path) could not be read: \(reason); \(kept)",
            summary: "worker: cannot restore from the state table \(path): \(reason); \(kept), and the worker started from an empty table",
            file: movedTo)
    }

    /// A deadline's end of the summary: the worker stopped waiting, but libvirt cannot be
    /// interrupted, so the call may still change the machine.
    private static let callGoesOn = "the libvirt call goes on and any state change it makes is reported as a machine.event"

    /// What every deadline record shares: its type, category and retry verdict.
    private static func deadline(message: String, summary: String, timeoutMs: Int?) -> WorkerErrorRecord {
        WorkerErrorRecord(
            type: "timeout", category: .timeout, retryable: true, message: message, summary: summary,
            timeoutMs: timeoutMs)
    }

    /// A record whose category is one of the protocol's; the wire carries its snake_case name.
    private init(
        type: String, category: ErrorCategory, retryable: Bool, message: String, summary: String,
        timeoutMs: Int? = nil, file: String? = nil
    ) {
        self.init(
            type: type, category: category.rawValue, retryable: retryable, message: message, summary: summary,
            timeoutMs: timeoutMs, file: file)
    }
}
