import Foundation
import Testing
import ZeroMQ

@Suite("ZMQ_MAXMSGSIZE")
struct MaxMessageSizeTests {
    @Test("over TCP a peer sending a frame above the limit is dropped; a fresh peer still gets through")
    func oversizedPeerIsDropped() throws {
        let context = try Context()
        let receiver = try context.testSocket(.pull)
        try receiver.setMaxMessageSize(1024)
        let address = try Transport.tcp.bind(receiver)

        // Peer A: a small message first (proves the connection is up), then one above the limit
        // on the same connection.
        let peerA = try context.testSocket(.push)
        try peerA.connect(address)
        try peerA.send(frames("a small"))
        try peerA.send([patternData(count: 4096)])
        #expect(strings(try receiver.receive()) == ["a small"])

        // Peer B, connected afterwards, at exactly the limit.
        let peerB = try context.testSocket(.push)
        try peerB.connect(address)
        let atLimit = patternData(count: 1024, seed: 7)
        try peerB.send([Data("b".utf8), atLimit])
        let fromB = try #require(try receiver.receive())
        #expect(fromB == [Data("b".utf8), atLimit])

        // The oversized frame never arrives (bounded wait).
        try receiver.setReceiveTimeout(milliseconds: 300)
        #expect(try receiver.receive() == nil)
    }

    @Test("inproc:// does not enforce the limit (no wire decoder)")
    func inprocIsNotLimited() throws {
        let context = try Context()
        let receiver = try context.testSocket(.pull)
        try receiver.setMaxMessageSize(1024)
        let address = try Transport.inproc.bind(receiver)
        let peer = try context.testSocket(.push)
        try peer.connect(address)
        let big = patternData(count: 4096)
        try peer.send([big])
        #expect(try receiver.receive() == [big])
    }
}
