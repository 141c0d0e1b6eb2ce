import ECPProtocol
import Foundation
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// A CURVE worker knows who is talking: only the keys of its clients directory get anything
/// executed or published; everyone else, with an unknown key or with no key at all, gets nothing.
/// Refusals are logged with the peer's address and key. Unsafe key material stops the worker at
/// startup.
@Suite("Security: CURVE authentication")
struct SecurityCurveTests {
    // MARK: the three sockets

    @Test("control socket: an unknown key and a plain client get nothing executed and no reply; an admitted key works; the refusal is logged")
    func controlSocket() async throws {
        try await WorkerTestThread.run("sec-curve-control") { try controlSocketBody() }
    }

    private func controlSocketBody() throws {
        let keys = try SecurityKeys.make()
        defer { keys.remove() }
        let worker = try WorkerProcess.start(.security(arguments: keys.workerArguments))
        let events = try SecurityPeer(.sub, connect: worker.eventsAddress, curve: keys.admittedClient)
        let admitted = try SecurityPeer(.dealer, connect: worker.controlAddress, curve: keys.admittedClient)

        let ping = try call(admitted, WorkerClient.command("ping", id: "admitted-ping"), worker: worker)
        #expect(ping.type == "result" && ping.ok == true, "the admitted key is served: \(ping)")

        let stranger = try SecurityPeer(.dealer, connect: worker.controlAddress, curve: keys.strangerClient)
        let plain = try SecurityPeer(.dealer, connect: worker.controlAddress)
        try stranger.send(WorkerClient.command("start", id: "intruder-key-1", machine: "web1"), worker: worker.id)
        try plain.send(WorkerClient.command("start", id: "intruder-plain-1", machine: "web1"), worker: worker.id)

        // The stranger's handshake reaches the ZAP handler, which refuses it and says so.
        let refused = worker.waitForLog { log in
            refusals(in: log).contains { $0["client.key"] as? String == keys.stranger.publicKey }
        }
        #expect(refused, "a `client refused` line names the stranger's key\n\(worker.logTail())")
        try stranger.collect(for: .milliseconds(600))
        try plain.collect(for: .milliseconds(300))
        #expect(stranger.received.isEmpty, "no reply to an unknown key: \(stranger.received)")
        #expect(plain.received.isEmpty, "no reply to a client without CURVE: \(plain.received)")

        // The barrier: the admitted client finds the machine as it was.
        let status = try call(admitted, WorkerClient.command("status", id: "admitted-status-1", machine: "web1"), worker: worker)
        #expect(status.ok == true && status.state == "shutoff", "web1 is still shut off: nothing the intruders sent ran: \(status)")
        try events.collect(for: .milliseconds(200))
        let leaked = events.received.filter { ($0.id ?? "").hasPrefix("intruder-") }
        #expect(leaked.isEmpty, "no ack, result or request_error for an intruder's command: \(leaked)")
        #expect(events.received.contains { $0.id == "admitted-status-1" && $0.type == "result" }, "the admitted subscriber sees results")

        // The same command from the admitted key does run.
        let start = try call(admitted, WorkerClient.command("start", id: "admitted-start-1", machine: "web1"), worker: worker)
        #expect(start.ok == true && start.changed == true && start.state == "running", "\(start)")

        let lines = refusals(in: worker.log).filter { $0["client.key"] as? String == keys.stranger.publicKey }
        let line = try #require(lines.first, "\(worker.logTail())")
        #expect(line["level"] as? String == "warning", "\(line)")
        #expect((line["client.address"] as? String)?.contains("127.0.0.1") == true, "the refused peer's address: \(line)")
        #expect(refusals(in: worker.log).allSatisfy { $0["client.key"] as? String != keys.admitted.publicKey }, "the admitted key is never refused")
        for secret in [keys.worker.secretKey, keys.admitted.secretKey, keys.stranger.secretKey] {
            #expect(!worker.log.contains(secret), "no secret key in the log")
        }
        #expect(worker.isRunning)
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    @Test("commands socket: publishers with an unknown key or no key get nothing executed; an admitted publisher works")
    func commandsSocket() async throws {
        try await WorkerTestThread.run("sec-curve-commands") { try commandsSocketBody() }
    }

    private func commandsSocketBody() throws {
        let keys = try SecurityKeys.make()
        defer { keys.remove() }
        let worker = try WorkerProcess.start(.security(arguments: keys.workerArguments))
        let events = try SecurityPeer(.sub, connect: worker.eventsAddress, curve: keys.admittedClient)
        let admitted = try SecurityPeer(.pub, connect: worker.commandsAddress, curve: keys.admittedClient)
        try sync(admitted, events: events, worker: worker)

        let stranger = try SecurityPeer(.pub, connect: worker.commandsAddress, curve: keys.strangerClient)
        let plain = try SecurityPeer(.pub, connect: worker.commandsAddress)
        // A PUB drops what it sends before a subscriber is connected: keep trying for a while, so
        // a connection that did get through would show.
        for attempt in 1...12 {
            try stranger.send(WorkerClient.command("start", id: "intruder-key-\(attempt)", machine: "web1"), worker: worker.id)
            try plain.send(WorkerClient.command("start", id: "intruder-plain-\(attempt)", machine: "web1"), worker: worker.id)
            try events.collect(for: .milliseconds(100))
        }
        #expect(
            refusals(in: worker.log).contains { $0["client.key"] as? String == keys.stranger.publicKey },
            "the stranger's publisher is refused and logged\n\(worker.logTail())")

        // The barrier, through the admitted publisher.
        try admitted.send(WorkerClient.command("status", id: "admitted-status-1", machine: "web1"), worker: worker.id)
        let status = try #require(try events.first { $0.type == "result" && $0.id == "admitted-status-1" }, "\(worker.logTail())")
        #expect(status.ok == true && status.state == "shutoff", "web1 is still shut off: \(status)")
        let leaked = events.received.filter { ($0.id ?? "").hasPrefix("intruder-") }
        #expect(leaked.isEmpty, "nothing published for an intruder's command: \(leaked)")

        try admitted.send(WorkerClient.command("start", id: "admitted-start-1", machine: "web1"), worker: worker.id)
        let start = try #require(try events.first { $0.type == "result" && $0.id == "admitted-start-1" })
        #expect(start.ok == true && start.state == "running", "\(start)")
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    @Test("events socket: subscribers with an unknown key or no key receive nothing while an admitted one receives heartbeats")
    func eventsSocket() async throws {
        try await WorkerTestThread.run("sec-curve-events") { try eventsSocketBody() }
    }

    private func eventsSocketBody() throws {
        let keys = try SecurityKeys.make()
        defer { keys.remove() }
        let worker = try WorkerProcess.start(.security(arguments: keys.workerArguments))
        let admitted = try SecurityPeer(.sub, connect: worker.eventsAddress, curve: keys.admittedClient)
        let stranger = try SecurityPeer(.sub, connect: worker.eventsAddress, curve: keys.strangerClient)
        let plain = try SecurityPeer(.sub, connect: worker.eventsAddress)

        // Heartbeats every 200 ms: the admitted subscriber gets several meanwhile.
        try stranger.collect(for: .milliseconds(1500))
        try plain.collect(for: .milliseconds(300))
        try admitted.collect(for: .milliseconds(100))
        let heartbeats = admitted.received.filter { $0.type == "heartbeat" && $0.topic == "heartbeat.\(worker.id)" }
        #expect(heartbeats.count >= 3, "the admitted subscriber receives heartbeats: \(admitted.received)")
        #expect(stranger.received.isEmpty, "an unknown key receives nothing: \(stranger.received)")
        #expect(plain.received.isEmpty, "a subscriber without CURVE receives nothing: \(plain.received)")
        #expect(
            refusals(in: worker.log).contains { $0["client.key"] as? String == keys.stranger.publicKey },
            "the stranger's subscriber is refused and logged\n\(worker.logTail())")
        #expect(worker.stop() == 0, "\(worker.logTail())")
    }

