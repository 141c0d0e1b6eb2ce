import ECPProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `ecpctl tail` filling gaps and restarts from the worker's `replay`, and `ecpctl replay`,
/// against real workers on the libvirt test driver.
@Suite("ecpctl replay")
struct EcpctlReplayTests {
    /// The messages of `run` in tail's or replay's `--json` lines: each line as printed, and its seq.
    private static func messages(_ lines: [String], run: String) throws -> [(line: String, seq: Int)] {
        try lines.compactMap { line in
            let object = try ctlJSONObject(line)
            guard object["run"] as? String == run, let seq = object["seq"] as? Int else { return nil }
            return (line, seq)
        }
    }

    /// The newest seq the worker published (a replay page that matches no topic examines them all).
    private static func newestSeq(_ worker: CtlWorker) async throws -> (run: String, seq: Int) {
        let page = try await Ctl.run(["replay", "--json", "--all-pages", "--topic", "nothing.matches."] + worker.endpoints)
        let meta = try ctlJSONObject(try #require(page.stdoutLines.last, "\(page)"))
        return (try #require(meta["run"] as? String, "\(page)"), try #require(meta["next_seq"] as? Int, "\(page)"))
    }

    /// Whether `output` holds the message `seq` of `run` (the worker writes `run` right before `seq`).
    private static func holds(_ output: String, run: String, seq: Int) -> Bool {
        output.contains("\"run\":\"\(run)\",\"seq\":\(seq),")
    }

    @Test("tail recovers a worker restart: the new run's startup messages, published before it reconnects, print once and in order")
    func tailRecoversRestart() async throws {
        let directory = try CtlPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let ports = try CtlWorkerPorts.free()
        let stateFile = directory.appendingPathComponent("state.json").path
        let id = WorkerProcess.uniqueID(prefix: "ctl-e2e-")

        let first = try await CtlWorker.start(ports: ports, stateFilePath: stateFile, id: id)
        var firstStopped = false
        defer { if !firstStopped { first.process.signal(SIGKILL) } }
        // Desired states in the table, so the next worker's startup restore has work to publish.
        for machine in ["web1", "web2"] {
            let start = try await Ctl.run(["start", machine] + first.endpoints)
            #expect(start.status == 0, "\(start)")
        }
        let tail = try Ctl.start(["tail", "--json", "--verbose", "--timeout-ms", "5000"] + first.endpoints)
        defer { tail.signal(SIGKILL) }
        #expect(await tail.waitForOutput(containing: "receiving from", inStderr: true, within: .seconds(15)), "tail received nothing")

        #expect(try await first.stop() == 0)
        firstStopped = true
        let second = try await CtlWorker.start(ports: ports, stateFilePath: stateFile, id: id)
        var secondStopped = false
        defer { if !secondStopped { second.process.signal(SIGKILL) } }
        #expect(second.endpoints == first.endpoints)
        // The restore runs after readiness: wait (each ask is a process run) for its summary.
        let deadline = ContinuousClock.now + .seconds(15)
        var restored = false
        while !restored && ContinuousClock.now < deadline {
            let page = try await Ctl.run(["replay", "--json", "--all-pages", "--topic", "restore."] + second.endpoints)
            restored = page.stdout.contains("\"restore.summary\"")
        }
        #expect(restored, "the second worker published no restore summary")
        let (run, newest) = try await Self.newestSeq(second)

        let whole = try await Ctl.run(["replay", "--json", "--all-pages"] + second.endpoints)
        #expect(whole.status == 0, "\(whole)")
        let expected = try Self.messages(whole.stdoutLines, run: run).filter { $0.seq <= newest }
        #expect(expected.map(\.seq) == Array(1...newest), "the replay holds the whole run: \(whole)")
        #expect(whole.stdout.contains("\"restore.outcome\"") || whole.stdout.contains("\"restore.summary\""), "\(whole)")

        let complete = await tail.waitUntil(within: .seconds(20)) { Self.holds($0.stdout, run: run, seq: newest) }
        tail.signal(SIGINT)
        let result = await tail.finish(within: .seconds(20))
        #expect(complete, "tail never printed seq \(newest) of the new run\n\(result)")
        #expect(result.status == 0 && !result.killed, "\(result)")
        let printed = try Self.messages(result.stdoutLines, run: run).filter { $0.seq <= newest }
        #expect(printed.map(\.seq) == Array(1...newest), "every seq of the new run once, in order\n\(result)")
        #expect(printed.map(\.line) == expected.map(\.line), "each message exactly as published\n\(result)")

        #expect(try await second.stop() == 0)
        secondStopped = true
    }

    @Test("tail --from-start recovers messages the worker dropped for it (--events-hwm 1, a burst of status commands)")
    func tailRecoversDrops() async throws {
        try await CtlWorker.with(workerArguments: ["--events-hwm", "1"]) { worker in
            let tail = try Ctl.start(["tail", "--json", "--from-start", "--verbose", "--timeout-ms", "10000"] + worker.endpoints)
            defer { tail.signal(SIGKILL) }
            // A witness without replay shows that the burst really made the worker drop messages.
            let witness = try Ctl.start(["tail", "--json", "--no-replay", "--verbose"] + worker.endpoints)
            defer { witness.signal(SIGKILL) }
            for process in [tail, witness] {
                #expect(await process.waitForOutput(containing: "receiving from", inStderr: true, within: .seconds(15)))
            }
            let process = worker.process
            var dropped = false
            for round in 0..<6 where !dropped {
                try await WorkerTestThread.run("ctl-burst") {
                    let client = try WorkerClient(process, subscriptions: ["nothing.matches."])
                    let count = 2_000
                    for i in 0..<count {
                        try client.sendControl(WorkerClient.command("status", id: "burst-\(round)-\(i)", machine: "web1"))
                    }
                    for _ in 0..<count { _ = try client.nextReply(timeout: .seconds(30)) }
                }
                let (run, newest) = try await Self.newestSeq(worker)
                _ = await witness.waitUntil(within: .seconds(10)) { Self.holds($0.stdout, run: run, seq: newest) }
                let witnessSeqs = try Self.messages(Self.lines(witness.output.stdout), run: run).map(\.seq)
                dropped = witnessSeqs.count < newest - (witnessSeqs.first ?? 1) + 1
            }
            #expect(dropped, "the worker never dropped a message for a subscriber with --events-hwm 1")

            let (run, newest) = try await Self.newestSeq(worker)
            let complete = await tail.waitUntil(within: .seconds(60)) { Self.holds($0.stdout, run: run, seq: newest) }
            tail.signal(SIGINT)
            witness.signal(SIGINT)
            let result = await tail.finish(within: .seconds(20))
            _ = await witness.finish(within: .seconds(20))
            #expect(complete, "tail never printed seq \(newest)\n\(result.stderr)")
            #expect(result.status == 0 && !result.killed, "\(result.stderr)")
            let seqs = try Self.messages(result.stdoutLines, run: run).map(\.seq)
            let upTo = seqs.filter { $0 <= newest }
            #expect(upTo == Array(1...newest), "every seq 1...\(newest) once, in order; got \(upTo.count) lines\n\(result.stderr)")
            #expect(Set(seqs).count == seqs.count, "no seq twice")
            #expect(result.stderr.contains("replayed"), "\(result.stderr)")
        }
    }

    /// Complete lines of output so far.
    private static func lines(_ output: String) -> [String] {
        var lines = output.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        if !output.hasSuffix("\n"), !lines.isEmpty { lines.removeLast() }
        return lines
    }

    @Test("replay --json pages oldest first, ends with its page line, and reports truncation (exit 4) past --replay-messages")
    func replayPagesAndTruncation() async throws {
        try await CtlWorker.with(workerArguments: ["--replay-messages", "10", "--heartbeat-ms", "600000"]) { worker in
            // worker.started, restore.summary, then an ack and a result per status: more than 10.
            for _ in 0..<6 {
                let status = try await Ctl.run(["status", "web1"] + worker.endpoints)
                #expect(status.status == 0, "\(status)")
            }
            let (run, newest) = try await Self.newestSeq(worker)
            #expect(newest >= 14, "published \(newest)")
            let oldest = newest - 9

            let all = try await Ctl.run(["replay", "--json", "--all-pages", "--limit", "4"] + worker.endpoints)
            #expect(all.status == 4, "truncated: exit status 4\n\(all)")
            let meta = try ctlJSONObject(try #require(all.stdoutLines.last))
            #expect(meta["type"] as? String == "replay.page", "\(all)")
            #expect(meta["truncated"] as? Bool == true && meta["more"] as? Bool == false, "\(all)")
            #expect(meta["oldest_seq"] as? Int == oldest && meta["next_seq"] as? Int == newest, "\(all)")
            #expect(meta["messages"] as? Int == 10 && meta["run"] as? String == run, "\(all)")
            let seqs = try Self.messages(Array(all.stdoutLines.dropLast()), run: run).map(\.seq)
            #expect(seqs == Array(oldest...newest), "\(all)")
            #expect(all.stderr.contains("messages 1..\(oldest - 1) of run \(run) are lost and could not be recovered"), "\(all)")

            let page = try await Ctl.run(["replay", "--json", "--since-seq", "\(oldest)", "--limit", "3"] + worker.endpoints)
            #expect(page.status == 0, "\(page)")
            #expect(page.stdoutLines.count == 4, "\(page)")
            let pageMeta = try ctlJSONObject(try #require(page.stdoutLines.last))
            #expect(pageMeta["next_seq"] as? Int == oldest + 3 && pageMeta["more"] as? Bool == true, "\(page)")
            #expect(pageMeta["truncated"] as? Bool == false, "\(page)")
            #expect(try Self.messages(Array(page.stdoutLines.dropLast()), run: run).map(\.seq) == [oldest + 1, oldest + 2, oldest + 3])

            let text = try await Ctl.run(["replay", "--topic", "result.", "--since-seq", "\(oldest - 1)"] + worker.endpoints)
            #expect(text.status == 0, "\(text)")
            #expect(text.stdoutLines.last?.hasPrefix("replay: run \(run), ") == true, "\(text)")
            #expect(text.stdoutLines.dropLast().allSatisfy { $0.contains(" result.\(worker.workerID) result ") }, "\(text)")
        }
    }
}
