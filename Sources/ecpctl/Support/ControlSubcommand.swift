import ArgumentParser
import ECPProtocol
import Foundation

/// A subcommand that sends one command to the worker's control socket and prints the reply.
protocol ControlSubcommand: ParsableCommand {
    /// The shared options.
    var options: SharedOptions { get }
}

extension ControlSubcommand {
    /// Sends a command, waits for its reply and prints it (for a person, or raw with `--json`).
    ///
    /// - Parameter minimumWaitMs: The reply wait is at least this long, even with a smaller
    ///   `--timeout-ms` (a shutdown that waits for the guest).
    /// - Throws: `ExitCode` for every outcome but success (see ``ExitStatus``).
    func perform(_ op: Op, machine: String? = nil, args: [String: JSONValue]? = nil, minimumWaitMs: Int = 0) throws {
        try perform(opName: op.rawValue, machine: machine, args: args, minimumWaitMs: minimumWaitMs)
    }

    /// ``perform(_:machine:args:minimumWaitMs:)`` for an op given by its wire name.
    func perform(opName: String, machine: String? = nil, args: [String: JSONValue]? = nil, minimumWaitMs: Int = 0) throws {
        try guarded {
            let reply = try request(opName: opName, machine: machine, args: args, waitMs: max(options.timeoutMs, minimumWaitMs))
            try ReplyPrinter(options: options).finish(reply)
        }
    }

    /// Sends a command and returns its reply's bytes, unprinted.
    ///
    /// - Throws: ``CtlFailure`` as ``ControlClient/request(_:expectedID:options:waitMs:)`` does.
    func request(opName: String, machine: String? = nil, args: [String: JSONValue]? = nil, waitMs: Int) throws -> Data {
        let id = options.makeCommandID()
        let payload = try CommandDocument(id: id, op: opName, machine: machine, args: args).encoded()
        return try ControlClient.request(payload, expectedID: id, options: options, waitMs: waitMs)
    }
}

/// Checks a machine argument the way the worker will, so a typo is a usage error at once.
func validateMachine(_ machine: String) throws {
    if let problem = CommandDecoder.machineProblem(machine) {
        throw ValidationError(problem)
    }
}
