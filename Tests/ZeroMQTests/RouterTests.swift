import Foundation
import Testing
import ZeroMQ

@Suite("ROUTER envelopes")
struct RouterTests {
    @Test("ROUTER/DEALER: [identity][payload] and [identity][\"\"][payload], replies routed back", arguments: Transport.allCases)
    func routerDealer(transport: Transport) throws {
        let context = try Context()
        let router = try context.testSocket(.router)
        let address = try transport.bind(router)

        let dealerA = try context.testSocket(.dealer)
        try dealerA.setIdentity(Data("client-a".utf8))
        try dealerA.connect(address)
        let dealerB = try context.testSocket(.dealer)
        try dealerB.setIdentity(Data("client-b".utf8))
        try dealerB.connect(address)
        #expect(try dealerA.identity == Data("client-a".utf8))

        // Without a delimiter.
        try dealerA.send(frames("hello from a"))
        #expect(strings(try router.receive()) == ["client-a", "hello from a"])
        // With an empty delimiter frame, as REQ would send.
        try dealerB.send(frames("", "hello from b"))
        #expect(strings(try router.receive()) == ["client-b", "", "hello from b"])

        // Replies mirror each envelope and reach the right peer, whatever the order.
        try router.send(frames("client-b", "", "reply to b"))
        try router.send(frames("client-a", "reply to a"))
        #expect(strings(try dealerA.receive()) == ["reply to a"])
        #expect(strings(try dealerB.receive()) == ["", "reply to b"])
        // Nothing else went anywhere.
        #expect(try dealerA.receive(dontWait: true) == nil)
        #expect(try dealerB.receive(dontWait: true) == nil)
    }

    @Test("ROUTER/REQ: [identity][\"\"][payload], replies routed back", arguments: Transport.allCases)
    func routerReq(transport: Transport) throws {
        let context = try Context()
        let router = try context.testSocket(.router)
        let address = try transport.bind(router)

        let clients = try (0..<3).map { _ in try context.testSocket(.req) }
        for (index, client) in clients.enumerated() {
            try client.connect(address)
            try client.send(frames("question \(index)"))
        }

        // Collect the three requests (fair-queued, in any order) and remember each identity.
        var identities: [String: Data] = [:]
        for _ in clients {
            let message = try #require(try router.receive())
            try #require(message.count == 3)
            // libzmq generates a 5-byte identity starting with a zero byte for anonymous peers.
            #expect(message[0].count == 5)
            #expect(message[0].first == 0)
            #expect(message[1].isEmpty)
            identities[String(decoding: message[2], as: UTF8.self)] = message[0]
        }
        #expect(identities.count == 3)
        #expect(Set(identities.values).count == 3)

        // Answer in reverse order; each REQ must get its own answer.
        for index in clients.indices.reversed() {
            let identity = try #require(identities["question \(index)"])
            try router.send([identity, Data(), Data("answer \(index)".utf8)])
        }
        for (index, client) in clients.enumerated() {
            #expect(strings(try client.receive()) == ["answer \(index)"])
        }
    }

    @Test("ROUTER_MANDATORY: an unknown identity is EHOSTUNREACH", arguments: Transport.allCases)
    func routerMandatory(transport: Transport) throws {
        let context = try Context()
        let router = try context.testSocket(.router)
        try router.setRouterMandatory(true)
        let address = try transport.bind(router)
        let dealer = try context.testSocket(.dealer)
        try dealer.setIdentity(Data("known".utf8))
        try dealer.connect(address)
        try dealer.send(frames("hello"))
        #expect(strings(try router.receive()) == ["known", "hello"])

        let error = #expect(throws: ZMQError.self) {
            try router.send(frames("nobody", "lost"))
        }
        #expect(error?.errno == EHOSTUNREACH)
        #expect(error?.isHostUnreachable == true)
        #expect(error?.operation == "zmq_msg_send")

        // The socket stays usable, and a known identity is still routed.
        try router.send(frames("known", "delivered"))
        #expect(strings(try dealer.receive()) == ["delivered"])
    }

    @Test("without ROUTER_MANDATORY an unknown identity is dropped silently")
    func routerDropsSilently() throws {
        let context = try Context()
        let router = try context.testSocket(.router)
        try router.bind("inproc://silent-\(UUID().uuidString)")
        #expect(try router.send(frames("nobody", "lost")))
    }
}
