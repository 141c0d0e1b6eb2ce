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
            with exit status 0.

            Nothing is lost: every message carries the worker's run and seq. When a seq is \
            skipped (a slow subscriber's messages were dropped, or the connection broke) or a \
            new run begins (the worker restarted), tail asks the control socket (--control, \
            waiting --timeout-ms for each page) for the missing messages with `replay`, \
            prints them in order, then goes on with the live stream, printing each seq once. \
            Messages the worker no longer holds are reported on stderr (also with --json) as \
            lost; when the control socket does not answer, stderr says the gap could not be \
            filled and tail goes on. A tail started mid-run begins with the next message; \
            --from-start prints the whole run so far first. --no-replay prints just what \
            arrives.

            Topics: ack.<worker> result.<worker> error.libvirt.<worker> error.request.<worker> \
            restore.<worker> machine.<worker> heartbeat.<worker> worker.<worker>. A prefix \
            matches bytes: result.host1 also matches result.host10.

            Examples:
              ecpctl tail
              ecpctl tail error. machine.
              ecpctl tail --json --count 1 --command-id deploy-7 --duration-ms 60000
              ecpctl tail --from-start --json result.
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

    @Flag(name: .shortAndLong, help: "Say on stderr when subscribed, when the first message arrives, and what was replayed.")
    var verbose = false

    @Flag(name: .customLong("from-start"), help: "First print the whole run so far (what the worker still holds), then follow.")
    var fromStart = false

    @Flag(name: .customLong("no-replay"), help: "Never ask the control socket for missed messages; print what arrives.")
    var noReplay = false

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1, got \(count)") }
        if fromStart && noReplay { throw ValidationError("--from-start needs replay: it cannot go with --no-replay") }
        if prefixes.count > ReplayLimits.maxTopics && !noReplay {
            throw ValidationError("at most \(ReplayLimits.maxTopics) prefixes can be replayed; use --no-replay for more")
        }
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

            var follower = Follower(command: self, style: style)
            if fromStart { follower.fill(since: 0, gapEnd: nil) }
            let deadline = durationMs.map { Monotonic.milliseconds() + Int64($0) }
            var received = false
            while !follower.done {
                var timeout = -1
                if let deadline {
                    let remaining = deadline - Monotonic.milliseconds()
                    if remaining <= 0 { break }
                    timeout = Int(remaining)
                }
                let events = try poll([.socket(socket), .fileDescriptor(interrupt.fileDescriptor)], timeoutMs: timeout)
                if events[1].contains(.readable) { return }
                guard events[0].contains(.readable) else { continue }
                while !follower.done, let frames = try socket.receive(dontWait: true) {
                    if !received {
                        received = true
                        if verbose { Console.err("ecpctl: receiving from \(shown)") }
                    }
                    guard frames.count == 2 else {
                        Console.err("ecpctl: skipped a message of \(frames.count) frames (events are [topic][json])")
                        continue
                    }
                    follower.live(topic: String(decoding: frames[0], as: UTF8.self), raw: frames[1])
                }
            }
            let printed = follower.printed
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

/// What tail has printed of the worker's current run, so that a gap or a new run is filled
/// from `replay` and no seq prints twice.
private struct Follower {
    let command: TailCommand
    let style: Style
    /// The run being followed; nil until the first message or page.
    var run: String?
    /// The newest seq of `run` dealt with: printed, filtered out by --command-id, or examined by a
    /// replay page (which holds every message of the subscribed topics up to its next_seq).
    var last: UInt64 = 0
    var printed = 0
    /// --count is reached.
    var done = false

    init(command: TailCommand, style: Style) {
        self.command = command
        self.style = style
    }

    /// A message from the events socket.
    mutating func live(topic: String, raw: Data) {
        let document = JSONValue.parse(raw)
        // Without a run and seq (a publisher that is not an ECP worker) there is nothing to track.
        guard !command.noReplay, let seqValue = document?["seq"]?.intValue, seqValue >= 0,
            let messageRun = document?["run"]?.stringValue
        else {
            emit(topic: topic, raw: raw, document: document)
            return
        }
        let seq = UInt64(seqValue)
        if messageRun != run {
            if run == nil && !command.fromStart {
                // Joining mid-run is not a gap: the messages before were never asked for.
                last = seq - min(seq, 1)
            } else {
                if run != nil && command.verbose {
                    Console.err("ecpctl: the worker began run \(Sanitize.display(messageRun)) (it restarted): replaying it from the start")
                }
                last = 0
            }
            run = messageRun
        }
        if seq > last + 1 {
            fill(since: last, gapEnd: seq - 1)
            if done || run != messageRun { return }
        }
        guard seq > last else { return }
        emit(topic: topic, raw: raw, document: document)
        last = seq
    }