    // MARK: refused at startup

    @Test("a secret key file that others may read is refused at startup", arguments: [0o644, 0o640, 0o604] as [mode_t])
    func secretKeyReadableByOthers(mode: mode_t) async throws {
        let keys = try SecurityKeys.make()
        defer { keys.remove() }
        try SecurityFiles.chmod(keys.workerKeyFile, mode)
        let refusal = try await refusedAtStartup(keys.workerArguments)
        #expect(refusal.status != 0)
        #expect(refusal.log.contains("--curve-key-file"), "\(refusal.log)")
        #expect(refusal.log.contains("readable by others"), "\(refusal.log)")
        #expect(refusal.log.contains("chmod 600"), "the message says how to fix it: \(refusal.log)")
        #expect(!refusal.log.contains(keys.worker.secretKey), "the secret is not echoed")
    }

    @Test("a clients directory that others may write is refused at startup", arguments: [0o777, 0o775, 0o757] as [mode_t])
    func clientsDirectoryWritableByOthers(mode: mode_t) async throws {
        let keys = try SecurityKeys.make()
        defer { keys.remove() }
        try SecurityFiles.chmod(keys.clientsDirectory, mode)
        let refusal = try await refusedAtStartup(keys.workerArguments)
        #expect(refusal.status != 0)
        #expect(refusal.log.contains("--curve-clients"), "\(refusal.log)")
        #expect(refusal.log.contains("writable by others"), "\(refusal.log)")
    }

