import ArgumentParser
import ECPProtocol
import Foundation
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The descriptor the SIGINT/SIGTERM handler raises; set once before the handler is installed.
nonisolated(unsafe) private var interruptDescriptor: Int32 = -1

/// `ecpctl tail [PREFIX...]`: follow the worker's events socket.
struct TailCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Follow the worker's events: results, errors, machine events, heartbeats.",
        discussion: """
            Subscribes to the events socket (--events) with the given topic prefixes (default: \
            everything) and prints each message as it comes:

              HH:MM:SS.mmm topic type key facts

            for example `20:31:07.123 result.host1 result ctl-1a2b3c4d start web1 ok/changed \
            running`. Errors (topics error.*, failed results) are red on a terminal. With --json \
            each message's JSON is printed as received, one per line. SIGINT (Ctrl-C) ends it \
            with exit status 0. --control, --timeout-ms and --id do not apply.

            Topics: ack.<worker> result.<worker> error.libvirt.<worker> error.request.<worker> \
            restore.<worker> machine.<worker> heartbeat.<worker> worker.<worker>. A prefix \
            matches bytes: result.host1 also matches result.host10.

            Examples:
              ecpctl tail
              ecpctl tail error. machine.
              ecpctl tail --json --count 1 --command-id deploy-7 --duration-ms 60000
            """)

    @OptionGroup var options: SharedOptions

    @Argument(help: ArgumentHelp("Topic prefixes to subscribe to (default: all topics).", valueName: "prefix"))
    var prefixes: [String] = []

    @Option(help: ArgumentHelp("Exit after printing this many messages.", valueName: "n"))
    var count: Int?

    @Option(
        name: .customLong("command-id"),
        help: ArgumentHelp("Print only the messages about this command id (its ack, result and errors).", valueName: "id"))
    var commandID: String?

    @Option(
        name: .customLong("duration-ms"),
        help: ArgumentHelp(
            "Stop after this many milliseconds; with --count, exit status 3 when fewer messages came.",
            valueName: "ms"))
    var durationMs: Int?

    @Flag(name: .shortAndLong, help: "Say on stderr when subscribed and when the first message arrives.")
    var verbose = false

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1, got \(count)") }
        if let durationMs, durationMs < 0 { throw ValidationError("--duration-ms must not be negative, got \(durationMs)") }
        if let commandID, let problem = CommandDecoder.idProblem(commandID) {
            throw ValidationError("--command-id: " + problem)
        }
    }

    func run() throws {
        try guarded { try follow() }
    }

    private func follow() throws {
        let endpoint = try options.eventsEndpoint
        let keys = try options.curveKeys()
        let style = Style.stdout(noColor: options.noColor)
        let interrupt = try WakeSignal()
        interruptDescriptor = interrupt.fileDescriptor
        let handler: @convention(c) (Int32) -> Void = { _ in
            var one: UInt64 = 1
            _ = write(interruptDescriptor, &one, MemoryLayout<UInt64>.size)
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
        // A parent may have started ecpctl with these signals blocked (the mask is inherited).
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGINT)
        sigaddset(&unblock, SIGTERM)
        sigprocmask(SIG_UNBLOCK, &unblock, nil)

        let shown = Sanitize.display(endpoint.description)
        do {
            let context = try Context()
            let socket = try context.makeSocket(.sub)
            defer { socket.close() }
            try socket.setLinger(milliseconds: 0)
            if let keys { try keys.apply(to: socket) }
            let subscriptions = prefixes.isEmpty ? [""] : prefixes
            for prefix in subscriptions { try socket.subscribe(prefix) }
            try socket.attach(endpoint)
            if verbose {
                let what = prefixes.isEmpty ? "all topics" : prefixes.map(Sanitize.display).joined(separator: " ")
                Console.err("ecpctl: subscribed to \(what) at \(shown)")
            }

            let deadline = durationMs.map { Monotonic.milliseconds() + Int64($0) }
            var printed = 0
            var received = false
            while true {
                var timeout = -1
                if let deadline {
                    let remaining = deadline - Monotonic.milliseconds()
                    if remaining <= 0 { break }
                    timeout = Int(remaining)
                }
                let events = try poll([.socket(socket), .fileDescriptor(interrupt.fileDescriptor)], timeoutMs: timeout)
                if events[1].contains(.readable) { return }
                guard events[0].contains(.readable) else { continue }
                while let frames = try socket.receive(dontWait: true) {
                    if !received {
                        received = true
                        if verbose { Console.err("ecpctl: receiving from \(shown)") }
                    }
                    guard frames.count == 2 else {
                        Console.err("ecpctl: skipped a message of \(frames.count) frames (events are [topic][json])")
                        continue
                    }
                    let topic = String(decoding: frames[0], as: UTF8.self)
                    if let commandID, JSONValue.parse(frames[1])?["id"]?.stringValue != commandID { continue }
                    if options.json {
                        Console.out(json: frames[1])
                    } else {
                        let line = EventText.line(topic: topic, body: frames[1])
                        Console.out(line.isError ? style.red(line.text) : line.text)
                    }
                    printed += 1
                    if let count, printed >= count { return }
                }
            }
            if let count, printed < count {
                throw CtlFailure(
                    ExitStatus.noReply,
                    "only \(printed) of \(count) message\(count == 1 ? "" : "s") from \(shown) within \(durationMs ?? 0) ms")
            }
        } catch let error as ZMQError {
            throw CtlFailure(ExitStatus.software, "ZeroMQ failed on \(shown): \(error)")
        }
    }
}
