import CoreMetrics
import ECPProtocol
import FoundationEssentials
import Glibc
import Logging
import Synchronization
import ZeroMQ
import Threading

/// The worker's three sockets and the one thread that owns them.
///
/// That thread blocks in `zmq_poll` on the commands (SUB) and control (ROUTER) sockets and on a
/// wake-up signal; other threads hand it outgoing messages through a queue and raise the signal.
/// At rest it uses no CPU. It adds the envelope to each message as it sends it, so `seq` follows
/// the order in which messages leave.
public final class SocketTransport: MessageSink, @unchecked Sendable {
    // Safety of @unchecked Sendable: what other threads touch is in `shared`; the I/O thread's
    // own (`local`, `sending`, `scratch`, the stamper) by it alone; `handler` and `badFrames` are
    // set before it starts and cleared after it has ended; `ioThread` is set before it hands over
    // `opened`.
    /// Endpoints; nil switches a socket off.
    public struct Endpoints: Sendable {
        public var commands: Endpoint?
        public var control: Endpoint?
        public var events: Endpoint?

        public init(commands: Endpoint?, control: Endpoint?, events: Endpoint?) {
            self.commands = commands
            self.control = control
            self.events = events
        }
    }

    /// Socket options.
    public struct Options: Sendable {
        public var maxFrameBytes: Int64 = 4 << 20
        /// Messages queued per subscriber on the events socket; past it PUB drops that
        /// subscriber's messages, so one that never reads costs at most this much memory.
        public var eventsHighWaterMark: Int32 = Options.defaultEventsHighWaterMark
        /// libzmq's own default: past it a subscriber that does not read loses messages.
        public static let defaultEventsHighWaterMark: Int32 = 1000
        public var commandsHighWaterMark: Int32 = 100_000
        public var linger: Int32 = 2000
        /// How long a peer may take over its handshake (CURVE and ZAP included) before libzmq
        /// closes the connection; libzmq's own default is 30 s. A peer that connects and says
        /// nothing holds a descriptor until then.
        public var handshakeIntervalMs: Int32 = 10_000
        /// The worker's CURVE secret key: when set, every socket is a CURVE server whose clients
        /// the ZAP handler vets.
        public var curveSecretKey: String?
        /// What `replay` can give back: the newest published messages, within both bounds.
        public var replayMessages = Options.defaultReplayMessages
        public var replayBytes = Options.defaultReplayBytes
        public static let defaultReplayMessages = 10_000
        public static let defaultReplayBytes = 16 << 20
        public init() {}
    }

    private let context: Context
    private let endpoints: Endpoints
    private let options: Options
    private let workerID: String
    private let logger: Logger
    private let wake: WakeSignal
    /// What other threads share with the I/O thread.
    private struct Shared {
        var outbox: [Outgoing] = []
        var stopping = false
        var intakeOpen = true
        var boundEndpoints: [String: String] = [:]
    }

    private let shared = Mutex(Shared())
    /// Messages the I/O thread queued itself; only it touches them.
    private var local: [Outgoing] = []
    /// The I/O thread's batch being sent, swapped with `outbox` so neither reallocates.
    private var sending: [Outgoing] = []
    /// The I/O thread's buffer for the message being sent.
    private var scratch: [UInt8] = []
    private var stamper: EnvelopeStamper
    private let run: String
    /// Every published message of this run, newest kept, for `replay`.
    let ring: ReplayRing
    /// Control replies that could not be delivered, which only the I/O thread counts. A client
    /// that stops reading while it keeps sending would otherwise cost a log line per reply: the
    /// first drop is logged at once, later ones summed up at most once per interval and at stop.
    private var dropped = DroppedReplies()

    struct DroppedReplies {
        var unlogged = 0
        var total = 0
        var lastReason = ""
        var lastLine: ContinuousClock.Instant?
        static let interval: Duration = .seconds(10)

