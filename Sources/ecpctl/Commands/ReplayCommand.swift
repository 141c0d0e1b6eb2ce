import ArgumentParser
import ECPProtocol
import Foundation

/// `ecpctl replay`: the messages the worker published in this run, from its replay ring.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Print messages the worker published in this run, from its replay memory.",
        discussion: """
            Asks the control socket (--control) for the published messages with seq greater \
            than --since-seq, oldest first, at most --limit of them (one page); --all-pages \
            asks again from each page's next_seq until no newer messages exist. The worker \
            keeps only its newest messages (ecp-worker --replay-messages, --replay-bytes).

            Output: each message as a line like tail's; then one summary line:

              replay: run R, N messages, next_seq S, more false, oldest_seq O, truncated false

            With --json each message's JSON exactly as published, one per line (like tail \
            --json), then the summary as a last JSON line whose type is "replay.page": \
            {"type":"replay.page","run":R,"messages":N,"next_seq":S,"more":B,"oldest_seq":O,"truncated":B}. \
            With --all-pages, messages counts them all, next_seq and more are those of the \
            last page, oldest_seq that of the first, and truncated is true if any page was. \
            To go on later, ask with --since-seq next_seq.

            When messages after --since-seq are gone (truncated), the rest is printed, stderr \
            says which seqs are lost, and the exit status is 4. Exit statuses otherwise as \
            for every subcommand (2: refused, 3: no reply).

            Examples:
              ecpctl replay --since-seq 120
              ecpctl replay --json --all-pages --topic result. --topic error.
            """)

    @OptionGroup var options: SharedOptions

    @Option(name: .customLong("since-seq"), help: ArgumentHelp("Print the messages after this seq (default 0: the whole run kept).", valueName: "n"))
    var sinceSeq: Int = 0

    @Option(help: ArgumentHelp("The most messages one page holds, 1 to 5000.", valueName: "n"))
    var limit: Int = ReplayLimits.defaultPage

    @Option(name: .customLong("topic"), help: ArgumentHelp("Only messages whose topic starts with this (repeatable; default all).", valueName: "prefix"))
    var topics: [String] = []

    @Flag(name: .customLong("all-pages"), help: "Ask page after page until no newer messages exist.")
    var allPages = false

    func validate() throws {
        if sinceSeq < 0 { throw ValidationError("--since-seq must be 0 or more, got \(sinceSeq)") }
        if !(1...ReplayLimits.maxPage).contains(limit) {
            throw ValidationError("--limit must be between 1 and \(ReplayLimits.maxPage), got \(limit)")
        }
        if topics.count > ReplayLimits.maxTopics {
            throw ValidationError("at most \(ReplayLimits.maxTopics) --topic prefixes, got \(topics.count)")
        }
    }

    func run() throws {
        try guarded { try replay() }
    }

    private func replay() throws {
        let style = Style.stdout(noColor: options.noColor)
        var since = UInt64(sinceSeq)
        var count = 0
        var firstOldest: UInt64?
        var anyTruncated = false
        var last: ReplayPage
        while true {
            let reply = try ReplayPage.request(since: since, limit: limit, topics: topics, options: options)
            guard let page = ReplayPage(reply: reply) else {
                // A refusal or failure prints as any reply does, with its exit status.
                try ReplyPrinter(options: options).finish(reply)
                throw CtlFailure(ExitStatus.software, "the replay reply has no page")
            }
            if page.truncated {
                anyTruncated = true
                Console.err(ReplayPage.lostLine(from: since + 1, through: page.oldestSeq - 1, run: page.run, filtered: !topics.isEmpty))
            }
            firstOldest = firstOldest ?? page.oldestSeq
            for message in page.messages {
                if options.json {
                    Console.out(json: message.raw)
                } else {
                    let line = EventText.line(topic: message.topic, body: message.raw)
                    Console.out(line.isError ? style.red(line.text) : line.text)
                }
            }
            count += page.messages.count
            last = page
            // A page that does not advance would ask the same again for ever.
            guard allPages, page.more, page.nextSeq > since else { break }
            since = page.nextSeq
        }
        let oldest = firstOldest ?? last.oldestSeq
        if options.json {
            let summary: JSONValue = .object([
                "type": .string("replay.page"), "run": .string(last.run), "messages": .int(Int64(count)),
                "next_seq": .int(Int64(clamping: last.nextSeq)), "more": .bool(last.more),
                "oldest_seq": .int(Int64(clamping: oldest)), "truncated": .bool(anyTruncated),
            ])
            Console.out(summary.compactJSON)
        } else {
            Console.out(
                "replay: run \(Sanitize.display(last.run)), \(count) message\(count == 1 ? "" : "s"), next_seq \(last.nextSeq), "
                    + "more \(last.more), oldest_seq \(oldest), truncated \(anyTruncated)")
        }
        if anyTruncated { throw ExitCode(ExitStatus.truncated) }
    }
}
