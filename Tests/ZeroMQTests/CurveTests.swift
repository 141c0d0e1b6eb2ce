import Foundation
import Testing
import ZeroMQ

@Suite("CURVE")
struct CurveTests {
    @Test("key pairs are 40-character Z85 and the public key derives from the secret")
    func keyPair() throws {
        try #require(ZeroMQ.has("curve"))
        let pair = try CurveKeyPair.generate()
        #expect(pair.publicKey.count == 40)
        #expect(pair.secretKey.count == 40)
        let z85 = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")
        #expect(pair.publicKey.allSatisfy(z85.contains))
        #expect(pair.secretKey.allSatisfy(z85.contains))
        #expect(try CurveKeyPair.publicKey(forSecretKey: pair.secretKey) == pair.publicKey)

        let other = try CurveKeyPair.generate()
        #expect(other != pair)
        #expect(try CurveKeyPair.publicKey(forSecretKey: other.secretKey) != pair.publicKey)
    }

    @Test("a malformed secret key is EINVAL", arguments: ["", "short", String(repeating: "a", count: 41), String(repeating: "~", count: 40)])
    func badSecretKey(key: String) {
        let error = #expect(throws: ZMQError.self) {
            try CurveKeyPair.publicKey(forSecretKey: key)
        }
        #expect(error?.errno == EINVAL)
    }

    @Test("a malformed key is refused by the socket")
    func badSocketKey() throws {
        let context = try Context()
        let socket = try context.testSocket(.router)
        let error = #expect(throws: ZMQError.self) {
            try socket.setCurveServer(secretKey: "not a key")
        }
        #expect(error?.errno == EINVAL)
        #expect(error?.operation == "zmq_setsockopt(ZMQ_CURVE_SECRETKEY)")
    }

    /// A CURVE ROUTER server bound on TCP loopback, and its address.
    static func server(_ context: Context, keys: CurveKeyPair) throws -> (Socket, String) {
        let server = try context.testSocket(.router)
        try server.setCurveServer(secretKey: keys.secretKey)
        try server.bind("tcp://127.0.0.1:*")
        return (server, try server.lastEndpoint)
    }

    @Test("client and server exchange messages over TCP")
    func exchange() throws {
        try #require(ZeroMQ.has("curve"))
        let context = try Context()
        let serverKeys = try CurveKeyPair.generate()
        let clientKeys = try CurveKeyPair.generate()
        let (server, address) = try Self.server(context, keys: serverKeys)

        let client = try context.testSocket(.dealer)
        try client.setIdentity(Data("curve-client".utf8))
        try client.setCurveClient(
            serverPublicKey: serverKeys.publicKey, publicKey: clientKeys.publicKey,
            secretKey: clientKeys.secretKey)
        try client.connect(address)

        try client.send(frames("", "secret hello"))
        #expect(strings(try server.receive()) == ["curve-client", "", "secret hello"])
        try server.send(frames("curve-client", "", "secret reply"))
        #expect(strings(try client.receive()) == ["", "secret reply"])
    }

    @Test("a client with the wrong server key gets nowhere")
    func wrongServerKey() throws {
        try #require(ZeroMQ.has("curve"))
        let context = try Context()
        let serverKeys = try CurveKeyPair.generate()
        let impostorKeys = try CurveKeyPair.generate()
        let clientKeys = try CurveKeyPair.generate()
        let (server, address) = try Self.server(context, keys: serverKeys)

        let wrong = try context.testSocket(.dealer)
        try wrong.setCurveClient(
            serverPublicKey: impostorKeys.publicKey, publicKey: clientKeys.publicKey,
            secretKey: clientKeys.secretKey)
        try wrong.connect(address)
        try wrong.send(frames("should not arrive"))

        // A correctly keyed client, connected afterwards, gets through: the server is working.
        let right = try context.testSocket(.dealer)
        try right.setIdentity(Data("right".utf8))
        try right.setCurveClient(
            serverPublicKey: serverKeys.publicKey, publicKey: clientKeys.publicKey,
            secretKey: clientKeys.secretKey)
        try right.connect(address)
        try right.send(frames("arrives"))
        #expect(strings(try server.receive()) == ["right", "arrives"])

        // The wrongly keyed client's message never arrives (bounded wait), nor does a reply.
        try server.setReceiveTimeout(milliseconds: 500)
        #expect(try server.receive() == nil)
        try wrong.setReceiveTimeout(milliseconds: 100)
        #expect(try wrong.receive() == nil)
    }

    @Test("a plain client cannot talk to a CURVE server")
    func plainClient() throws {
        let context = try Context()
        let (server, address) = try Self.server(context, keys: try CurveKeyPair.generate())
        let plain = try context.testSocket(.dealer)
        try plain.connect(address)
        try plain.send(frames("plain text"))
        try server.setReceiveTimeout(milliseconds: 300)
        #expect(try server.receive() == nil)
    }
}