        /// Milliseconds until a pending count is due, or -1 when nothing is pending.
        func pollTimeout(now: ContinuousClock.Instant) -> Int32 {
            guard unlogged > 0, let lastLine else { return -1 }
            let left = Self.interval - (now - lastLine)
            let ms = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
            return Int32(clamping: max(1, ms))
        }
    }
    private let finished = OneShot<Void>()
    /// A counter per topic the worker publishes on, keyed by the whole topic so that counting a
    /// message is a lookup and an add; the label leaves the worker id out.
    private let published: [String: Counter]
    private let publishedOther: Counter
    private var handler: (@Sendable (Data, Origin) -> Void)?
    private var badFrames: (@Sendable (String, Origin) -> Void)?
    /// The endpoints actually bound (with real ports when bound to `*`), by socket name.
    public var boundEndpoints: [String: String] { shared.withLock { $0.boundEndpoints } }

    public init(
        context: Context, endpoints: Endpoints, options: Options = .init(), workerID: String, run: String, logger: Logger,
        metrics: any MetricsFactory = NOOPMetricsHandler.instance
    ) throws {
        var published: [String: Counter] = [:]
        let kinds: [(String, (String) -> String)] = [
            ("ack", Topic.ack), ("result", Topic.result), ("error.libvirt", Topic.libvirtError),
            ("error.request", Topic.requestError), ("restore", Topic.restore), ("machine", Topic.machine),
            ("heartbeat", Topic.heartbeat), ("worker", Topic.worker),
        ]
        for (kind, topic) in kinds {
            published[topic(workerID)] = Counter(
                label: Self.publishedMetric, dimensions: [("topic_kind", kind)], factory: metrics)
        }
        self.published = published
        self.publishedOther = Counter(label: Self.publishedMetric, dimensions: [("topic_kind", "other")], factory: metrics)
        self.context = context
        self.endpoints = endpoints
        self.options = options
        self.workerID = workerID
        self.logger = logger
        self.wake = try WakeSignal()
        self.stamper = EnvelopeStamper(worker: workerID, run: run)
        self.run = run
        self.ring = ReplayRing(maxMessages: options.replayMessages, maxBytes: options.replayBytes)
    }

    public func replay(since: UInt64, limit: Int, topics: [String]?) -> (run: String, page: ReplayPage) {
        (run, ring.page(since: since, limit: limit, topics: topics))
    }

    /// Opens the sockets on the transport's own thread and starts serving. Throws when a socket
    /// cannot be opened (an endpoint in use, a bad address).
    public func start(
        onCommand: @escaping @Sendable (Data, Origin) -> Void,
        onBadFrames: @escaping @Sendable (String, Origin) -> Void
    ) throws {
        handler = onCommand
        badFrames = onBadFrames
        let opened = OneShot<(any Error)?>()
        WorkerThread.start(name: "ecp-io", stackSize: 1 << 20) { [self] in
            let sockets: Sockets
            do {
                sockets = try openSockets()
            } catch {
                opened.set(error)
                finished.set(())
                return
            }
            ioThread = pthread_self()
            opened.set(nil)
            serve(sockets)
            finished.set(())
        }
        if let error = opened.wait() { throw error }
    }

    private struct Sockets {
        var commands: Socket?
        var control: Socket?
        var events: Socket?
    }

    private func openSockets() throws -> Sockets {
        var s = Sockets()
        var bound: [String: String] = [:]
        func harden(_ socket: Socket) throws {
            try socket.setHandshakeInterval(milliseconds: options.handshakeIntervalMs)
            guard let key = options.curveSecretKey else { return }
            try socket.setCurveServer(secretKey: key)
            try socket.setZAPDomain("ecp")
        }
        func describe(_ socket: Socket, _ endpoint: Endpoint) -> String {
            if endpoint.direction == .bind, let last = try? socket.lastEndpoint { return "@" + last }
            return endpoint.description
        }
        do {
            if let ep = endpoints.events {
                let pub = try context.makeSocket(.pub)
                try pub.setLinger(milliseconds: options.linger)
                try pub.setSendHighWaterMark(options.eventsHighWaterMark)
                // Subscriptions are frames a peer sends: without a limit, one of any size is buffered.
                try pub.setMaxMessageSize(options.maxFrameBytes)
                try harden(pub)
                try pub.attach(ep)
                bound["events"] = describe(pub, ep)
                s.events = pub
            }
            if let ep = endpoints.commands {
                let sub = try context.makeSocket(.sub)
                try sub.setLinger(milliseconds: 0)
                try sub.setMaxMessageSize(options.maxFrameBytes)
                try sub.setReceiveHighWaterMark(options.commandsHighWaterMark)
                try harden(sub)
                try sub.subscribe(Topic.command(workerID))
                try sub.subscribe(Topic.commandAll)
                try sub.attach(ep)
                bound["commands"] = describe(sub, ep)
                s.commands = sub
            }
            if let ep = endpoints.control {
                let router = try context.makeSocket(.router)
                try router.setLinger(milliseconds: options.linger)
                try router.setMaxMessageSize(options.maxFrameBytes)
                try router.setRouterMandatory(true)
                try harden(router)
                try router.attach(ep)
                bound["control"] = describe(router, ep)
                s.control = router
            }
        } catch {
            s.commands?.close()
            s.control?.close()
            s.events?.close()
            throw error
        }
        shared.withLock { $0.boundEndpoints = bound }
        return s
    }

