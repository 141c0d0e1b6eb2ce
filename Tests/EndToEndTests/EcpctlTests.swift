import Foundation
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ecpctl against a real worker on the libvirt test driver, and against fake peers for what a
/// real worker never sends (hostile names, CURVE).
@Suite("ecpctl")
struct EcpctlTests {
    // MARK: machine commands

    @Test("start, suspend, resume and destroy a shut-off machine")
    func lifecycle() async throws {
        try await CtlWorker.with { worker in
            let steps: [([String], String)] = [
                (["start", "web1"], "web1: started (running)"),
                (["start", "web1"], "web1: already running (no change)"),
                (["suspend", "web1"], "web1: suspended (paused)"),
                (["suspend", "web1"], "web1: already paused (no change)"),
                (["resume", "web1"], "web1: resumed (running)"),
                (["destroy", "web1"], "web1: destroyed (shutoff)"),
                (["destroy", "web1"], "web1: already shut off (no change)"),
            ]
            for (arguments, expected) in steps {
                let result = try await Ctl.run(arguments + worker.endpoints)
                #expect(result.status == 0, "\(arguments): \(result)")
                #expect(result.stdoutLines == [expected], "\(arguments): \(result)")
                #expect(result.stderr.isEmpty, "\(arguments): \(result)")
            }
        }
    }

    @Test("shutdown waits for the machine, reboot asks, status shows aligned fields")
    func shutdownRebootStatus() async throws {
        try await CtlWorker.with { worker in
            let reboot = try await Ctl.run(["reboot", "db1"] + worker.endpoints)
            #expect(reboot.status == 0, "\(reboot)")
            #expect(reboot.stdoutLines == ["db1: asked to reboot (running)"], "\(reboot)")

            let status = try await Ctl.run(["status", "db1"] + worker.endpoints)
            #expect(status.status == 0, "\(status)")
            let lines = status.stdoutLines
            #expect(lines.first == "machine:        db1", "\(status)")
            #expect(lines.contains("state:          running"), "\(status)")
            #expect(lines.contains("vcpus:          2"), "\(status)")
            #expect(lines.contains("memory_kib:     262144 (256.0 MiB)"), "\(status)")
            #expect(lines.contains("persistent:     yes"), "\(status)")
            // Every value starts in the same column.
            let valueColumns = Set(lines.map { line -> Int in
                guard let colon = line.firstIndex(of: ":"),
                    let value = line[line.index(after: colon)...].firstIndex(where: { $0 != " " })
                else { return -1 }
                return line.distance(from: line.startIndex, to: value)
            })
            #expect(valueColumns == [16], "\(status)")

            let shutdown = try await Ctl.run(["shutdown", "db1", "--wait-ms", "5000", "--force"] + worker.endpoints)
            #expect(shutdown.status == 0, "\(shutdown)")
            #expect(shutdown.stdoutLines == ["db1: shut down (shutoff)"], "\(shutdown)")

            let again = try await Ctl.run(["shutdown", "db1"] + worker.endpoints)
            #expect(again.stdoutLines == ["db1: already shut off (no change)"], "\(again)")
        }
    }