    /// Prints, in order, what the worker published after `since` that was not printed yet, page
    /// by page until no newer messages exist. `gapEnd` is the last missing seq, for the
    /// message when the gap cannot be filled (nil: the whole run was asked for).
    mutating func fill(since: UInt64, gapEnd: UInt64?) {
        var cursor = since
        var replayed = 0
        while !done {
            let reply: Data
            do {
                reply = try ReplayPage.request(
                    since: cursor, limit: ReplayLimits.maxPage, topics: command.prefixes, options: command.options)
            } catch let failure as CtlFailure {
                unfilled(after: cursor, gapEnd: gapEnd, reason: failure.message)
                return
            } catch {
                unfilled(after: cursor, gapEnd: gapEnd, reason: Sanitize.display("\(error)"))
                return
            }
            guard let page = ReplayPage(reply: reply) else {
                unfilled(after: cursor, gapEnd: gapEnd, reason: Self.refusal(reply))
                return
            }
            if run == nil { run = page.run }
            guard page.run == run else {
                unfilled(after: cursor, gapEnd: gapEnd, reason: "the worker began another run meanwhile")
                return
            }
            if page.truncated, page.oldestSeq > cursor + 1 {
                Console.err(ReplayPage.lostLine(from: cursor + 1, through: page.oldestSeq - 1, run: page.run, filtered: !command.prefixes.isEmpty))
                last = max(last, page.oldestSeq - 1)
            }
            for message in page.messages {
                guard let seq = message.seq, seq > last else { continue }
                emit(topic: message.topic, raw: message.raw, document: message.document)
                last = seq
                replayed += 1
                if done { return }
            }
            last = max(last, page.nextSeq)
            guard page.more, page.nextSeq > cursor else { break }
            cursor = page.nextSeq
        }
        if command.verbose && (replayed > 0 || gapEnd == nil) {
            Console.err("ecpctl: replayed \(replayed) message\(replayed == 1 ? "" : "s") of run \(Sanitize.display(run ?? "?")) after seq \(since)")
        }
    }

    private func unfilled(after cursor: UInt64, gapEnd: UInt64?, reason: String) {
        let what: String
        if let gapEnd, gapEnd > cursor {
            let range = gapEnd == cursor + 1 ? "message \(gapEnd)" : "messages \(cursor + 1)..\(gapEnd)"
            // With prefixes a skipped seq is often of another topic: only the worker could tell.
            let topics = command.prefixes.isEmpty ? "" : " (maybe of other topics)"
            what = "\(range) of run \(Sanitize.display(run ?? "?"))\(topics) did not arrive and the gap could not be filled"
        } else if gapEnd == nil {
            what = "the run so far could not be replayed"
        } else {
            what = "the replay could not be completed"
        }
        Console.err("ecpctl: \(what): \(reason)")
    }

    /// Why a replay reply holds no page, in a line.
    private static func refusal(_ reply: Data) -> String {
        guard let document = JSONValue.parse(reply) else { return "unreadable reply" }
        if document["type"]?.stringValue == "request_error" {
            return "the worker refused replay: \(document.text("reason")): \(document.text("detail"))"
        }
        if document["ok"]?.boolValue == false, let summary = document["error"]?["summary"] {
            return "replay failed: " + summary.displayText
        }
        return "the reply holds no replay page"
    }

    private mutating func emit(topic: String, raw: Data, document: JSONValue?) {
        if let id = command.commandID, document?["id"]?.stringValue != id { return }
        if command.options.json {
            Console.out(json: raw)
        } else {
            let line = EventText.line(topic: topic, body: raw)
            Console.out(line.isError ? style.red(line.text) : line.text)
        }
        printed += 1
        if let count = command.count, printed >= count { done = true }
    }
}
