import Foundation
import Testing
import ZeroMQ

@Suite("Messages")
struct MessageTests {
    /// A connected PUSH → PULL pair.
    static func pipeline(_ context: Context, _ transport: Transport) throws -> (push: Socket, pull: Socket) {
        let pull = try context.testSocket(.pull)
        let address = try transport.bind(pull)
        let push = try context.testSocket(.push)
        try push.connect(address)
        return (push, pull)
    }

    @Test("multipart frames arrive together and in order", arguments: Transport.allCases)
    func multipart(transport: Transport) throws {
        let context = try Context()
        let (push, pull) = try Self.pipeline(context, transport)

        let message = frames("one", "", "three", "four", String(repeating: "5", count: 1000))
        #expect(try push.send(message))
        // Frame by frame, with `more`.
        try push.send(Data("a".utf8), more: true)
        try push.send(Data("b".utf8), more: true)
        try push.send(Data(), more: true)
        try push.send(Data("d".utf8))
        // A single frame.
        try push.send(Data("single".utf8))

        #expect(try pull.receive() == message)
        #expect(strings(try pull.receive()) == ["a", "b", "", "d"])
        #expect(strings(try pull.receive()) == ["single"])
        #expect(try pull.receive(dontWait: true) == nil)
    }

    @Test("a 16 MiB frame and a 0-byte frame arrive byte-exact", arguments: Transport.allCases)
    func largeAndEmpty(transport: Transport) throws {
        let context = try Context()
        let (push, pull) = try Self.pipeline(context, transport)

        let big = patternData(count: 16 * 1024 * 1024)
        try push.send([big])
        try push.send([Data()])
        try push.send([Data(), big, Data("tail".utf8)])

        let first = try #require(try pull.receive())
        #expect(first.count == 1)
        #expect(first.first?.count == big.count)
        #expect(first.first == big)

        let empty = try #require(try pull.receive())
        #expect(empty == [Data()])

        let mixed = try #require(try pull.receive())
        #expect(mixed.map(\.count) == [0, big.count, 4])
        #expect(mixed == [Data(), big, Data("tail".utf8)])
    }

    @Test("frames around the zero-copy threshold", arguments: [0, 1, 29, 30, 65_535, 65_536, 65_537, 1_000_000])
    func sizes(size: Int) throws {
        let context = try Context()
        let (push, pull) = try Self.pipeline(context, .inproc)
        let frame = patternData(count: size, seed: UInt64(size) &+ 1)
        try push.send([frame, frame])
        let received = try #require(try pull.receive())
        #expect(received == [frame, frame])
        // Received data stays valid after the sockets are closed.
        pull.close()
        push.close()
        #expect(received[1] == frame)
    }

    @Test("receive timeout returns nil after the timeout", arguments: Transport.allCases)
    func receiveTimeout(transport: Transport) throws {
        let context = try Context()
        let (_, pull) = try Self.pipeline(context, transport)
        try pull.setReceiveTimeout(milliseconds: 100)

        let clock = ContinuousClock()
        let start = clock.now
        let message = try pull.receive()
        let elapsed = clock.now - start
        #expect(message == nil)
        #expect(elapsed >= .milliseconds(90))
        #expect(elapsed < .seconds(3))

        // dontWait returns at once.
        let quick = clock.now
        #expect(try pull.receive(dontWait: true) == nil)
        #expect(clock.now - quick < .milliseconds(90))
    }

    @Test("dontWait send reports a full queue with false")
    func sendWouldBlock() throws {
        let context = try Context()
        // A DEALER with no peer has nowhere to queue a message.
        let dealer = try context.testSocket(.dealer)
        #expect(try dealer.send(frames("nobody there"), dontWait: true) == false)
        #expect(try dealer.send(Data("x".utf8), dontWait: true) == false)
    }

    @Test("send timeout reports false")
    func sendTimeout() throws {
        let context = try Context()
        let dealer = try context.testSocket(.dealer)
        try dealer.setSendTimeout(milliseconds: 50)
        #expect(try dealer.send(frames("nobody there")) == false)
    }

    @Test("options read back")
    func options() throws {
        let context = try Context()
        let socket = try context.testSocket(.dealer)
        try socket.setSendHighWaterMark(10)
        try socket.setReceiveHighWaterMark(20)
        #expect(try socket.sendHighWaterMark == 10)
        #expect(try socket.receiveHighWaterMark == 20)
        #expect(socket.type == .dealer)
        #expect(try socket.identity == Data())
        #expect(try socket.fileDescriptor >= 0)
        try socket.setImmediate(true)
        try socket.setMaxMessageSize(1024)
        try socket.setZAPDomain("global")
        try socket.bind("tcp://127.0.0.1:*")
        let endpoint = try socket.lastEndpoint
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        #expect(Int(endpoint.split(separator: ":").last ?? "") ?? 0 > 0)
    }

    @Test("library facts")
    func library() {
        let version = ZeroMQ.version
        #expect(version.major == 4)
        #expect(version.minor >= 3)
        #expect(ZeroMQ.has("curve"))
        #expect(!ZeroMQ.has("no-such-capability"))
    }
}
