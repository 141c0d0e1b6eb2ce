import ArgumentParser
import Foundation
import WorkerLauncher

/// Which worker a load run drives: a running one, or one the bench starts (`--spawn`).
struct TargetOptions: ParsableArguments {
    @Flag(help: "Start a worker for the run on free ports of 127.0.0.1 (libvirt test driver, machine 'test'), and stop it at the end; needs no setup.")
    var spawn = false

    @Option(help: ArgumentHelp(
        "Endpoint of the bench's PUB socket, which sends the commands: @ binds, > connects (default @tcp://127.0.0.1:5555, where a worker with default options connects).",
        valueName: "endpoint"))
    var commands: String?

    @Option(help: ArgumentHelp(
        "The worker's events endpoint, which the bench's SUB socket reads results from: > connects, @ binds (default >tcp://127.0.0.1:5556).",
        valueName: "endpoint"))
    var events: String?

    @Option(help: "The worker's id, as in its topics cmd.<id> and result.<id> (default: $ECP_WORKER_ID, else the host name, as the worker's own default; 'bench' with --spawn).")
    var workerId: String?

    @Option(help: "The worker's process id, to read its resident memory (VmRSS) before and after the run (known by itself with --spawn).")
    var workerPid: Int32?

    func validate() throws {
        if spawn && (commands != nil || events != nil || workerId != nil || workerPid != nil) {
            throw ValidationError("--spawn chooses the endpoints, worker id and process itself: leave out --commands, --events, --worker-id and --worker-pid")
        }
    }

    /// The id a worker with default options has on this host.
    static var defaultWorkerID: String {
        if let id = ProcessInfo.processInfo.environment["ECP_WORKER_ID"], !id.isEmpty { return id }
        return ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "worker"
    }
}

/// How the bench starts workers of its own.
struct SpawnOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The ecp-worker executable to start (default: ecp-worker next to ecp-bench).", valueName: "path"))
    var worker: String?

    @Option(help: ArgumentHelp("An extra argument for started workers (repeatable), e.g. --worker-arg=--log-level=warning.", valueName: "argument"))
    var workerArg: [String] = []

    @Option(help: ArgumentHelp(
        "Start the worker on a generated test-driver host of N running machines (bench-m00001, ...), and send the ops that need a machine to them in turn, unless --machine or --machines names others.",
        valueName: "N"))
    var testMachines: Int?

    var binary: String { worker ?? SpawnedWorker.defaultBinary() }

    func validate() throws {
        if let n = testMachines, !(1...10_000).contains(n) {
            throw ValidationError("--test-machines must be between 1 and 10000, got \(n)")
        }
    }

    /// `--test-machines` sets up the host of a worker the bench starts: it needs `--spawn`.
    func check(against target: TargetOptions) throws {
        if testMachines != nil && !target.spawn {
            throw ValidationError("--test-machines needs --spawn: it sets up the started worker's host")
        }
    }
}

/// What a load run sends.
struct LoadOptions: ParsableArguments {
    @Option(help: "The op mix, as op=weight pairs: status, ping, list, report, and suspend with resume (sent as per-machine pairs, see above).")
    var mix = "status=8,suspend=1,resume=1"

    @Option(help: "The machine for ops that need one (default: test, the test driver's machine).")
    var machine: String?

    @Option(help: ArgumentHelp("Several machines, comma-separated, taken in turn.", valueName: "a,b,c"))
    var machines: String?

    @Option(help: "Stop after this many seconds in all, and report what came back (default 120; memory: 600).")
    var timeoutS: Double?

    @Option(help: "Stop when no result has come for this many seconds, and report what came back.")
    var stallS: Double = 10

    @Option(help: "timeout_ms to put on every command (default: none).")
    var commandTimeoutMs: Int?

    func validate() throws {
        if machine != nil && machines != nil { throw ValidationError("give --machine or --machines, not both") }
        if let t = timeoutS, t <= 0 { throw ValidationError("--timeout-s must be positive") }
        if stallS <= 0 { throw ValidationError("--stall-s must be positive") }
        if let t = commandTimeoutMs, t < 1 { throw ValidationError("--command-timeout-ms must be positive") }
        if machineList.isEmpty { throw ValidationError("--machines names no machine") }
        do { _ = try OpMix(parsing: mix) } catch { throw ValidationError("--mix: \(error)") }
    }

    var machineList: [String] {
        if let machines {
            return machines.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        return [machine ?? "test"]
    }
}

/// `--json`.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON object on standard output instead of the table.")
    var json = false
}

/// Runs a subcommand's body: a ``BenchFailure`` becomes its sentence on standard error and its
/// exit status; workers and temporary files are cleaned up on every path.
func guarded(_ body: () throws -> Int32) throws {
    InterruptHandler.install()
    let status: Int32
    do {
        status = try body()
    } catch let failure as BenchFailure {
        Cleanup.all()
        note(failure.description)
        throw ExitCode(failure.status)
    } catch let error as ExitCode {
        Cleanup.all()
        throw error
    } catch {
        Cleanup.all()
        note("\(error)")
        throw ExitCode(2)
    }
    Cleanup.all()
    if status != 0 { throw ExitCode(status) }
}

/// The bounds of a load run's size, shared by the subcommands that send load.
enum LoadBounds {
    static func check(count: Int, window: Int) throws {
        guard count >= 1, count <= 100_000_000 else { throw ValidationError("--count must be between 1 and 100000000") }
        guard window >= 1, window <= 10_000 else { throw ValidationError("--window must be between 1 and 10000 (the worker's queue)") }
    }
}
