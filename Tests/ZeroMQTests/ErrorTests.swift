import Foundation
import Testing
import ZeroMQ

@Suite("ZMQError")
struct ErrorTests {
    @Test("a malformed bind address names zmq_bind, errno and text")
    func badBindAddress() throws {
        let context = try Context()
        let socket = try context.testSocket(.router)
        let error = #expect(throws: ZMQError.self) {
            try socket.bind("tcp://127.0.0.1:notaport")
        }
        let unwrapped = try #require(error)
        #expect(unwrapped.operation == "zmq_bind")
        #expect(unwrapped.errno == EINVAL)
        #expect(unwrapped.message == String(cString: strerror(EINVAL)))
        #expect(unwrapped.description == "zmq_bind failed: Invalid argument (errno \(EINVAL))")
        #expect(!unwrapped.isAgain)
    }

    @Test("an unknown transport is EPROTONOSUPPORT")
    func unknownTransport() throws {
        let context = try Context()
        let socket = try context.testSocket(.pub)
        let error = #expect(throws: ZMQError.self) {
            try socket.bind("bogus://nowhere")
        }
        #expect(error?.errno == EPROTONOSUPPORT)
        #expect(error?.operation == "zmq_bind")
    }

    @Test("binding a port in use is EADDRINUSE")
    func addressInUse() throws {
        let context = try Context()
        let first = try context.testSocket(.pub)
        try first.bind("tcp://127.0.0.1:*")
        let address = try first.lastEndpoint
        let second = try context.testSocket(.pub)
        let error = #expect(throws: ZMQError.self) {
            try second.bind(address)
        }
        #expect(error?.errno == EADDRINUSE)
        #expect(error?.description == "zmq_bind failed: Address already in use (errno \(EADDRINUSE))")
    }

    @Test("a closed socket reports ENOTSOCK and close is idempotent")
    func closedSocket() throws {
        let context = try Context()
        let socket = try context.testSocket(.dealer)
        #expect(!socket.isClosed)
        socket.close()
        socket.close()
        #expect(socket.isClosed)
        let error = #expect(throws: ZMQError.self) {
            try socket.send(frames("x"))
        }
        #expect(error?.errno == ENOTSOCK)
        #expect(throws: ZMQError.self) { try socket.receive(dontWait: true) }
        #expect(throws: ZMQError.self) { try socket.setLinger(milliseconds: 0) }
    }

    @Test("an option error names the option")
    func optionError() throws {
        let context = try Context()
        let socket = try context.testSocket(.dealer)
        // A routing id may not be longer than 255 bytes.
        let error = #expect(throws: ZMQError.self) {
            try socket.setIdentity(Data(count: 256))
        }
        #expect(error?.operation == "zmq_setsockopt(ZMQ_ROUTING_ID)")
        #expect(error?.errno == EINVAL)
    }

    @Test("sending nothing is EINVAL")
    func emptyMessage() throws {
        let context = try Context()
        let socket = try context.testSocket(.push)
        let error = #expect(throws: ZMQError.self) { try socket.send([Data]()) }
        #expect(error?.errno == EINVAL)
    }
}
