import Foundation
import Testing
import ZeroMQ

@Suite("Context")
struct ContextTests {
    @Test("shutdown from another thread ends a blocking receive with ETERM")
    func shutdownUnblocks() throws {
        let context = try Context()
        let socket = try context.testSocket(.sub)
        try socket.bind("inproc://shutdown-\(UUID().uuidString)")
        let stopper = Thread { context.shutdown() }
        stopper.start()
        let error = #expect(throws: ZMQError.self) {
            _ = try socket.receive()
        }
        #expect(error?.isTerminated == true)
        #expect(throws: ZMQError.self) { try context.makeSocket(.pub) }
        socket.close()
    }

    @Test("I/O thread count")
    func ioThreads() throws {
        _ = try Context(ioThreads: 2)
        #expect(throws: ZMQError.self) { try Context(ioThreads: -1) }
    }

    @Test("a context outlives its sockets and terminates after the last one")
    func lifetime() throws {
        var socket: Socket? = try Context().testSocket(.pair)
        try socket?.bind("inproc://lifetime-\(UUID().uuidString)")
        #expect(socket?.type == .pair)
        socket = nil
    }
}
