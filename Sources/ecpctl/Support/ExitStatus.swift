import ArgumentParser

/// The exit statuses of ecpctl (see the root command's help).
enum ExitStatus {
    /// The worker answered `ok: false`.
    static let failed: Int32 = 1
    /// The worker refused the request (`request_error`).
    static let requestError: Int32 = 2
    /// No reply within the timeout.
    static let noReply: Int32 = 3
    /// `replay`: some of the asked messages are gone from the worker's memory.
    static let truncated: Int32 = 4
    /// `host-stop`: one or more machines failed to stop (the others were stopped).
    static let someFailed: Int32 = 5
    /// A bad option, endpoint, key or input file (`EX_USAGE`).
    static let usage: Int32 = 64
    /// ZeroMQ failed, or a reply could not be read (`EX_SOFTWARE`).
    static let software: Int32 = 70
}

/// A failure that ends ecpctl: a message for stderr and the exit status.
struct CtlFailure: Error, CustomStringConvertible {
    /// The exit status.
    var status: Int32
    /// One line for a person (already safe to print).
    var message: String

    init(_ status: Int32, _ message: String) {
        self.status = status
        self.message = message
    }

    var description: String { message }
}

/// Runs a subcommand's body, turning a ``CtlFailure`` or another error into a message on
/// stderr and the matching exit status.
func guarded(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let failure as CtlFailure {
        Console.err("ecpctl: " + failure.message)
        throw ExitCode(failure.status)
    } catch let exit as ExitCode {
        throw exit
    } catch {
        Console.err("ecpctl: " + Sanitize.display("\(error)"))
        throw ExitCode(ExitStatus.software)
    }
}