    @Test("stats: a table with rates from two samples, totals from one, the raw result with --json")
    func stats() async throws {
        try await CtlWorker.with { worker in
            let rates = try await Ctl.run(["stats", "--interval-ms", "200"] + worker.endpoints)
            #expect(rates.status == 0, "\(rates)")
            let header = try #require(rates.stdoutLines.first)
            #expect(header.hasPrefix("NAME") && header.contains("CPU %") && header.contains("DISK READ/s"), "\(rates)")
            let db = try #require(rates.stdoutLines.first { $0.hasPrefix("db1 ") }, "\(rates)")
            #expect(db.contains("running") && db.contains("256.0 MiB / 256.0 MiB"), "\(db)")
            let web = try #require(rates.stdoutLines.first { $0.hasPrefix("web1 ") }, "\(rates)")
            // A shut-off machine has no CPU share: shown as -, not 0.
            #expect(web.split(separator: " ", omittingEmptySubsequences: true)[2] == "-", "\(web)")

            let totals = try await Ctl.run(["stats", "db1", "--totals"] + worker.endpoints)
            #expect(totals.status == 0, "\(totals)")
            #expect(totals.stdoutLines.first?.contains("DISK READ ") == true, "\(totals)")
            #expect(totals.stdoutLines.count == 2, "\(totals)")

            let raw = try await Ctl.run(["stats", "--json", "db1"] + worker.endpoints)
            #expect(raw.status == 0, "\(raw)")
            #expect(raw.stdout.contains(#""cpu_time_ns""#) && raw.stdout.contains(#""collected_at""#), "\(raw)")

            let missing = try await Ctl.run(["stats", "nobody"] + worker.endpoints)
            #expect(missing.status == 1, "\(missing)")
        }
    }

    @Test("define from a file and from stdin, then undefine")
    func defineUndefine() async throws {
        try await CtlWorker.with { worker in
            let uuid = "0c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f"
            let xml = WorkerMachine.domainXML(name: "web3", uuid: uuid, memoryKiB: 131_072)
            let file = worker.directory.appendingPathComponent("web3.xml")
            try xml.write(to: file, atomically: true, encoding: .utf8)

            let define = try await Ctl.run(["define", file.path] + worker.endpoints)
            #expect(define.status == 0, "\(define)")
            #expect(define.stdoutLines == ["web3: defined (uuid \(uuid))"], "\(define)")

            let redefine = try await Ctl.run(["define", "-"] + worker.endpoints, stdin: Data(xml.utf8))
            #expect(redefine.status == 0, "\(redefine)")
            #expect(redefine.stdoutLines == ["web3: defined (uuid \(uuid))"], "\(redefine)")

            let undefine = try await Ctl.run(["undefine", "web3"] + worker.endpoints)
            #expect(undefine.status == 0, "\(undefine)")
            #expect(undefine.stdoutLines == ["web3: undefined (shutoff)"], "\(undefine)")

            let missing = try await Ctl.run(["define", worker.directory.appendingPathComponent("nope.xml").path] + worker.endpoints)
            #expect(missing.status == 64, "\(missing)")
            #expect(missing.stderr.contains("cannot read domain XML"), "\(missing)")
        }
    }

    @Test("a missing machine: exit 1, the summary first on stderr, then the details")
    func missingMachine() async throws {
        try await CtlWorker.with { worker in
            let result = try await Ctl.run(["start", "ghost"] + worker.endpoints)
            #expect(result.status == 1, "\(result)")
            #expect(result.stdout.isEmpty, "\(result)")
            let lines = result.stderrLines
            let summary = try #require(lines.first, "\(result)")
            #expect(summary.contains("VIR_ERR_NO_DOMAIN") && summary.contains("ghost"), "\(result)")
            #expect(!summary.hasPrefix(" "), "\(result)")
            #expect(lines.contains("  code_name: VIR_ERR_NO_DOMAIN (42)"), "\(result)")
            #expect(lines.contains("  category:  not_found"), "\(result)")
            #expect(lines.contains("  retryable: no"), "\(result)")
            #expect(lines.contains { $0.hasPrefix("  libvirt:   ") }, "\(result)")
            #expect(!result.stderr.contains("\u{1B}"), "no color when stderr is not a terminal")
        }
    }

