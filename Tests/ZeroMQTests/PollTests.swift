import Foundation
import Testing
import ZeroMQ

@Suite("zmq_poll")
struct PollTests {
    @Test("reports which of two sockets is readable", arguments: Transport.allCases)
    func twoSockets(transport: Transport) throws {
        let context = try Context()
        let first = try context.testSocket(.pull)
        let second = try context.testSocket(.pull)
        let firstPush = try context.testSocket(.push)
        let secondPush = try context.testSocket(.push)
        try firstPush.connect(try transport.bind(first))
        try secondPush.connect(try transport.bind(second))
        let items: [PollItem] = [.socket(first), .socket(second)]

        try secondPush.send(frames("to second"))
        #expect(try poll(items, timeoutMs: Int(safetyTimeoutMs)) == [[], .readable])
        #expect(strings(try second.receive(dontWait: true)) == ["to second"])
        #expect(try poll(items, timeoutMs: 0) == [[], []])

        try firstPush.send(frames("to first"))
        #expect(try poll(items, timeoutMs: Int(safetyTimeoutMs)) == [.readable, []])
        #expect(strings(try first.receive(dontWait: true)) == ["to first"])

        // Writable: a PUSH with a connected peer has room.
        #expect(try poll([.socket(firstPush, readable: false, writable: true)], timeoutMs: Int(safetyTimeoutMs)) == [.writable])
    }

    @Test("a timeout with nothing to do returns empty events", arguments: Transport.allCases)
    func timeout(transport: Transport) throws {
        let context = try Context()
        let first = try context.testSocket(.pull)
        let second = try context.testSocket(.sub)
        _ = try transport.bind(first)
        _ = try transport.bind(second)
        let signal = try WakeSignal()

        let clock = ContinuousClock()
        let start = clock.now
        let events = try poll([.socket(first), .socket(second), .fileDescriptor(signal.fileDescriptor)], timeoutMs: 50)
        let elapsed = clock.now - start
        #expect(events == [[], [], []])
        #expect(elapsed >= .milliseconds(45))
        #expect(elapsed < .seconds(3))
    }

    @Test("a WakeSignal raised on another thread wakes a poll")
    func wakeSignal() throws {
        let context = try Context()
        let socket = try context.testSocket(.pull)
        _ = try Transport.inproc.bind(socket)
        let signal = try WakeSignal()
        let items: [PollItem] = [.socket(socket), .fileDescriptor(signal.fileDescriptor)]

        #expect(try poll(items, timeoutMs: 0) == [[], []])
        let raiser = Thread { signal.raise() }
        raiser.start()
        #expect(try poll(items, timeoutMs: Int(safetyTimeoutMs)) == [[], .readable])

        // Several raises merge into one wake-up; drain lowers the signal.
        signal.raise()
        signal.raise()
        #expect(try poll(items, timeoutMs: 0) == [[], .readable])
        signal.drain()
        #expect(try poll(items, timeoutMs: 0) == [[], []])
        signal.drain()  // draining a lowered signal does not block
        #expect(try poll(items, timeoutMs: 0) == [[], []])
    }

    @Test("polling a closed socket is ENOTSOCK")
    func closedSocket() throws {
        let context = try Context()
        let socket = try context.testSocket(.pull)
        socket.close()
        let error = #expect(throws: ZMQError.self) {
            try poll([.socket(socket)], timeoutMs: 0)
        }
        #expect(error?.errno == ENOTSOCK)
    }
}