    @Test("a client key file that others may write is refused at startup")
    func clientKeyWritableByOthers() async throws {
        let keys = try SecurityKeys.make()
        defer { keys.remove() }
        try SecurityFiles.chmod(keys.clientsDirectory + "/admitted.pub", 0o666)
        let refusal = try await refusedAtStartup(keys.workerArguments)
        #expect(refusal.status != 0)
        #expect(refusal.log.contains("admitted.pub") && refusal.log.contains("writable by others"), "\(refusal.log)")
    }

    @Test("--curve-key-file without --curve-clients, and the reverse, are refused")
    func keyFileWithoutClients() async throws {
        let keys = try SecurityKeys.make()
        defer { keys.remove() }
        for arguments in [["--curve-key-file", keys.workerKeyFile], ["--curve-clients", keys.clientsDirectory]] {
            let refusal = try await refusedAtStartup(arguments)
            #expect(refusal.status != 0, "\(arguments)")
            #expect(refusal.log.contains("--curve-key-file and --curve-clients go together"), "\(refusal.log)")
        }
    }

    @Test("a public key file given as the worker's key file is refused at startup")
    func publicKeyAsKeyFile() async throws {
        let keys = try SecurityKeys.make()
        defer { keys.remove() }
        try SecurityFiles.write(CurveKeyFile.publicText(keys.worker), to: keys.workerKeyFile, mode: 0o600)
        let refusal = try await refusedAtStartup(keys.workerArguments)
        #expect(refusal.status != 0)
        #expect(refusal.log.contains("holds no secret-key"), "\(refusal.log)")
    }

    // MARK: helpers

    /// Launches a worker that must refuse to start: its exit status and log.
    private func refusedAtStartup(_ arguments: [String]) async throws -> (status: Int32, log: String) {
        try await WorkerTestThread.run("sec-refusal") {
            let worker = try WorkerProcess.launch(.security(arguments: arguments))
            guard let status = worker.waitForExit(timeout: .seconds(15)) else {
                worker.stop()
                Issue.record("the worker started instead of refusing \(arguments)\n\(worker.logTail())")
                return (0, worker.log)
            }
            #expect(!worker.log.contains("worker ready"), "\(worker.logTail())")
            return (status, worker.log)
        }
    }

    /// The `client refused` log records.
    private func refusals(in log: String) -> [[String: Any]] {
        log.split(separator: "\n").compactMap { line in
            guard line.contains("client refused") else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }.filter { ($0["msg"] as? String)?.hasPrefix("client refused") == true }
    }

    /// Sends a command on a DEALER and waits for its reply.
    private func call(_ peer: SecurityPeer, _ command: JSONValue, worker: WorkerProcess) throws -> WorkerMessage {
        let id = command["id"]?.stringValue
        try peer.send(command, worker: worker.id)
        return try #require(try peer.first { $0.id == id }, "no reply to \(id ?? "?")\n\(worker.logTail())")
    }

    /// Publishes pings until the subscriber sees a result of one.
    private func sync(_ publisher: SecurityPeer, events: SecurityPeer, worker: WorkerProcess) throws {
        for attempt in 1...75 {
            try publisher.send(WorkerClient.command("ping", id: "sync-\(attempt)"), worker: worker.id)
            let answer = try events.first(timeout: .milliseconds(200)) { $0.type == "result" && ($0.id ?? "").hasPrefix("sync-") }
            if answer != nil { return }
        }
        throw WorkerHarnessError(description: "no answer to ping through the admitted publisher\n\(worker.logTail())")
    }
}
