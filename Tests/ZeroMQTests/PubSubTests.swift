import Foundation
import Testing
import ZeroMQ

/// Publishes a probe on `topic` until `sub` receives one, so that the subscription has reached
/// the publisher (the late-joiner problem). Probes still in flight afterwards carry the payload
/// `"probe"` and are to be skipped by the caller.
func awaitSubscription(publisher: Socket, subscriber: Socket, topic: String) throws {
    try subscriber.setReceiveTimeout(milliseconds: 20)
    defer { try? subscriber.setReceiveTimeout(milliseconds: safetyTimeoutMs) }
    for _ in 0..<250 {  // 250 × 20 ms = the 5 s safety bound
        try publisher.send(frames(topic, "probe"))
        if let message = try subscriber.receive() {
            #expect(strings(message) == [topic, "probe"])
            return
        }
    }
    Issue.record("subscription to \(topic) never reached the publisher")
    throw CancellationError()
}

/// Receives messages until one whose last frame is `"end"`, skipping probes.
func receiveUntilEnd(_ socket: Socket) throws -> [[String]] {
    var received: [[String]] = []
    while true {
        let message = try #require(strings(try socket.receive()), "timed out before the end marker")
        if message.last == "probe" { continue }
        received.append(message)
        if message.last == "end" { return received }
    }
}

@Suite("PUB/SUB")
struct PubSubTests {
    @Test("topic filtering is a prefix match", arguments: Transport.allCases)
    func topicFiltering(transport: Transport) throws {
        let context = try Context()
        let publisher = try context.testSocket(.pub)
        let address = try transport.bind(publisher)
        let subscriber = try context.testSocket(.sub)
        try subscriber.subscribe("cmd.h1")
        try subscriber.connect(address)
        try awaitSubscription(publisher: publisher, subscriber: subscriber, topic: "cmd.h1")

        try publisher.send(frames("cmd.h2", "for h2"))
        try publisher.send(frames("cmd.h10", "for h10"))
        try publisher.send(frames("other", "unrelated"))
        try publisher.send(frames("cmd.h1", "for h1"))
        try publisher.send(frames("cmd.h1", "end"))

        // One publisher's messages arrive in order, so once "end" is here everything
        // published before it has either arrived or been filtered out.
        // libzmq matches byte prefixes: "cmd.h1" also delivers "cmd.h10". Acting only on the
        // exact topic is the application's job.
        #expect(
            try receiveUntilEnd(subscriber) == [
                ["cmd.h10", "for h10"],
                ["cmd.h1", "for h1"],
                ["cmd.h1", "end"],
            ])
    }

    @Test("several subscriptions and unsubscribe", arguments: Transport.allCases)
    func unsubscribe(transport: Transport) throws {
        let context = try Context()
        let publisher = try context.testSocket(.pub)
        let address = try transport.bind(publisher)
        let subscriber = try context.testSocket(.sub)
        try subscriber.subscribe("cmd.h1")
        try subscriber.subscribe(Data("cmd.all".utf8))
        try subscriber.connect(address)
        try awaitSubscription(publisher: publisher, subscriber: subscriber, topic: "cmd.h1")
        try awaitSubscription(publisher: publisher, subscriber: subscriber, topic: "cmd.all")

        try subscriber.unsubscribe("cmd.h1")
        // The unsubscription travels to the publisher asynchronously: publish rounds of
        // [cmd.h1, cmd.all] until a round arrives without the cmd.h1 message.
        var settled = false
        for round in 0..<500 where !settled {
            try publisher.send(frames("cmd.h1", "round \(round)"))
            try publisher.send(frames("cmd.all", "end"))
            let messages = try receiveUntilEnd(subscriber)
            settled = messages == [["cmd.all", "end"]]
        }
        #expect(settled, "cmd.h1 kept arriving after unsubscribe")

        try publisher.send(frames("cmd.h1", "late"))
        try publisher.send(frames("cmd.all", "after"))
        try publisher.send(frames("cmd.all", "end"))
        #expect(try receiveUntilEnd(subscriber) == [["cmd.all", "after"], ["cmd.all", "end"]])
    }
}
