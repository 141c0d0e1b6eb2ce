import ECPProtocol
import Foundation
import Testing
import ZeroMQ

/// Bounds on what a peer of the sockets can make the worker hold: queues of a subscriber that
/// does not read, subscription frames, descriptors, log lines about refused clients, and replies
/// a client does not take.
@Suite("Security: transport bounds")
struct SecurityTransportTests {
    // MARK: events socket

    @Test("--events-hwm: a subscriber that never reads costs at most its queue: 150,000 statuses grow resident memory by less than 24 MiB")
    func stalledSubscriber() async throws {
        try await WorkerTestThread.run("sec-events-hwm") { try stalledSubscriberBody() }
    }

    private func stalledSubscriberBody() throws {
        let worker = try WorkerProcess.start(SecurityLimitTests.options(["--log-level", "info"]))
        let client = try WorkerClient(worker, subscriptions: ["heartbeat."])
        let context = try Context()
        // It takes every topic and keeps at most one message and a small kernel buffer on its side,
        // so what it does not read queues in the worker.
        let stalled = try context.makeSocket(.sub)
        defer { stalled.close() }
        try stalled.setLinger(milliseconds: 0)
        try stalled.setReceiveHighWaterMark(1)
        try stalled.setReceiveBufferSize(4096)
        try stalled.setMaxMessageSize(-1)
        try stalled.subscribe("")
        try stalled.connect(worker.eventsAddress)
        // A first heartbeat says the subscription is in effect; after it, the subscriber reads nothing.
        let events = try poll([.socket(stalled)], timeoutMs: 10_000)
        #expect(events[0].contains(.readable), "the subscriber gets a first event\n\(worker.logTail())")
        _ = try stalled.receive(dontWait: true)

        func rss() throws -> Int { try #require(SecurityProc.residentKiB(pid: worker.pid)) }
        try Self.flood(client.dealer, worker: worker, count: 5_000)  // warm-up: threads, caches, first allocations
        let before = try rss()
        try Self.flood(client.dealer, worker: worker, count: 150_000)
        let after = try rss()
        print("stalled subscriber, --events-hwm default: VmRSS KiB before \(before), after 150,000 statuses \(after) (+\(after - before))")
        #expect(after - before < 24 << 10, "resident memory grew by \(after - before) KiB")
        #expect(worker.isRunning)
        try client.sendControl(WorkerClient.command("ping", id: "after-stall"))
        #expect(try client.nextReply(matching: "after-stall").ok == true)
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    @Test("--events-hwm outside 1...1000000 is refused at startup", arguments: ["0", "-1", "1000001"])
    func eventsHighWaterMarkValidated(value: String) async throws {
        try await WorkerTestThread.run("sec-events-hwm-invalid") {
            let worker = try WorkerProcess.launch(.security(arguments: ["--events-hwm=\(value)"]))
            let status = worker.waitForExit(timeout: .seconds(15))
            if status == nil { worker.stop() }
            #expect(status != nil && status != 0, "\(worker.logTail())")
            #expect(worker.log.contains("--events-hwm: must be between 1 and 1000000"), "\(worker.logTail())")
        }
    }

    @Test("--max-frame-bytes bounds subscriptions: a 16 MiB subscription frame is dropped unbuffered and others are still served")
    func hugeSubscription() async throws {
        try await WorkerTestThread.run("sec-huge-subscription") { try hugeSubscriptionBody() }
    }

    private func hugeSubscriptionBody() throws {
        var options = SecurityLimitTests.options(["--log-level", "info"])
        options.maxFrameBytes = 65_536
        let worker = try WorkerProcess.start(options)
        let client = try WorkerClient(worker)
        try client.sync()
        let before = try #require(SecurityProc.residentKiB(pid: worker.pid))

        // libzmq's own SUB (and XSUB) would put the prefix in its trie too, one node per byte, on
        // the test's side: the subscription goes out by hand, over ZMTP 3.0 with the NULL mechanism.
        let intruder = try Self.rawConnection(to: worker.eventsAddress)
        defer { close(intruder) }
        var greeting = [UInt8](repeating: 0, count: 64)
        greeting[0] = 0xFF
        greeting[9] = 0x7F
        greeting[10] = 3  // ZMTP 3.0: subscriptions are messages starting with 1
        for (i, byte) in "NULL".utf8.enumerated() { greeting[12 + i] = byte }
        let ready: [UInt8] = Array("\u{5}READY".utf8) + [11] + Array("Socket-Type".utf8) + [0, 0, 0, 3] + Array("SUB".utf8)
        let size = 1 + (16 << 20)
        var frame: [UInt8] = [0x02] + (0..<8).reversed().map { UInt8(truncatingIfNeeded: size >> ($0 * 8)) } + [1]
        frame += [UInt8](repeating: 0x61, count: size - 1)
        let sent = Self.sendAll(intruder, greeting + [0x04, UInt8(ready.count)] + ready + frame)
        print("16 MiB subscription: \(sent) of \(64 + 2 + ready.count + frame.count) bytes accepted by the worker's side")
        // The worker has read the frame, or dropped the connection; it keeps answering others.
        for n in 0..<10 {
            let ping = try client.execute(WorkerClient.command("ping", id: "beside-\(n)"), via: .control)
            #expect(ping.result.ok == true)
            try client.collect(for: .milliseconds(100))
        }
        let after = try #require(SecurityProc.residentKiB(pid: worker.pid))
        print("16 MiB subscription, --max-frame-bytes 65536: VmRSS KiB before \(before), after \(after) (+\(after - before))")
        #expect(after - before < 8 << 10, "resident memory grew by \(after - before) KiB: the subscription was buffered")
        #expect(worker.isRunning)
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    // MARK: descriptors

    @Test("started under a soft limit of 256 descriptors, the worker raises it to the hard limit and logs both")
    func openFileLimit() async throws {
        try await WorkerTestThread.run("sec-nofile") { try openFileLimitBody() }
    }

    private func openFileLimitBody() throws {
        var options = SecurityLimitTests.options([])
        options.openFileSoftLimit = 256
        let worker = try WorkerProcess.start(options)
        let limits = try String(contentsOfFile: "/proc/\(worker.pid)/limits", encoding: .utf8)
        let line = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max open files") }, "\(limits)")
        let figures = line.dropFirst("Max open files".count).split(separator: " ", omittingEmptySubsequences: true)
        let (soft, hard) = (String(figures[0]), String(figures[1]))
        #expect(soft == hard, "the soft limit is the hard one: \(line)")
        #expect(soft != "256", "\(line)")
        let logged = SecurityLog.records(worker.log).first { $0["msg"] as? String == "open file limit" }
        #expect(logged?["limits.nofile_soft_before"] as? String == "256", "\(String(describing: logged))")
        #expect(logged?["limits.nofile_soft"] as? String == soft, "\(String(describing: logged))")
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    @Test("a TCP peer that connects and never starts its handshake is disconnected within 10 s, not libzmq's 30 s")
    func silentPeer() async throws {
        try await WorkerTestThread.run("sec-handshake") { try silentPeerBody() }
    }

    private func silentPeerBody() throws {
        let worker = try WorkerProcess.start(SecurityLimitTests.options([]))
        let fd = try Self.rawConnection(to: worker.controlAddress)
        defer { close(fd) }
        let started = ContinuousClock.now
        // The worker greets first; the test reads it and answers nothing, then waits for EOF.
        var buffer = [UInt8](repeating: 0, count: 256)
        var closed = false
        while ContinuousClock.now - started < .seconds(15) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard Glibc.poll(&pfd, 1, 500) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 {
                closed = true
                break
            }
        }
        let elapsed = ContinuousClock.now - started
        #expect(closed, "the silent peer is disconnected within 15 s")
        #expect(elapsed < .seconds(12), "disconnected after \(elapsed)")
        #expect(try WorkerClient(worker).execute(WorkerClient.command("ping", id: "after-silent"), via: .control).result.ok == true)
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    // MARK: log volume

    @Test("40 clients with an unlisted key: one `client refused` line, then the count in `clients refused`")
    func refusedClientsRateLimited() async throws {
        try await WorkerTestThread.run("sec-refusal-log") { try refusedClientsRateLimitedBody() }
    }

    private func refusedClientsRateLimitedBody() throws {
        let keys = try SecurityKeys.make()
        defer { keys.remove() }
        let worker = try WorkerProcess.start(.security(arguments: keys.workerArguments))
        let context = try Context()
        var strangers: [Socket] = []
        defer { for socket in strangers { socket.close() } }
        let clients = 40
        for _ in 0..<clients {
            let socket = try context.makeSocket(.dealer)
            try socket.setLinger(milliseconds: 0)
            let curve = keys.strangerClient
            try socket.setCurveClient(serverPublicKey: curve.serverPublicKey, publicKey: curve.pair.publicKey, secretKey: curve.pair.secretKey)
            try socket.connect(worker.controlAddress)
            strangers.append(socket)
        }
        #expect(worker.waitForLog { $0.contains("client refused: unknown CURVE key") }, "\(worker.logTail())")
        // A bounded while for the other handshakes to reach the handler, which logs nothing about them until the summary.
        Thread.sleep(forTimeInterval: 2)
        #expect(worker.stop() == 0, "\(worker.logTail())")

        let records = SecurityLog.records(worker.log)
        let single = records.filter { ($0["msg"] as? String)?.hasPrefix("client refused") == true }
        let summaries = records.filter { $0["msg"] as? String == "clients refused" }
        let counted = summaries.compactMap { ($0["curve.refused_count"] as? String).flatMap { Int($0) } }.reduce(0, +)
        print("\(clients) refused clients: \(single.count) single lines, \(summaries.count) summaries counting \(counted)")
        #expect(single.count == 1, "one line for the one (address, key): \(single.count)")
        #expect((1...2).contains(summaries.count), "a summary at most every 10 s and at stop: \(summaries.count)")
        #expect(single.count + counted >= clients, "every refusal counted: \(single.count) + \(counted)")
        #expect(summaries.last?["curve.refused_total"] as? String == "\(single.count + counted)", "\(String(describing: summaries.last))")
    }

    @Test("a client that sends commands and never reads: the replies dropped are counted in the log")
    func droppedReplies() async throws {
        try await WorkerTestThread.run("sec-dropped-replies") { try droppedRepliesBody() }
    }

    private func droppedRepliesBody() throws {
        let worker = try WorkerProcess.start(SecurityLimitTests.options(["--log-level", "info"]))
        let context = try Context()
        // It keeps at most one reply and a small kernel buffer on its side, so the worker's queue
        // for it fills up and further replies are dropped.
        let deaf = try context.makeSocket(.dealer)
        defer { deaf.close() }
        try deaf.setLinger(milliseconds: 0)
        try deaf.setReceiveHighWaterMark(1)
        try deaf.setReceiveBufferSize(4096)
        try deaf.connect(worker.controlAddress)
        let sent = 30_000
        for n in 0..<sent {
            _ = try deaf.send([Data(), Data(#"{"v":1,"id":"deaf-\#(n)","op":"ping"}"#.utf8)])
        }
        let logged = worker.waitForLog(timeout: .seconds(20)) { $0.contains("control replies dropped") }
        #expect(logged, "\(worker.logTail())")
        #expect(worker.isRunning)
        // Others are served, once the worker has worked through what the deaf client sent
        // (several seconds for 30,000 commands: its replies fail one by one).
        let client = try WorkerClient(worker)
        try client.sendControl(WorkerClient.command("ping", id: "beside-deaf"))
        let reply = try? client.nextReply(matching: "beside-deaf", timeout: .seconds(40))
        #expect(reply?.ok == true, "others are still served\n\(worker.logTail())")
        #expect(worker.stop() == 0, "\(worker.logTail())")
        let lines = SecurityLog.records(worker.log).filter { $0["msg"] as? String == "control replies dropped" }
        let counts = lines.compactMap { ($0["control.dropped_replies"] as? String).flatMap { Int($0) } }
        print("\(sent) commands from a client that does not read: \(lines.count) lines, dropped \(counts)")
        #expect(!counts.isEmpty && counts.allSatisfy { $0 > 0 }, "\(lines)")
        #expect(lines.count <= 4, "the first drop at once, the rest at most every 10 s and at stop: \(lines.count)")
        #expect(lines.last?["control.dropped_replies_total"] as? String == "\(counts.reduce(0, +))", "\(String(describing: lines.last))")
    }

    // MARK: helpers

    /// A plain TCP connection to a `tcp://host:port` address.
    static func rawConnection(to endpoint: String) throws -> Int32 {
        let port = try #require(endpoint.split(separator: ":").last.flatMap { UInt16($0) })
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw WorkerHarnessError(description: "socket(): errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        // A worker that neither reads nor closes fails the test instead of hanging it.
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connected == 0 else {
            close(fd)
            throw WorkerHarnessError(description: "connect(\(endpoint)): errno \(errno)")
        }
        return fd
    }

    /// Writes `bytes` until done or the peer closes; how many went out.
    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Int {
        var offset = 0
        bytes.withUnsafeBytes { buffer in
            while offset < buffer.count {
                let n = send(fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
        return offset
    }

    /// Sends `count` statuses on `dealer` with at most 256 unanswered, and reads every answer.
    static func flood(_ dealer: Socket, worker: WorkerProcess, count: Int, prefix: String = "flood") throws {
        let machines = ["web1", "web2", "db1", "cache1"]
        var sent = 0
        var answered = 0
        let until = ContinuousClock.now + .seconds(300)
        while answered < count {
            while sent < count && sent - answered < 256 {
                sent += 1
                try dealer.send([Data(), Data(#"{"v":1,"id":"\#(prefix)-\#(sent)","op":"status","machine":"\#(machines[sent % 4])"}"#.utf8)])
            }
            if try poll([.socket(dealer)], timeoutMs: 1000)[0].contains(.readable) {
                while try dealer.receive(dontWait: true) != nil { answered += 1 }
            }
            guard ContinuousClock.now < until, worker.isRunning else {
                throw WorkerHarnessError(description: "the flood stalled at \(answered) answers\n\(worker.logTail())")
            }
        }
    }
}
