import ECPProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The hypervisor tier's half of a host reboot: policies, `host_stop` on real QEMU guests, and a
/// restore that does not give up on a libvirtd that comes up late or goes away during it.
extension HypervisorTests {
    /// Stops the libvirtd that scripts/libvirtd-up.sh started: SIGTERM, SIGKILL after 10 s.
    static func stopDaemon() throws {
        let pid = try HypervisorHost.daemonPID()
        try #require(kill(pid, SIGTERM) == 0, "kill \(pid): errno \(errno)")
        let killAt = ContinuousClock.now + .seconds(10)
        let goneBy = ContinuousClock.now + .seconds(30)
        var killed = false
        while HypervisorHost.isAlive(pid) && ContinuousClock.now < goneBy {
            if !killed && ContinuousClock.now > killAt {
                kill(pid, SIGKILL)
                killed = true
            }
            usleep(50_000)
        }
        try #require(!HypervisorHost.isAlive(pid), "libvirtd \(pid) did not exit: \(HypervisorHost.signalState(pid))")
    }

    /// Every other running guest of the host is left alone by the tests' host stops.
    static func leaveForeignGuestsRunning(_ client: WorkerClient, _ guests: HypervisorGuests) throws {
        let active = try HypervisorHost.virshOK(["list", "--name"]).stdout.split(separator: "\n")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix(guests.prefix + "-") }
        for name in active {
            let r = try client.hypervisorRun("set_policy", machine: name, args: ["host_stop": "none"]).result
            try #require(r.ok == true, "\(r)")
        }
    }

    @Test("host stop, then the host's reboot: a guest saved, one shut down by its OS, one without an OS forced after the timeout, one left running; all four come back, the saved one resumed without booting")
    func hostStopAndReboot() throws {
        try Self.withTier { guests in
            let state = try HypervisorStateDirectory()
            let workerID = WorkerProcess.uniqueID(prefix: "hv")
            try guests.defineWithOS([1, 2, 3])
            try guests.define([4])
            let saved = guests.name(1), osShutdown = guests.name(2), leftRunning = guests.name(3), forced = guests.name(4)

            let hostStop: WorkerMessage
            do {
                let (worker, client) = try Self.launch(.hypervisor(id: workerID, stateFile: state.stateFile))
                try Self.leaveForeignGuestsRunning(client, guests)
                let policies: [(String, JSONValue)] = [
                    (saved, ["order": 1, "host_stop": "managedsave"]),
                    (osShutdown, ["order": 2, "host_stop": "shutdown"]),
                    (leftRunning, ["order": 3, "host_stop": "none"]),
                    (forced, ["host_stop": "shutdown"]),
                ]
                for (name, args) in policies {
                    let p = try client.hypervisorRun("set_policy", machine: name, args: args).result
                    try #require(p.ok == true && p.data?["policy"] != nil, "\(p)")
                }
                for n in 1...4 {
                    let r = try client.hypervisorRun("start", machine: guests.name(n)).result
                    try #require(r.ok == true && r.state == "running", "\(r)")
                }
                for n in 1...3 { try guests.waitForConsole(n, "listening") }

                client.timeout = .seconds(120)
                hostStop = try client.hypervisorRun("host_stop", args: ["timeout_ms": 4000]).result
                #expect(hostStop.ok == true, "\(hostStop)")
                let outcomes = hostStop.data?["outcomes"]?.arrayValue ?? []
                var action: [String: String] = [:]
                for o in outcomes { action[o["machine"]?.stringValue ?? "?"] = o["action"]?.stringValue }
                #expect(action[saved] == "saved", "\(hostStop)")
                #expect(action[osShutdown] == "shut_down", "\(hostStop)")
                #expect(action[forced] == "forced", "no OS hears the button: forced after 4 s: \(hostStop)")
                #expect(action[leftRunning] == "left_running", "\(hostStop)")
                // Reverse order: no order first, then 3, 2, 1.
                let ours = outcomes.compactMap { $0["machine"]?.stringValue }.filter { $0.hasPrefix(guests.prefix + "-") }
                #expect(ours == [forced, leftRunning, osShutdown, saved], "\(ours)")
                let published = try client.waitFor("the host stop's summary") { $0.type == "host_stop.summary" }
                WorkerExpect.envelope(published, worker: worker, type: "host_stop.summary", topic: "restore")
                #expect(guests.consoleCount(2, "powering off") == 1, "its OS shut it down: \(guests.console(2))")
                #expect(try Self.stateWithReason(osShutdown) == "shut off (shutdown)")
                #expect(try Self.stateWithReason(forced) == "shut off (destroyed)")
                #expect(try HypervisorHost.state(saved) == "shutoff")
                let info = try HypervisorHost.virshOK(["dominfo", saved]).stdout
                #expect(info.range(of: #"Managed save:\s+yes"#, options: .regularExpression) != nil, "\(info)")
                #expect(try HypervisorHost.state(leftRunning) == "running")
                // The worker's graceful stop sees three guests off; what ran stays desired.
                #expect(worker.stop() == 0, "\(worker.logTail())")
            }
            let table = try state.table()
            for n in 1...4 {
                #expect(table["machines"]?[guests.uuid(n)]?["desired"] == "running", "guest \(n): \(table)")
            }
            #expect(table["machines"]?[guests.uuid(1)]?["policy"]?["host_stop"] == "managedsave", "\(table)")

            // The reboot: what still runs goes down with the host; the worker starts again.
            try HypervisorHost.virshOK(["destroy", leftRunning])
            let tap = try HypervisorEventTap()
            let (worker, client) = try Self.launch(.hypervisor(id: workerID, stateFile: state.stateFile), tap: tap)
            let summary = try tap.waitFor("restore.summary", timeout: .seconds(120)) { $0.type == "restore.summary" }
            let restoreID = try #require(summary["restore_id"]?.stringValue)
            let report = try client.hypervisorRun("report").result
            var outcome: [String: JSONValue] = [:]
            for item in report.data?["outcomes"]?.arrayValue ?? [] where item["restore_id"] == .string(restoreID) {
                if let name = item["machine"]?.stringValue { outcome[name] = item }
            }
            for n in 1...4 {
                #expect(outcome[guests.name(n)]?["action"] == "started", "guest \(n): \(report)")
                #expect(try HypervisorHost.state(guests.name(n)) == "running", "guest \(n)")
            }
            #expect(outcome[saved]?["from_save"] == true, "\(report)")
            #expect(outcome[osShutdown]?["from_save"] == nil, "\(report)")
            #expect(outcome[saved]?["order"] == 1 && outcome[forced]?["order"] == .null, "\(report)")
            try guests.waitForConsole(2, "listening", count: 2)
            try guests.waitForConsole(3, "listening", count: 2)
            // Resumed where it was: its OS did not boot again.
            #expect(guests.consoleCount(1, "booted") == 1, "the saved guest resumed, it did not boot: \(guests.console(1))")
            let info = try HypervisorHost.virshOK(["dominfo", saved]).stdout
            #expect(info.range(of: #"Managed save:\s+no"#, options: .regularExpression) != nil, "the image was used: \(info)")
            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }

    @Test(
        "the worker started while libvirtd is down: the startup restore waits for it, and the machine that should run runs",
        .enabled(if: HypervisorHost.daemonIsOurs, "libvirtd was not started by scripts/libvirtd-up.sh: the test stops only a daemon the project started"))
    func restoreWaitsForLibvirtd() throws {
        try Self.withTier { guests in
            defer {
                do { try HypervisorHost.restartDaemon() } catch { Issue.record("libvirtd could not be brought back: \(error)") }
            }
            let state = try HypervisorStateDirectory()
            try guests.define([1])
            let table = #"{"version":1,"worker":"x","saved_at":"2026-11-25T20:31:07.123Z","machines":{"\#(guests.uuid(1))":{"name":"\#(guests.name(1))","desired":"running","observed":"running","updated_at":"2026-11-25T20:31:07.123Z"}}}"#
            try Data(table.utf8).write(to: URL(fileURLWithPath: state.stateFile))
            try Self.stopDaemon()

            let tap = try HypervisorEventTap()
            let (worker, client) = try Self.launch(.hypervisor(stateFile: state.stateFile, extra: ["--log-level", "info"]), tap: tap)
            #expect(worker.waitForLog(timeout: .seconds(20)) { $0.contains("restore waits for the libvirt connection") }, "\(worker.logTail())")
            let report = try client.hypervisorRun("report").result
            #expect(report.ok == true && report.data?["restore"] == .null, "no restore decided anything yet: \(report)")
            let status = try client.hypervisorRun("status", machine: guests.name(1)).result
            #expect(status.ok == false && status.error?["retryable"] == true, "commands are answered meanwhile: \(status)")

            try HypervisorHost.restartDaemon()
            let summary = try tap.waitFor("restore.summary", timeout: .seconds(60)) { $0.type == "restore.summary" }
            #expect(summary["counts"]?["started"] == 1 && summary["counts"]?["failed"] == 0, "\(summary)")
            #expect(try HypervisorHost.state(guests.name(1)) == "running")
            #expect(worker.waitForLog(timeout: .seconds(5)) { $0.contains("libvirt connected; restore goes on") }, "\(worker.logTail())")
            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }

    @Test(
        "a restore whose start fails while libvirtd is away is tried again, and starts the machine once the daemon is back",
        .enabled(if: HypervisorHost.daemonIsOurs, "libvirtd was not started by scripts/libvirtd-up.sh: the test stops only a daemon the project started"))
    func restoreRetriesRetryableFailures() throws {
        try Self.withTier { guests in
            defer {
                do { try HypervisorHost.restartDaemon() } catch { Issue.record("libvirtd could not be brought back: \(error)") }
            }
            let state = try HypervisorStateDirectory()
            try guests.define([1])
            let name = guests.name(1)
            let (worker, client) = try Self.launch(.hypervisor(
                stateFile: state.stateFile, extra: ["--no-restore", "--restore-retry-ms", "1000", "--log-level", "info"]))
            let policy = try client.hypervisorRun("set_policy", machine: name, args: ["retries": 6]).result
            try #require(policy.ok == true, "\(policy)")
            let start = try client.hypervisorRun("start", machine: name).result
            try #require(start.ok == true, "\(start)")
            try HypervisorHost.virshOK(["destroy", name])
            try HypervisorHost.waitForState(name, "shutoff")

            try Self.stopDaemon()
            let id = client.nextID("restore")
            try client.send(WorkerClient.command("restore", id: id), via: .control)
            #expect(worker.waitForLog(timeout: .seconds(20)) { $0.contains("restore attempt failed; trying again") }, "\(worker.logTail())")
            try HypervisorHost.restartDaemon()
            client.timeout = .seconds(90)
            let outcome = try client.waitFor("the machine's restore outcome", timeout: .seconds(90)) {
                $0.type == "restore.outcome" && $0["machine"] == .string(name)
            }
            #expect(outcome["action"] == "started", "\(outcome)")
            #expect((outcome["attempts"]?.intValue ?? 0) >= 2, "\(outcome)")
            #expect(try HypervisorHost.state(name) == "running")
            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }
}