    @Test("--json prints the reply as received, before or after the subcommand", arguments: [true, false])
    func jsonOutput(optionFirst: Bool) async throws {
        try await CtlWorker.with { worker in
            let id = "e2e-json-\(optionFirst)"
            let arguments = optionFirst
                ? ["--json", "--id", id] + worker.endpoints + ["status", "web1"]
                : ["status", "web1", "--json", "--id", id] + worker.endpoints
            let result = try await Ctl.run(arguments)
            #expect(result.status == 0, "\(result)")
            #expect(result.stdoutLines.count == 1, "\(result)")
            let reply = try ctlJSONObject(try #require(result.stdoutLines.first))
            #expect(reply["type"] as? String == "result")
            #expect(reply["ok"] as? Bool == true)
            #expect(reply["id"] as? String == id)
            #expect(reply["worker"] as? String == worker.workerID)
            #expect((reply["data"] as? [String: Any])?["state"] as? String == "shutoff")

            let failure = try await Ctl.run(["--json", "start", "ghost"] + worker.endpoints)
            #expect(failure.status == 1, "\(failure)")
            let failed = try ctlJSONObject(try #require(failure.stdoutLines.first))
            #expect(failed["ok"] as? Bool == false)
            #expect((failed["error"] as? [String: Any])?["code_name"] as? String == "VIR_ERR_NO_DOMAIN")
        }
    }

    @Test("list shows every machine in a NAME / STATE / UUID table, ping shows the uptime")
    func listAndPing() async throws {
        try await CtlWorker.with { worker in
            let list = try await Ctl.run(["list"] + worker.endpoints)
            #expect(list.status == 0, "\(list)")
            let rows = list.stdoutLines.map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
            #expect(rows.first == ["NAME", "STATE", "UUID"], "\(list)")
            for machine in WorkerMachine.ecpctlStandard {
                #expect(rows.contains([machine.name, machine.running ? "running" : "shutoff", machine.uuid]), "\(list)")
            }
            #expect(rows.count == WorkerMachine.ecpctlStandard.count + 1, "\(list)")

            let ping = try await Ctl.run(["ping"] + worker.endpoints)
            #expect(ping.status == 0, "\(ping)")
            #expect(ping.stdoutLines.count == 1 && ping.stdout.hasPrefix("\(worker.workerID): up "), "\(ping)")
            #expect(ping.stdout.contains("uptime_s "), "\(ping)")
        }
    }

    @Test("a request error: exit 2 with reason, field and detail")
    func requestError() async throws {
        try await CtlWorker.with { worker in
            let result = try await Ctl.run(["send", #"{"v": 1, "id": "e2e-bad-op", "op": "fly"}"#] + worker.endpoints)
            #expect(result.status == 2, "\(result)")
            #expect(result.stderrLines.contains("  reason: unknown_op"), "\(result)")
            #expect(result.stderrLines.contains("  field:  op"), "\(result)")
            #expect(result.stderrLines.contains("  id:     e2e-bad-op"), "\(result)")
            #expect(result.stderrLines.contains { $0.hasPrefix("  detail: unknown op") }, "\(result)")

            let malformed = try await Ctl.run(["send", "{not json"] + worker.endpoints)
            #expect(malformed.status == 2, "\(malformed)")
            #expect(malformed.stderr.contains("malformed_json"), "\(malformed)")

            let usage = try await Ctl.run(["shutdown", "web1", "--force"] + worker.endpoints)
            #expect(usage.status == 64, "\(usage)")
        }
    }

    @Test("restore and report: their tables, or the worker's request error while they are not available")
    func restoreAndReport() async throws {
        try await CtlWorker.with { worker in
            let restore = try await Ctl.run(["restore"] + worker.endpoints)
            if restore.status == 2 {
                #expect(restore.stderrLines.contains("  reason: unknown_op"), "\(restore)")
            } else {
                #expect(restore.status == 0, "\(restore)")
                #expect(restore.stdout.hasPrefix("restore "), "\(restore)")
                #expect(restore.stdoutLines.contains { $0.hasPrefix("  started:") }, "\(restore)")
            }

            let start = try await Ctl.run(["start", "web2"] + worker.endpoints)
            #expect(start.status == 0, "\(start)")
            let report = try await Ctl.run(["report"] + worker.endpoints)
            if report.status == 2 {
                #expect(report.stderrLines.contains("  reason: unknown_op"), "\(report)")
            } else {
                #expect(report.status == 0, "\(report)")
                let lines = report.stdoutLines
                #expect(lines.contains { $0.hasPrefix("MACHINE") && $0.contains("ACTION") && $0.contains("ERROR") }, "\(report)")
                #expect(lines.contains { $0.hasPrefix("NAME") && $0.contains("OBSERVED") && $0.contains("UPDATED") }, "\(report)")
                #expect(lines.contains { $0.hasPrefix("web2 ") && $0.contains("running") }, "\(report)")
            }
        }
    }

    // MARK: tail

    @Test("tail --count --json gets the events of a command sent meanwhile")
    func tailCommandEvents() async throws {
        try await CtlWorker.with { worker in
            let id = "e2e-tail-start"
            let tail = try Ctl.start(
                ["tail", "--json", "--count", "2", "--command-id", id, "--duration-ms", "30000", "--verbose"]
                    + worker.endpoints)
            // PUB/SUB drops what is published before the subscription arrives: the tail is ready
            // once it has received anything (a heartbeat, or the result of one of these pings).
            var subscribed = false
            for _ in 0..<15 where !subscribed {
                subscribed = await tail.waitForOutput(containing: "receiving from", inStderr: true, within: .seconds(1))
                if !subscribed { _ = try await Ctl.run(["ping"] + worker.endpoints) }
            }
            #expect(subscribed, "tail never received anything")

            let start = try await Ctl.run(["start", "web1", "--id", id] + worker.endpoints)
            #expect(start.status == 0, "\(start)")

            let result = await tail.finish(within: .seconds(30))
            #expect(result.status == 0 && !result.killed, "\(result)")
            let messages = try result.stdoutLines.map(ctlJSONObject)
            #expect(messages.count == 2, "\(result)")
            #expect(messages.map { $0["type"] as? String } == ["accepted", "result"], "\(result)")
            #expect(messages.allSatisfy { $0["id"] as? String == id }, "\(result)")
            #expect(messages.last?["ok"] as? Bool == true, "\(result)")
            #expect(messages.last?["state"] as? String == "running", "\(result)")
        }
    }

    @Test("tail prints time, topic, type, key and facts; --count ends it; SIGINT exits 0")
    func tailTextAndSignals() async throws {
        try await CtlWorker.with { worker in
            let heartbeats = try await Ctl.run(
                ["tail", "--count", "3", "--duration-ms", "20000", "heartbeat.\(worker.workerID)"] + worker.endpoints)
            #expect(heartbeats.status == 0, "\(heartbeats)")
            #expect(heartbeats.stdoutLines.count == 3, "\(heartbeats)")
            let pattern = #/^\d\d:\d\d:\d\d\.\d\d\d heartbeat\.\S+ heartbeat - uptime_s=\S+ libvirt=connected in_flight=\d+ processed=\d+ failed=\d+ state_table=saved$/#
            for line in heartbeats.stdoutLines {
                #expect(line.wholeMatch(of: pattern) != nil, "\(line)")
            }

            let follow = try Ctl.start(["tail"] + worker.endpoints)
            #expect(await follow.waitForOutput(containing: " heartbeat "), "tail printed nothing")
            follow.signal(SIGINT)
            let interrupted = await follow.finish(within: .seconds(10))
            #expect(interrupted.status == 0 && !interrupted.signalled && !interrupted.killed, "\(interrupted)")
            #expect(!interrupted.stdout.contains("\u{1B}"), "no color when stdout is not a terminal")

            let short = try await Ctl.run(["tail", "--count", "5", "--duration-ms", "300", "nothing.matches."] + worker.endpoints)
            #expect(short.status == 3, "\(short)")
            #expect(short.stderr.contains("only 0 of 5 messages"), "\(short)")
        }
    }

    @Test("tail escapes control characters from the wire")
    func tailEscapes() async throws {
        let body = #"{"v":1,"type":"machine.event","worker":"w","seq":1,"ts":"2026-11-25T20:31:07.123Z","machine":"evil\u001b[31mname\nx","uuid":"u","event":"started","detail":"booted\u0007","state":"running"}"#
        let publisher = try await CtlFakePeer.publisher(topic: "machine.w", body: Data(body.utf8))
        let text = try await Ctl.run(["tail", "--count", "1", "--duration-ms", "20000", "--events", publisher.endpoint])
        let json = try await Ctl.run(["tail", "--json", "--count", "1", "--duration-ms", "20000", "--events", publisher.endpoint])
        await publisher.stop()

        #expect(text.status == 0, "\(text)")
        #expect(text.stdoutLines.count == 1, "\(text)")
        #expect(!text.stdout.contains("\u{1B}") && !text.stdout.contains("\u{07}"), "\(text)")
        #expect(text.stdout.contains(#"machine.w machine.event evil\u001b[31mname\nx started booted\u0007 state=running"#), "\(text)")

        #expect(json.status == 0, "\(json)")
        #expect(json.stdoutLines == [body], "\(json)")
    }

    // MARK: failures of the peer

    @Test("no worker listening: exit 3 within the timeout")
    func noWorker() async throws {
        let port = try CtlPorts.free()
        let clock = ContinuousClock()
        let started = clock.now
        let result = try await Ctl.run(["ping", "--control", ">tcp://127.0.0.1:\(port)", "--timeout-ms", "400"])
        let elapsed = clock.now - started
        #expect(result.status == 3, "\(result)")
        #expect(result.stderr.contains("no reply from >tcp://127.0.0.1:\(port) within 400 ms"), "\(result)")
        // The bound only shows that ecpctl gives up instead of hanging (a socket lingering on
        // its unsent request would block the exit until the 60 s kill); process start-up while
        // the rest of the suite runs on two busy cores has taken over 20 s.
        #expect(!result.killed && elapsed < .seconds(50), "took \(elapsed)")
    }

    @Test("replies with control characters are printed escaped")
    func hostileReplies() async throws {
        let router = try await CtlFakePeer.router { request in
            let id = (try? JSONSerialization.jsonObject(with: request) as? [String: Any])?["id"] as? String ?? "?"
            let op = (try? JSONSerialization.jsonObject(with: request) as? [String: Any])?["op"] as? String ?? "?"
            if op == "list" {
                return Data(#"{"v":1,"type":"result","worker":"w","id":"\#(id)","op":"list","ok":true,"changed":false,"data":{"machines":[{"name":"a\u001b]0;pwned\u0007b","state":"running","uuid":"u1"},{"name":"c\u009bd\u202ee","state":"shutoff","uuid":"u2"}]},"duration_ms":0.1}"#.utf8)
            }
            return Data(#"{"v":1,"type":"result","worker":"w","id":"\#(id)","op":"start","machine":"we\u001b[2Jb1","ok":false,"error":{"type":"E2LibvirtError","code":42,"code_name":"VIR_ERR_NO_DOMAIN","domain":12,"domain_name":"VIR_FROM_TEST","level":"error","message":"Domain\r\nnot found\u001b[0m","str1":null,"str2":null,"str3":null,"int1":-1,"int2":-1,"category":"not_found","retryable":false,"summary":"test driver: cannot start machine 'we\u001b[2Jb1': it does not exist (VIR_ERR_NO_DOMAIN)"},"duration_ms":0.4}"#.utf8)
        }
        let failure = try await Ctl.run(["start", "web1", "--control", router.endpoint, "--timeout-ms", "10000"])
        let list = try await Ctl.run(["list", "--control", router.endpoint, "--timeout-ms", "10000"])
        await router.stop()

        #expect(failure.status == 1, "\(failure)")
        #expect(!failure.stderr.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "\(failure)")
        #expect(failure.stderrLines.first == #"test driver: cannot start machine 'we\u001b[2Jb1': it does not exist (VIR_ERR_NO_DOMAIN)"#, "\(failure)")
        #expect(failure.stderrLines.contains(#"  libvirt:   Domain\r\nnot found\u001b[0m"#), "\(failure)")

        #expect(list.status == 0, "\(list)")
        #expect(!list.stdout.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || (0x80..<0xa0).contains($0.value) || $0.value == 0x202e }, "\(list)")
        #expect(list.stdoutLines.count == 3, "\(list)")
        #expect(list.stdout.contains(#"a\u001b]0;pwned\u0007b"#), "\(list)")
        #expect(list.stdout.contains(#"c\u009bd\u202ee"#), "\(list)")
    }

    // MARK: keys

    @Test("keygen writes NAME.key (mode 0600, both keys) and NAME.pub, and never overwrites silently")
    func keygen() async throws {
        let root = try CtlPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let directory = root.appendingPathComponent("keys")
        let result = try await Ctl.run(["keygen", "--out", directory.path, "--name", "ops"])
        #expect(result.status == 0, "\(result)")
        let secretPath = directory.appendingPathComponent("ops.key").path
        let publicPath = directory.appendingPathComponent("ops.pub").path

        let secretMode = try FileManager.default.attributesOfItem(atPath: secretPath)[.posixPermissions] as? NSNumber
        #expect(secretMode?.intValue == 0o600)
        let secretFile = try ctlKeyFile(secretPath)
        let publicFile = try ctlKeyFile(publicPath)
        let secretKey = try #require(secretFile["secret-key"])
        let publicKey = try #require(secretFile["public-key"])
        #expect(try CurveKeyPair.publicKey(forSecretKey: secretKey) == publicKey)
        #expect(publicFile == ["public-key": publicKey])
        #expect(result.stdoutLines.last == "public-key = \(publicKey)", "\(result)")

        let again = try await Ctl.run(["keygen", "--out", directory.path, "--name", "ops"])
        #expect(again.status == 64, "\(again)")
        #expect(try ctlKeyFile(secretPath)["secret-key"] == secretKey)

        let forced = try await Ctl.run(["keygen", "--out", directory.path, "--name", "ops", "--force"])
        #expect(forced.status == 0, "\(forced)")
        #expect(try ctlKeyFile(secretPath)["secret-key"] != secretKey)
        let forcedMode = try FileManager.default.attributesOfItem(atPath: secretPath)[.posixPermissions] as? NSNumber
        #expect(forcedMode?.intValue == 0o600)
    }

    @Test("CURVE: the client talks to a CURVE server with its key files, and gets nothing with a wrong server key")
    func curve() async throws {
        let directory = try CtlPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for name in ["server", "client", "other"] {
            let made = try await Ctl.run(["keygen", "--out", directory.path, "--name", name])
            #expect(made.status == 0, "\(made)")
        }
        let serverSecret = try #require(try ctlKeyFile(directory.appendingPathComponent("server.key").path)["secret-key"])
        let serverPublic = try #require(try ctlKeyFile(directory.appendingPathComponent("server.pub").path)["public-key"])
        let router = try await CtlFakePeer.router(curveSecretKey: serverSecret) { request in
            let id = (try? JSONSerialization.jsonObject(with: request) as? [String: Any])?["id"] as? String ?? "?"
            return Data(#"{"v":1,"type":"result","worker":"curvy","id":"\#(id)","op":"ping","ok":true,"data":{"uptime_s":42.5},"duration_ms":0.1}"#.utf8)
        }
        let withFiles = try await Ctl.run([
            "ping", "--control", router.endpoint, "--timeout-ms", "10000",
            "--curve-server-key", directory.appendingPathComponent("server.pub").path,
            "--curve-key", directory.appendingPathComponent("client.key").path,
        ])
        let withLiteral = try await Ctl.run([
            "ping", "--control", router.endpoint, "--timeout-ms", "10000", "--curve-server-key", serverPublic,
        ])
        let wrongServer = try await Ctl.run([
            "ping", "--control", router.endpoint, "--timeout-ms", "500",
            "--curve-server-key", directory.appendingPathComponent("other.pub").path,
        ])
        let plain = try await Ctl.run(["ping", "--control", router.endpoint, "--timeout-ms", "500"])
        await router.stop()

        #expect(withFiles.status == 0, "\(withFiles)")
        #expect(withFiles.stdoutLines == ["curvy: up 42.5s (uptime_s 42.5)"], "\(withFiles)")
        #expect(withLiteral.status == 0, "\(withLiteral)")
        #expect(wrongServer.status == 3, "\(wrongServer)")
        #expect(plain.status == 3, "\(plain)")
        #expect(router.requests.count == 2)

        let badKey = try await Ctl.run(["ping", "--curve-server-key", directory.appendingPathComponent("missing.pub").path])
        #expect(badKey.status == 64, "\(badKey)")

        let clientKey = directory.appendingPathComponent("client.key").path
        #expect(chmod(clientKey, 0o644) == 0)
        let shared = try await Ctl.run(["ping", "--curve-server-key", serverPublic, "--curve-key", clientKey])
        #expect(shared.status == 64, "\(shared)")
        #expect(shared.stderr.contains("chmod 600"), "\(shared)")
    }

    @Test("CURVE with the real worker: an admitted client key gets replies and events, other clients get nothing")
    func curveWorker() async throws {
        let keys = try CtlPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: keys) }
        let clients = keys.appendingPathComponent("clients")
        try FileManager.default.createDirectory(at: clients, withIntermediateDirectories: true)
        for name in ["worker", "ops"] {
            let made = try await Ctl.run(["keygen", "--out", keys.path, "--name", name])
            #expect(made.status == 0, "\(made)")
        }
        try FileManager.default.copyItem(at: keys.appendingPathComponent("ops.pub"), to: clients.appendingPathComponent("ops.pub"))
        let workerPublic = keys.appendingPathComponent("worker.pub").path

        try await CtlWorker.with(
            workerArguments: ["--curve-key-file", keys.appendingPathComponent("worker.key").path, "--curve-clients", clients.path],
            clientOptions: ["--curve-server-key", workerPublic, "--curve-key", keys.appendingPathComponent("ops.key").path]
        ) { worker in
            let list = try await Ctl.run(["list"] + worker.endpoints)
            #expect(list.status == 0, "\(list)")
            #expect(list.stdoutLines.count == WorkerMachine.ecpctlStandard.count + 1, "\(list)")

            let heartbeat = try await Ctl.run(
                ["tail", "--json", "--count", "1", "--duration-ms", "15000", "heartbeat."] + worker.endpoints)
            #expect(heartbeat.status == 0, "\(heartbeat)")
            #expect(try ctlJSONObject(try #require(heartbeat.stdoutLines.first))["type"] as? String == "heartbeat")

            let control = ["--control", worker.control, "--timeout-ms", "700"]
            let stranger = try await Ctl.run(["ping", "--curve-server-key", workerPublic] + control)
            #expect(stranger.status == 3, "a key the worker does not list is refused: \(stranger)")
            let plain = try await Ctl.run(["ping"] + control)
            #expect(plain.status == 3, "a client without CURVE gets nothing: \(plain)")
        }
    }
}

/// The `name = value` lines of a key file.
private func ctlKeyFile(_ path: String) throws -> [String: String] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var values: [String: String] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2 else { throw CtlHarnessError("bad key file line in \(path): \(line)") }
        values[parts[0]] = parts[1]
    }
    return values
}