    // MARK: sending (any thread)

    public func send(_ message: Outgoing) {
        if isIOThread {
            // The I/O thread's own messages (acks, inline results) need no lock: it sends them at
            // its next flush, ahead of what other threads queued, so an ack still precedes the
            // result of its command.
            local.append(message)
            return
        }
        let wasEmpty = shared.withLock { shared in
            defer { shared.outbox.append(message) }
            return shared.outbox.isEmpty
        }
        // The I/O thread flushes before it polls again: it need not wake itself.
        if wasEmpty && !isIOThread { wake.raise() }
    }

    private var ioThread: pthread_t?

    private var isIOThread: Bool {
        guard let io = ioThread else { return false }
        return pthread_equal(io, pthread_self()) != 0
    }

    /// Stops reading commands; replies and events still go out.
    public func closeIntake() {
        shared.withLock { $0.intakeOpen = false }
        wake.raise()
    }

    /// Sends what is queued, closes the sockets and ends the thread.
    public func stop() {
        shared.withLock { $0.stopping = true }
        wake.raise()
        finished.wait()
        // The handlers hold the engine, whose sink is this transport: let the cycle go.
        handler = nil
        badFrames = nil
    }

    // MARK: the I/O thread

    private func serve(_ sockets: Sockets) {
        let commandsTopic = Topic.command(workerID)
        let maxBatch = 512
        // Answers go out after every 64 messages queued (32 commands' acks and results), not only
        // after a whole batch: a client keeping a window of commands in flight gets results while
        // the rest of the batch is still being read, and sends the next commands sooner
        // (measured: 94k to 113k commands/s at window 64).
        let flushEvery = 64
        while true {
            let (stop, intake) = shared.withLock { ($0.stopping, $0.intakeOpen) }
            if stop { break }
            var items: [PollItem] = [.fileDescriptor(wake.fileDescriptor)]
            var order: [Int] = []  // 1 = commands, 2 = control
            if intake, let c = sockets.commands {
                items.append(.socket(c))
                order.append(1)
            }
            if intake, let r = sockets.control {
                items.append(.socket(r))
                order.append(2)
            }
            let events: [PollEvents]
            do {
                events = try poll(items, timeoutMs: Int(dropped.pollTimeout(now: .now)))
            } catch {
                logger.critical("socket poll failed", metadata: ["zmq.error": "\(error)"])
                break
            }
            if events[0].contains(.readable) { wake.drain() }
            for (i, which) in order.enumerated() where events[i + 1].contains(.readable) {
                let socket = which == 1 ? sockets.commands! : sockets.control!
                for _ in 0..<maxBatch {
                    let frames: [Data]?
                    do {
                        frames = try socket.receive(dontWait: true)
                    } catch {
                        logger.error("socket receive failed", metadata: ["zmq.error": "\(error)"])
                        break
                    }
                    guard let frames else { break }
                    if which == 1 {
                        handleCommandFrames(frames, topic: commandsTopic)
                    } else {
                        handleControlFrames(frames)
                    }
                    if local.count >= flushEvery { flush(sockets) }
                }
            }
            flush(sockets)
            logDroppedReplies(force: false)
        }
        flush(sockets)
        logDroppedReplies(force: true)
        sockets.commands?.close()
        sockets.control?.close()
        sockets.events?.close()
    }

