import Foundation
import Testing
import ZeroMQ

@Suite("Endpoint parsing")
struct EndpointTests {
    @Test(
        "prefixes and defaults",
        arguments: [
            ("@tcp://127.0.0.1:5556", Endpoint.Direction.connect, Endpoint.Direction.bind, "tcp://127.0.0.1:5556"),
            (">tcp://127.0.0.1:5555", .bind, .connect, "tcp://127.0.0.1:5555"),
            ("tcp://127.0.0.1:5557", .bind, .bind, "tcp://127.0.0.1:5557"),
            ("tcp://127.0.0.1:5555", .connect, .connect, "tcp://127.0.0.1:5555"),
            ("@inproc://worker.outbox", .connect, .bind, "inproc://worker.outbox"),
            (">ipc:///run/ecp/control.sock", .bind, .connect, "ipc:///run/ecp/control.sock"),
            ("@tcp://*:5556", .connect, .bind, "tcp://*:5556"),
        ])
    func parses(input: String, defaultDirection: Endpoint.Direction, direction: Endpoint.Direction, address: String) throws {
        let endpoint = try Endpoint(parsing: input, defaultDirection: defaultDirection)
        #expect(endpoint.direction == direction)
        #expect(endpoint.address == address)
        #expect(endpoint == Endpoint(direction: direction, address: address))
    }

    @Test("description carries the prefix", arguments: [
        ("@tcp://127.0.0.1:5556", "@tcp://127.0.0.1:5556"),
        (">tcp://127.0.0.1:5555", ">tcp://127.0.0.1:5555"),
        ("tcp://127.0.0.1:5557", "@tcp://127.0.0.1:5557"),
    ])
    func description(input: String, expected: String) throws {
        let endpoint = try Endpoint(parsing: input, defaultDirection: .bind)
        #expect(endpoint.description == expected)
        #expect(try Endpoint(parsing: endpoint.description, defaultDirection: .connect) == endpoint)
    }

    @Test("empty address is rejected", arguments: ["", "@", ">"])
    func rejectsEmpty(input: String) {
        let error = #expect(throws: ZMQError.self) {
            try Endpoint(parsing: input, defaultDirection: .bind)
        }
        #expect(error?.errno == EINVAL)
    }

    @Test("attach binds or connects per direction", arguments: Transport.allCases)
    func attach(transport: Transport) throws {
        let context = try Context()
        let pull = try context.testSocket(.pull)
        let push = try context.testSocket(.push)
        let address: String
        switch transport {
        case .inproc:
            address = "inproc://attach-\(UUID().uuidString)"
            try pull.attach(Endpoint(parsing: "@" + address, defaultDirection: .connect))
        case .tcp:
            try pull.attach(Endpoint(parsing: "tcp://127.0.0.1:*", defaultDirection: .bind))
            address = try pull.lastEndpoint
        }
        try push.attach(Endpoint(parsing: ">" + address, defaultDirection: .bind))
        try push.send(frames("via attach"))
        #expect(strings(try pull.receive()) == ["via attach"])
    }
}