    private func handleCommandFrames(_ frames: [Data], topic: String) {
        // The SUB prefix filter lets `cmd.host10` through for `cmd.host1`: match the topic exactly.
        guard let first = frames.first else { return }
        let isForUs = first.elementsEqual(topic.utf8) || first.elementsEqual(Topic.commandAll.utf8)
        guard isForUs else { return }
        guard frames.count == 2 else {
            badFrames?("a command on the commands socket is [topic][json]: 2 frames, got \(frames.count)", .commands)
            return
        }
        handler?(frames[1], .commands)
    }

    private func handleControlFrames(_ frames: [Data]) {
        // REQ: [identity][""][json]; DEALER: [identity][json] or [identity][""][json].
        guard let identity = frames.first else { return }
        if frames.count == 3 && frames[1].isEmpty {
            handler?(frames[2], .control(ReplyRoute(frames: [identity, Data()])))
        } else if frames.count == 2 && !frames[1].isEmpty {
            handler?(frames[1], .control(ReplyRoute(frames: [identity])))
        } else {
            let route = frames.count >= 2 && frames[1].isEmpty ? [identity, Data()] : [identity]
            let got = frames.count - 1
            badFrames?(
                "a request on the control socket is [json] or [\"\"][json] after the identity, got \(got) frame\(got == 1 ? "" : "s")",
                .control(ReplyRoute(frames: route)))
        }
    }

    private func flush(_ sockets: Sockets) {
        while true {
            if !local.isEmpty {
                swap(&local, &sending)
            } else {
                shared.withLock { swap(&$0.outbox, &sending) }
            }
            if sending.isEmpty { return }
            for message in sending {
                stamper.stamp(message.body, into: &scratch, numbered: message.published)
                if message.published {
                    // A copy of its own size: `scratch` keeps the capacity of the largest message sent.
                    ring.append(seq: stamper.seq, topic: message.topic, message: scratch.withUnsafeBufferPointer { Array($0) })
                }
                if message.published, let pub = sockets.events {
                    do {
                        try publish(message.topic, on: pub)
                        (published[message.topic] ?? publishedOther).increment()
                    } catch {
                        logger.error("event publish failed", metadata: ["zmq.error": "\(error)", "event.topic": "\(message.topic)"])
                    }
                }
                if let route = message.reply, let control = sockets.control {
                    do {
                        // EAGAIN: the client's queue is at its high-water mark, it does not read.
                        if try !control.send(route.frames + [Data(scratch)], dontWait: true) {
                            droppedReply(reason: "the client does not read its replies")
                        }
                    } catch {
                        droppedReply(reason: "the client is gone: \(error)")
                    }
                }
            }
            sending.removeAll(keepingCapacity: true)
        }
    }

    /// The name `ecp_worker_messages_published_total` (kept here: the transport does not know the engine).
    public static let publishedMetric = "ecp_worker_messages_published_total"

    private func droppedReply(reason: String) {
        dropped.unlogged += 1
        dropped.total += 1
        dropped.lastReason = reason
        logDroppedReplies(force: false)
    }

    /// Logs the count of replies dropped since the last line, when the interval since that line is
    /// over (at once for the first drop), or with `force`.
    private func logDroppedReplies(force: Bool) {
        guard dropped.unlogged > 0 else { return }
        let now = ContinuousClock.now
        if !force, let last = dropped.lastLine, now - last < DroppedReplies.interval { return }
        logger.warning(
            "control replies dropped",
            metadata: [
                "control.dropped_replies": "\(dropped.unlogged)", "control.dropped_replies_total": "\(dropped.total)",
                "control.drop_reason": "\(dropped.lastReason)",
            ])
        dropped.unlogged = 0
        dropped.lastLine = now
    }

    /// Sends `[topic][scratch]` on the events socket, straight from the reusable buffer.
    private func publish(_ topic: String, on pub: Socket) throws {
        var topic = topic
        let queued = try topic.withUTF8 { t in
            try pub.send(bytes: UnsafeRawBufferPointer(t), more: true, dontWait: true)
        }
        // EAGAIN on the first frame (no subscriber yet, or the high-water mark): dropped, as PUB does.
        guard queued else { return }
        try scratch.withUnsafeBytes { _ = try pub.send(bytes: $0) }
    }
}
