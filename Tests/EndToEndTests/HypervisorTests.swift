import ECPProtocol
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The real-hypervisor tier: the worker on `qemu:///system` with real QEMU guests (TCG, no disk,
/// no NIC), and `virsh` acting behind its back. Most guests have no operating system (32 MiB, they
/// ignore ACPI: the force path); those that must act as a guest does run the test guest's OS
/// (scripts/test-guest.sh; HypervisorGuestOSTests.swift and the host-reboot story).
///
/// It runs when `qemu:///system` answers (scripts/libvirtd-up.sh brings it up). When it does not,
/// the tier is skipped with the reason printed, except in CI (`CI=true`) or with
/// `ECP_REQUIRE_HYPERVISOR=1`, where every test fails with the reason. Guests are named
/// `ecp-test-<8 hex>-<n>` and removed at the end of each test, also after a failure.
@Suite(
    "Hypervisor (qemu:///system, real QEMU guests)", .serialized,
    .enabled(if: HypervisorHost.tierEnabled, "qemu:///system does not answer; the reason is printed"))
struct HypervisorTests {
    // MARK: helpers

    /// Launches a worker on the hypervisor and a client for it (synced on the commands socket).
    /// With a tap, the worker publishes on the tap's address and the client listens there too.
    static func launch(_ options: WorkerLaunchOptions, tap: HypervisorEventTap? = nil) throws -> (WorkerProcess, WorkerClient) {
        var options = options
        if let tap { options.extraArguments += tap.workerArguments }
        let worker = try WorkerProcess.start(options, readyTimeout: .seconds(30))
        let client = try WorkerClient(worker)
        if let tap { try client.hypervisorListen(onEvents: tap.address, insteadOf: worker.eventsAddress) }
        client.timeout = .seconds(30)
        try client.sync(timeout: .seconds(30))
        return (worker, client)
    }

    /// Runs a test of the tier: it fails with the reason when the hypervisor does not answer,
    /// holds the tier's lock throughout, and removes the test's guests at the end, also after a
    /// failure.
    static func withTier(_ body: (HypervisorGuests) throws -> Void) throws {
        try HypervisorHost.require()
        let lock = try HypervisorTierLock()
        defer { withExtendedLifetime(lock) {} }
        let guests = HypervisorGuests()
        defer { guests.cleanup() }
        try body(guests)
    }

    /// A failed result carrying an E2LibvirtError, checked against the published record.
    static func libvirtError(
        _ client: WorkerClient, _ exchange: (command: JSONValue, result: WorkerMessage),
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> JSONValue {
        let id = try #require(exchange.command["id"]?.stringValue, sourceLocation: sourceLocation)
        let published = try client.libvirtError(id)
        return try #require(
            WorkerExpect.libvirtFailure(exchange.result, published: published, command: exchange.command, worker: client.worker, sourceLocation: sourceLocation),
            sourceLocation: sourceLocation)
    }

    /// The `restore.outcome` messages of one restore, by machine name.
    static func outcomes(_ messages: [WorkerMessage], restoreID: String) -> [String: WorkerMessage] {
        var byName: [String: WorkerMessage] = [:]
        for m in messages where m.type == "restore.outcome" && m["restore_id"]?.stringValue == restoreID {
            if let name = m["machine"]?.stringValue { byName[name] = m }
        }
        return byName
    }

    // MARK: 1. every op

    @Test("every op of the protocol on a real guest: results, states, idempotence, and the missing guest's E2LibvirtError")
    func everyOperation() throws {
        try Self.withTier { guests in
            let name = guests.name(1), uuid = guests.uuid(1)

            let (worker, client) = try Self.launch(.hypervisor())

            let ping = try client.hypervisorRun("ping").result
            #expect(ping.ok == true && ping.changed == false, "\(ping)")
            #expect((ping.data?["uptime_s"]?.doubleValue ?? -1) >= 0, "\(ping)")

            // define: the result names the new machine.
            let define = try client.hypervisorRun("define", args: ["xml": .string(guests.xml(1))]).result
            #expect(define.ok == true, "\(define)")
            #expect(define.changed == true, "\(define)")
            #expect(define.data?["name"] == .string(name), "\(define)")
            #expect(define.data?["uuid"] == .string(uuid), "\(define)")
            #expect(define.state == "shutoff", "\(define)")
            #expect(try HypervisorHost.state(name) == "shutoff")

            // status of the shut-off guest.
            let off = try client.hypervisorRun("status", machine: name).result
            #expect(off.ok == true && off.changed == false, "\(off)")
            #expect(off.state == "shutoff", "\(off)")
            #expect(off.data?["state"] == "shutoff", "\(off)")
            #expect(off.data?["vcpus"] == 1, "\(off)")
            #expect(off.data?["max_memory_kib"] == 32768, "\(off)")
            #expect(off.data?["persistent"] == true, "\(off)")

            // start, and start again.
            let start = try client.hypervisorRun("start", machine: name).result
            #expect(start.ok == true && start.changed == true && start.state == "running", "\(start)")
            #expect(try HypervisorHost.state(name) == "running")
            let again = try client.hypervisorRun("start", machine: name).result
            #expect(again.ok == true && again.changed == false && again.state == "running", "\(again)")

            // status of the running guest, by name over control and by UUID over the commands socket.
            for (machine, channel) in [(name, CommandChannel.control), (uuid, .commands)] {
                let s = try client.hypervisorRun("status", machine: machine, via: channel).result
                #expect(s.ok == true && s.changed == false && s.state == "running", "\(s)")
                #expect(s.data?["state"] == "running", "\(s)")
                #expect(s.data?["reason"] == 1, "VIR_DOMAIN_RUNNING_BOOTED: \(s)")
                #expect(s.data?["vcpus"] == 1, "\(s)")
                #expect(s.data?["memory_kib"] == 32768, "\(s)")
                #expect(s.data?["max_memory_kib"] == 32768, "\(s)")
                #expect((s.data?["cpu_time_ns"]?.intValue ?? 0) > 0, "a running guest has used CPU time: \(s)")
                #expect(s.data?["persistent"] == true, "\(s)")
                #expect(s.data?["autostart"] == false, "\(s)")
            }

            // suspend, suspend again, resume, resume again.
            let suspend = try client.hypervisorRun("suspend", machine: name).result
            #expect(suspend.ok == true && suspend.changed == true && suspend.state == "paused", "\(suspend)")
            #expect(try HypervisorHost.state(name) == "paused")
            let suspend2 = try client.hypervisorRun("suspend", machine: name).result
            #expect(suspend2.ok == true && suspend2.changed == false && suspend2.state == "paused", "\(suspend2)")
            let resume = try client.hypervisorRun("resume", machine: name).result
            #expect(resume.ok == true && resume.changed == true && resume.state == "running", "\(resume)")
            #expect(try HypervisorHost.state(name) == "running")
            let resume2 = try client.hypervisorRun("resume", machine: name).result
            #expect(resume2.ok == true && resume2.changed == false && resume2.state == "running", "\(resume2)")

            // reboot: QEMU accepts the request (an ACPI reboot the firmware-only guest ignores); the
            // guest stays running.
            let reboot = try client.hypervisorRun("reboot", machine: name).result
            #expect(reboot.ok == true && reboot.changed == true && reboot.state == "running", "\(reboot)")
            #expect(try HypervisorHost.state(name) == "running")

            // list
            let list = try client.hypervisorRun("list").result
            #expect(list.ok == true && list.changed == false, "\(list)")
            let listed = list.data?["machines"]?.arrayValue?.first { $0["name"] == .string(name) }
            #expect(listed?["uuid"] == .string(uuid), "\(list)")
            #expect(listed?["state"] == "running", "\(list)")

            // restore on command: the table says running (the last command was resume/reboot), it runs.
            let restore = try client.hypervisorRun("restore").result
            #expect(restore.ok == true && restore.changed == false, "\(restore)")
            #expect(restore.data?["trigger"] == "command", "\(restore)")
            let restoreID = try #require(restore.data?["restore_id"]?.stringValue, "\(restore)")
            let outcome = try client.waitFor("the restore outcome of \(name)") {
                $0.type == "restore.outcome" && $0["restore_id"]?.stringValue == restoreID && $0["machine"] == .string(name)
            }
            #expect(outcome["action"] == "already_running" && outcome["found"] == "running" && outcome["desired"] == "running", "\(outcome)")
            #expect(outcome["uuid"] == .string(uuid), "\(outcome)")
            let report = try client.hypervisorRun("report").result
            #expect(report.ok == true && report.changed == false, "\(report)")
            #expect(report.data?["restore"]?["restore_id"] == .string(restoreID), "\(report)")
            let reported = report.data?["outcomes"]?.arrayValue?.first { $0["machine"] == .string(name) }
            #expect(reported?["action"] == "already_running", "\(report)")
            #expect(report.data?["machines"]?[uuid]?["desired"] == "running", "\(report)")

            // shutdown without waiting: the request is made; the guest (no OS) ignores it.
            let shutdown = try client.hypervisorRun("shutdown", machine: name).result
            #expect(shutdown.ok == true && shutdown.changed == true, "\(shutdown)")
            #expect(shutdown.state == "running", "the guest ignores ACPI: \(shutdown)")
            #expect(try HypervisorHost.state(name) == "running")

            // shutdown, wait 1 s, force: the guest does not power off, so it is destroyed.
            let forced = try client.hypervisorRun("shutdown", machine: name, args: ["wait_ms": 1000, "force": true]).result
            #expect(forced.ok == true && forced.changed == true && forced.state == "shutoff", "\(forced)")
            #expect(forced.data?["forced"] == true, "\(forced)")
            #expect(try HypervisorHost.state(name) == "shutoff")

            // shutdown and destroy of a shut-off guest change nothing.
            let shutdown2 = try client.hypervisorRun("shutdown", machine: name, args: ["wait_ms": 500, "force": true]).result
            #expect(shutdown2.ok == true && shutdown2.changed == false && shutdown2.state == "shutoff", "\(shutdown2)")
            let destroyOff = try client.hypervisorRun("destroy", machine: name).result
            #expect(destroyOff.ok == true && destroyOff.changed == false && destroyOff.state == "shutoff", "\(destroyOff)")

            // shutdown, wait 0.5 s, no force: a timeout error, and the guest still runs.
            let start2 = try client.hypervisorRun("start", machine: name).result
            #expect(start2.ok == true && start2.changed == true, "\(start2)")
            let timedOut = try client.hypervisorRun("shutdown", machine: name, args: ["wait_ms": 500]).result
            #expect(timedOut.ok == false, "\(timedOut)")
            #expect(timedOut.error?["type"] == "timeout", "\(timedOut)")
            #expect(timedOut.error?["category"] == "timeout", "\(timedOut)")
            #expect(timedOut.error?["retryable"] == true, "\(timedOut)")
            #expect(timedOut.error?["summary"]?.stringValue?.contains(name) == true, "\(timedOut)")
            #expect(try HypervisorHost.state(name) == "running")

            // destroy, destroy again.
            let destroy = try client.hypervisorRun("destroy", machine: name).result
            #expect(destroy.ok == true && destroy.changed == true && destroy.state == "shutoff", "\(destroy)")
            #expect(try HypervisorHost.state(name) == "shutoff")
            let destroy2 = try client.hypervisorRun("destroy", machine: name).result
            #expect(destroy2.ok == true && destroy2.changed == false, "\(destroy2)")

            // undefine: gone from libvirt.
            let undefine = try client.hypervisorRun("undefine", machine: name).result
            #expect(undefine.ok == true && undefine.changed == true && undefine.state == "shutoff", "\(undefine)")
            #expect(try HypervisorHost.state(name) == nil)

            // status of the undefined guest: the QEMU driver's VIR_ERR_NO_DOMAIN.
            let missing = try client.hypervisorRun("status", machine: name)
            let error = try Self.libvirtError(client, missing)
            #expect(error["code"] == 42, "\(error)")
            #expect(error["code_name"] == "VIR_ERR_NO_DOMAIN", "\(error)")
            #expect(error["domain"] == 10, "\(error)")
            #expect(error["domain_name"] == "VIR_FROM_QEMU", "\(error)")
            #expect(error["category"] == "not_found", "\(error)")
            #expect(error["retryable"] == false, "\(error)")
            let summary = error["summary"]?.stringValue ?? ""
            #expect(summary.contains("QEMU driver"), "\(summary)")
            #expect(summary.contains(name), "\(summary)")
            #expect(summary.contains("VIR_ERR_NO_DOMAIN"), "\(summary)")

            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }

    // MARK: paused start, transient guests

    @Test("start paused; a running guest undefined keeps running as a transient machine, and destroying it removes it")
    func pausedStartAndTransientGuest() throws {
        try Self.withTier { guests in
            let name = guests.name(1), uuid = guests.uuid(1)
            let (worker, client) = try Self.launch(.hypervisor())

            let define = try client.hypervisorRun("define", args: ["xml": .string(guests.xml(1))]).result
            try #require(define.ok == true, "\(define)")
            let paused = try client.hypervisorRun("start", machine: name, args: ["paused": true]).result
            #expect(paused.ok == true && paused.changed == true && paused.state == "paused", "\(paused)")
            #expect(try HypervisorHost.state(name) == "paused")
            let resume = try client.hypervisorRun("resume", machine: name).result
            #expect(resume.ok == true && resume.changed == true && resume.state == "running", "\(resume)")

            // undefine of a running guest: it runs on, no longer persistent.
            let undefine = try client.hypervisorRun("undefine", machine: uuid).result
            #expect(undefine.ok == true && undefine.changed == true && undefine.state == "running", "\(undefine)")
            #expect(try HypervisorHost.state(name) == "running")
            let status = try client.hypervisorRun("status", machine: name).result
            #expect(status.ok == true && status.state == "running", "\(status)")
            #expect(status.data?["persistent"] == false, "a transient machine now: \(status)")

            // destroy of the transient guest: it is off, and gone.
            let destroy = try client.hypervisorRun("destroy", machine: name).result
            #expect(destroy.ok == true, "the destroy succeeded, though the machine is gone afterwards: \(destroy)")
            #expect(destroy.changed == true && destroy.state == "shutoff", "\(destroy)")
            #expect(try HypervisorHost.state(name) == nil)
            let gone = try client.hypervisorRun("status", machine: name)
            #expect(try Self.libvirtError(client, gone)["code_name"] == "VIR_ERR_NO_DOMAIN")

            // The same for a forced shutdown of a transient guest.
            let name2 = guests.name(2)
            try guests.define([2])
            try HypervisorHost.virshOK(["start", name2])
            try HypervisorHost.virshOK(["undefine", name2])
            #expect(try HypervisorHost.state(name2) == "running")
            let forced = try client.hypervisorRun("shutdown", machine: name2, args: ["wait_ms": 500, "force": true]).result
            #expect(forced.ok == true, "the forced shutdown succeeded, though the machine is gone afterwards: \(forced)")
            #expect(forced.changed == true && forced.state == "shutoff" && forced.data?["forced"] == true, "\(forced)")
            #expect(try HypervisorHost.state(name2) == nil)
            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }

    // MARK: timeout_ms

    @Test("a command past its timeout_ms is a timeout error at once; the machine's lane is freed; what libvirt does later is a machine.event")
    func commandTimeout() throws {
        try Self.withTier { guests in
            let name = guests.name(1)
            try guests.define([1])
            let (worker, client) = try Self.launch(.hypervisor())
            let start = try client.hypervisorRun("start", machine: name).result
            try #require(start.ok == true, "\(start)")

            // The guest ignores ACPI, so this shutdown runs for 3 s, then destroys it.
            let command = WorkerClient.command(
                "shutdown", id: client.nextID("hv-slow"), machine: name, args: ["wait_ms": 3000, "force": true],
                extra: ["timeout_ms": 300])
            let sentAt = ContinuousClock.now
            let x = try client.execute(command, via: .control)
            let answeredAfter = ContinuousClock.now - sentAt
            WorkerExpect.exchange(x, command: command, worker: worker)
            #expect(x.result.ok == false, "\(x.result)")
            #expect(x.result.error?["type"] == "timeout" && x.result.error?["category"] == "timeout", "\(x.result)")
            #expect(x.result.error?["retryable"] == true, "\(x.result)")
            #expect(answeredAfter < .seconds(2), "answered at the deadline, not when libvirt finished: \(answeredAfter)")

            // The lane is free: a status of the same machine is answered while the shutdown goes on.
            let status = try client.hypervisorRun("status", machine: name).result
            #expect(status.ok == true && status.state == "running", "\(status)")
            let stopped = try client.waitFor("machine.event stopped of \(name)", timeout: .seconds(20)) {
                $0.type == "machine.event" && $0["machine"] == .string(name) && $0["event"] == "stopped"
            }
            #expect(stopped["detail"] == "destroyed" && stopped["state"] == "shutoff", "the forced destroy, reported later: \(stopped)")
            #expect((status.seq ?? .max) < (stopped.seq ?? 0), "the status was answered before the late destroy")
            #expect(try HypervisorHost.state(name) == "shutoff")
            #expect(client.messages { $0.type == "result" && $0.id == x.result.id }.count == 1, "one result per command, the late end adds none")
            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }

    @Test("a command still running when the shutdown grace is over is answered interrupted, before worker.stopping")
    func interruptedAtShutdown() throws {
        try Self.withTier { guests in
            let name = guests.name(1)
            try guests.define([1])
            var options = WorkerLaunchOptions.hypervisor()
            options.shutdownGraceSeconds = 1
            let (worker, client) = try Self.launch(options)
            let start = try client.hypervisorRun("start", machine: name).result
            try #require(start.ok == true, "\(start)")

            // The guest ignores ACPI: this shutdown waits its full minute unless the worker stops.
            let id = client.nextID("hv-long")
            let command = WorkerClient.command("shutdown", id: id, machine: name, args: ["wait_ms": 60_000])
            try client.send(command, via: .control)
            _ = try client.waitFor("accepted \(id)", timeout: .seconds(10)) { $0.type == "accepted" && $0.id == id }
            let signalledAt = ContinuousClock.now
            worker.signal(SIGTERM)
            #expect(worker.waitForExit(timeout: .seconds(20)) == 0, "\(worker.logTail())")
            #expect(ContinuousClock.now - signalledAt < .seconds(15), "the worker did not wait for the shutdown's minute")

            let result = try client.waitFor("result \(id)", timeout: .seconds(5)) { $0.type == "result" && $0.id == id }
            #expect(result.ok == false, "\(result)")
            #expect(result.error?["type"] == "interrupted", "\(result)")
            #expect(result.error?["category"] == "timeout", "\(result)")
            #expect(result.error?["retryable"] == true, "\(result)")
            let summary = result.error?["summary"]?.stringValue ?? ""
            #expect(summary.contains("stopped before the command finished") && summary.contains("may still complete"), "\(summary)")
            let stopping = try client.waitFor("worker.stopping", timeout: .seconds(5)) { $0.type == "worker.stopping" }
            #expect((result.seq ?? .max) < (stopping.seq ?? 0), "the result goes out before worker.stopping")
            #expect(client.messages { $0.type == "result" && $0.id == id }.count == 1)
        }
    }

    // MARK: 2. define failures

    @Test("define with bad XML and define of a duplicate name are E2LibvirtErrors that say why")
    func defineFailures() throws {
        try Self.withTier { guests in
            let (worker, client) = try Self.launch(.hypervisor())

            // Not well-formed XML: libxml's parse error with its location, from the domain
            // configuration layer.
            let broken = try client.hypervisorRun("define", args: ["xml": .string("<domain type='qemu'><name>\(guests.name(2))</name")])
            let e1 = try Self.libvirtError(client, broken)
            #expect(e1["code"] == 35, "\(e1)")
            #expect(e1["code_name"] == "VIR_ERR_XML_DETAIL", "\(e1)")
            #expect(e1["domain"] == 20, "\(e1)")
            #expect(e1["domain_name"] == "VIR_FROM_DOMAIN", "\(e1)")
            #expect(e1["category"] == "config", "\(e1)")
            #expect(e1["retryable"] == false, "\(e1)")
            #expect(e1["message"]?.stringValue?.contains("expected '>'") == true, "libvirt's message is kept whole: \(e1)")
            let s1 = e1["summary"]?.stringValue ?? ""
            #expect(
                s1 == "domain configuration: cannot define a machine: the XML is not valid: expected '>' (VIR_ERR_XML_DETAIL)",
                "layer, operation, problem, libxml's reason without its location, code name: \(s1)")
            #expect(try HypervisorHost.state(guests.name(2)) == nil)

            // Well-formed but no OS type: the domain configuration layer refuses it.
            let noOS = try client.hypervisorRun("define", args: ["xml": .string("<domain type='qemu'><name>\(guests.name(3))</name><memory unit='MiB'>32</memory></domain>")])
            let e2 = try Self.libvirtError(client, noOS)
            #expect(e2["code"] == 27, "\(e2)")
            #expect(e2["code_name"] == "VIR_ERR_XML_ERROR", "\(e2)")
            #expect(e2["domain_name"] == "VIR_FROM_DOMAIN", "\(e2)")
            #expect(e2["category"] == "config", "\(e2)")
            #expect(e2["retryable"] == false, "\(e2)")
            let s2 = e2["summary"]?.stringValue ?? ""
            print("hypervisor tier: define without an OS type: \(s2)")
            #expect(s2.contains("cannot define a machine") && s2.contains("os <type>"), "the summary keeps libvirt's reason: \(s2)")
            #expect(try HypervisorHost.state(guests.name(3)) == nil)

            // A duplicate name with another UUID.
            let first = try client.hypervisorRun("define", args: ["xml": .string(guests.xml(1))]).result
            try #require(first.ok == true, "\(first)")
            let otherUUID = UUID().uuidString.lowercased()
            let duplicate = try client.hypervisorRun("define", args: ["xml": .string(HypervisorGuests.xml(name: guests.name(1), uuid: otherUUID))])
            let e3 = try Self.libvirtError(client, duplicate)
            #expect(e3["code"] == 9, "\(e3)")
            #expect(e3["code_name"] == "VIR_ERR_OPERATION_FAILED", "\(e3)")
            #expect(e3["domain_name"] == "VIR_FROM_DOMAIN", "\(e3)")
            #expect(e3["category"] == "already_exists", "\(e3)")
            #expect(e3["retryable"] == false, "\(e3)")
            #expect(e3["message"]?.stringValue?.contains(guests.uuid(1)) == true, "libvirt names the existing UUID: \(e3)")
            let s3 = e3["summary"]?.stringValue ?? ""
            print("hypervisor tier: define of a duplicate name: \(s3)")
            #expect(s3.contains("cannot define a machine") && s3.contains("already exists"), "\(s3)")
            // The first definition stands.
            let uuidNow = try HypervisorHost.virshOK(["domuuid", guests.name(1)]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(uuidNow == guests.uuid(1))

            // The same XML again (same name, same UUID) redefines: a success.
            let redefine = try client.hypervisorRun("define", args: ["xml": .string(guests.xml(1))]).result
            #expect(redefine.ok == true && redefine.data?["uuid"] == .string(guests.uuid(1)), "\(redefine)")

            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }

    // MARK: 3. machine events

    @Test("changes made with virsh behind the worker's back are published as machine.events")
    func eventsBehindTheWorkersBack() throws {
        try Self.withTier { guests in
            let name = guests.name(1), uuid = guests.uuid(1)
            let (worker, client) = try Self.launch(.hypervisor())

            var lastSeq: Int64 = 0
            func expectEvent(
                _ event: String, _ detail: String, _ state: String?, after action: () throws -> Void,
                sourceLocation: SourceLocation = #_sourceLocation
            ) throws {
                try action()
                let after = lastSeq
                let m = try client.waitFor("machine.event \(event) of \(name)") {
                    $0.type == "machine.event" && $0["machine"] == .string(name) && $0["event"] == .string(event) && ($0.seq ?? 0) > after
                }
                WorkerExpect.envelope(m, worker: worker, type: "machine.event", topic: "machine", sourceLocation: sourceLocation)
                #expect(m["uuid"] == .string(uuid), "\(m)", sourceLocation: sourceLocation)
                #expect(m["detail"] == .string(detail), "\(m)", sourceLocation: sourceLocation)
                if let state {
                    #expect(m["state"] == .string(state), "\(m)", sourceLocation: sourceLocation)
                }
                lastSeq = m.seq ?? lastSeq
            }

            try expectEvent("defined", "added", "shutoff") { try guests.define([1]) }
            try expectEvent("started", "booted", "running") { try HypervisorHost.virshOK(["start", name]) }
            try expectEvent("suspended", "paused", "paused") { try HypervisorHost.virshOK(["suspend", name]) }
            try expectEvent("resumed", "unpaused", "running") { try HypervisorHost.virshOK(["resume", name]) }
            try expectEvent("stopped", "destroyed", "shutoff") { try HypervisorHost.virshOK(["destroy", name]) }
            try expectEvent("undefined", "removed", nil) { try HypervisorHost.virshOK(["undefine", name]) }

            // The worker kept what it saw: a status now is the libvirt error of a missing machine.
            let status = try client.hypervisorRun("status", machine: name)
            #expect(try Self.libvirtError(client, status)["code_name"] == "VIR_ERR_NO_DOMAIN")
            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }

    @Test("a status right after virsh changed the machine behind the worker's back says what virsh did: define, autostart, rename, undefine")
    func readsBehindTheWorkersBack() throws {
        try Self.withTier { guests in
            let first = guests.name(1), renamed = guests.name(2), uuid = guests.uuid(1)
            let (worker, client) = try Self.launch(.hypervisor())
            func status(_ machine: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue? {
                let x = try client.hypervisorRun("status", machine: machine, sourceLocation: sourceLocation)
                return x.result["ok"] == .bool(true) ? x.result["data"] : try Self.libvirtError(client, x, sourceLocation: sourceLocation)["code_name"]
            }
            // Read before each change, so that whatever the worker keeps is warm.
            #expect(try status(first) == "VIR_ERR_NO_DOMAIN")
            try guests.define([1])
            var data = try status(first)
            #expect(data?["state"] == "shutoff" && data?["persistent"] == .bool(true) && data?["autostart"] == .bool(false), "\(String(describing: data))")

            try HypervisorHost.virshOK(["autostart", first])
            #expect(try status(first)?["autostart"] == .bool(true))
            try HypervisorHost.virshOK(["autostart", "--disable", first])
            #expect(try status(uuid)?["autostart"] == .bool(false))

            try HypervisorHost.virshOK(["domrename", first, renamed])
            #expect(try status(first) == "VIR_ERR_NO_DOMAIN", "the old name is gone at once")
            #expect(try status(renamed)?["state"] == "shutoff")
            #expect(try status(uuid)?["state"] == "shutoff", "the UUID names the renamed machine")

            try HypervisorHost.virshOK(["start", renamed])
            #expect(try status(renamed)?["state"] == "running")
            try HypervisorHost.virshOK(["undefine", renamed])
            data = try status(renamed)
            #expect(data?["state"] == "running" && data?["persistent"] == .bool(false), "running on as a transient machine: \(String(describing: data))")
            try HypervisorHost.virshOK(["destroy", renamed])
            #expect(try status(renamed) == "VIR_ERR_NO_DOMAIN", "a transient machine stopped is gone")
            #expect(try status(uuid) == "VIR_ERR_NO_DOMAIN")

            // Defined again under the first name with the same UUID: found by either spelling.
            try guests.define([1])
            #expect(try status(uuid.replacingOccurrences(of: "-", with: "").uppercased())?["state"] == "shutoff")
            #expect(try status(first)?["persistent"] == .bool(true))
            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }

    // MARK: 4. host reboot

    @Test("host reboot: the next worker boots exactly the guests that ran (their OS comes up again), reports the missing and the skipped")
    func hostReboot() throws {
        try Self.withTier { guests in
            let state = try HypervisorStateDirectory()
            let workerID = WorkerProcess.uniqueID(prefix: "hv")
            try guests.defineWithOS([1, 2, 3, 4, 5])

            // First run: guests 1-4 started through the worker, 5 left shut off; a graceful stop.
            do {
                let (worker, client) = try Self.launch(.hypervisor(id: workerID, stateFile: state.stateFile))
                for n in 1...4 {
                    let r = try client.hypervisorRun("start", machine: guests.name(n)).result
                    try #require(r.ok == true && r.changed == true && r.state == "running", "\(r)")
                }
                #expect(worker.stop() == 0, "a graceful stop exits 0\n\(worker.logTail())")
            }
            for n in 1...4 {
                #expect(try HypervisorHost.state(guests.name(n)) == "running")
                try guests.waitForConsole(n, "listening")
            }
            let table = try state.table()
            for n in 1...4 {
                #expect(table["machines"]?[guests.uuid(n)]?["desired"] == "running", "\(table)")
                #expect(table["machines"]?[guests.uuid(n)]?["desired_from"] == "command", "\(table)")
            }
            #expect(table["machines"]?[guests.uuid(5)]?["desired"] == "shutoff", "\(table)")
            #expect(table["machines"]?[guests.uuid(5)]?["desired_from"] == "observed", "\(table)")
            let tableSize = table["machines"]?.objectValue?.count ?? 0

            // The host goes down: every guest is off; guest 4 is not defined any more afterwards.
            try HypervisorHost.virshAllOK((1...4).map { ["destroy", guests.name($0)] })
            try HypervisorHost.virshOK(["undefine", guests.name(4)])
            for n in [1, 2, 3, 5] { #expect(try HypervisorHost.state(guests.name(n)) == "shutoff") }

            // Second run on the same table: the startup restore, one machine at a time in table order
            // (by name), so that the starts come first and the tap is surely listening by the time the
            // other outcomes go out. A subscriber that joins after a worker's first messages has
            // missed them (the late joiner); `report` exists for that, and must hold every outcome.
            let tap = try HypervisorEventTap()
            let (worker, client) = try Self.launch(
                .hypervisor(id: workerID, stateFile: state.stateFile, extra: ["--restore-parallel", "1"]), tap: tap)
            let summary = try tap.waitFor("restore.summary", timeout: .seconds(60)) { $0.type == "restore.summary" }
            WorkerExpect.envelope(summary, worker: worker, type: "restore.summary", topic: "restore")
            #expect(summary["trigger"] == "startup", "\(summary)")
            #expect(summary["table"] == "present", "\(summary)")
            #expect(summary["state_file"] == .string(state.stateFile), "\(summary)")
            let restoreID = try #require(summary["restore_id"]?.stringValue)
            let summarySeq = try #require(summary.seq)
            let published = Self.outcomes(tap.received, restoreID: restoreID)
            // From its first message on, the tap heard every message up to the summary.
            let heardSeqs = Set(tap.received.filter { $0.run == summary.run }.compactMap(\.seq).filter { $0 <= summarySeq })
            let firstHeard = heardSeqs.min() ?? summarySeq
            #expect(heardSeqs.count == Int(summarySeq - firstHeard + 1), "no message lost between seq \(firstHeard) and the summary")

            // `report` over control: the summary, every outcome, and the table.
            let report = try client.hypervisorRun("report").result
            #expect(report.ok == true, "\(report)")
            let r = try #require(report.data)
            #expect(r["restore"]?["restore_id"] == .string(restoreID), "\(report)")
            #expect(r["restore"]?["counts"] == summary["counts"], "\(report)")
            #expect(r["restore"]?["total"] == summary["total"], "\(report)")
            #expect(r["restore"]?["table"] == "present", "\(report)")
            var reported: [String: JSONValue] = [:]
            for item in r["outcomes"]?.arrayValue ?? [] {
                if let name = item["machine"]?.stringValue { reported[name] = item }
            }
            #expect(reported.count == tableSize, "one outcome per machine of the table: \(report)")

            let expected: [Int: (action: String, desired: String, found: String?)] = [
                1: ("started", "running", "shutoff"), 2: ("started", "running", "shutoff"), 3: ("started", "running", "shutoff"),
                4: ("missing", "running", nil), 5: ("skipped", "shutoff", "shutoff"),
            ]
            for (n, e) in expected.sorted(by: { $0.key < $1.key }) {
                let name = guests.name(n)
                guard let item = reported[name] else {
                    Issue.record("report holds no outcome for \(name): \(report)")
                    continue
                }
                #expect(item["restore_id"] == .string(restoreID), "\(item)")
                #expect(item["type"] == "restore.outcome", "\(item)")
                #expect(item["action"] == .string(e.action), "\(name): \(item)")
                #expect(item["desired"] == .string(e.desired), "\(name): \(item)")
                if let found = e.found {
                    #expect(item["found"] == .string(found), "\(name): \(item)")
                } else {
                    #expect(item["found"] == nil || item["found"] == .null, "an undefined machine is found nowhere: \(item)")
                }
                #expect(item["uuid"] == .string(guests.uuid(n)), "\(item)")
                #expect(item["trigger"] == "startup", "\(item)")
                #expect(item["error"] == nil || item["error"] == .null, "\(item)")
                // The published outcome is the reported one, before the summary.
                if let o = published[name] {
                    WorkerExpect.envelope(o, worker: worker, type: "restore.outcome", topic: "restore")
                    #expect(o.withoutEnvelope == item, "published and reported outcome of \(name)\n published: \(o)\n reported: \(item)")
                    #expect((o.seq ?? .max) < summarySeq, "outcomes come before the summary: \(o)")
                } else {
                    #expect(firstHeard > 1, "the outcome of \(name) was published after the tap was listening, yet not heard")
                }
            }
            print("hypervisor tier: the tap heard \(published.count) of \(reported.count) startup outcomes (first message heard: seq \(firstHeard))")
            #expect(published.count == reported.count || firstHeard > 1)

            // Counts: ours exactly, plus whatever other guests of the host the table holds.
            var counts: [String: Int64] = ["started": 3, "resumed": 0, "already_running": 0, "missing": 1, "skipped": 1, "failed": 0]
            let foreign = reported.filter { !$0.key.hasPrefix(guests.prefix + "-") }
            for (_, o) in foreign { counts[o["action"]?.stringValue ?? "?", default: 0] += 1 }
            #expect(summary["total"]?.intValue == Int64(5 + foreign.count), "\(summary)")
            #expect(summary["counts"] == .object(counts.mapValues { .int($0) }), "\(summary)")

            for n in 1...3 {
                #expect(try HypervisorHost.state(guests.name(n)) == "running", "\(guests.name(n))")
                // Not just a QEMU process: the guest's OS booted a second time.
                try guests.waitForConsole(n, "listening", count: 2)
            }
            #expect(guests.consoleCount(5, "booted") == 0, "the guest that was off stays off: \(guests.console(5))")
            #expect(try HypervisorHost.state(guests.name(4)) == nil)
            #expect(try HypervisorHost.state(guests.name(5)) == "shutoff")
            #expect(r["machines"]?[guests.uuid(4)]?["name"] == .string(guests.name(4)), "a missing machine's entry is kept: \(report)")
            #expect(r["machines"]?[guests.uuid(4)]?["desired"] == "running", "\(report)")
            for n in 1...3 { #expect(r["machines"]?[guests.uuid(n)]?["observed"] == "running", "\(report)") }

            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }

    // MARK: 5. libvirtd restart

    @Test(
        "libvirtd killed and restarted while commands flow: retryable connection errors, heartbeats say so, the worker reconnects",
        .enabled(
            if: HypervisorHost.daemonIsOurs,
            "libvirtd was not started by scripts/libvirtd-up.sh (/run/ecp-libvirtd/started is absent): the test kills only a daemon the project started"))
    func libvirtdRestart() throws {
        try Self.withTier { guests in
            // Runs before the guests' cleanup (defers run last-first): the daemon is back in any case.
            defer {
                do { try HypervisorHost.restartDaemon() } catch { Issue.record("libvirtd could not be brought back: \(error)") }
            }
            let name = guests.name(1)
            try guests.define([1])
            let (worker, client) = try Self.launch(.hypervisor())
            _ = try client.waitFor("a connected heartbeat") { $0.type == "heartbeat" && $0["libvirt"] == "connected" }
            let before = try client.hypervisorRun("status", machine: name).result
            try #require(before.ok == true && before.state == "shutoff", "\(before)")

            // The daemon goes away: SIGTERM, as `pkill -x libvirtd` sends, to the pid of its pid file.
            // A daemon that does not end within 10 s (one started with SIGTERM blocked, as children
            // of a test process are) gets SIGKILL: it is the one scripts/libvirtd-up.sh started.
            let pid = try HypervisorHost.daemonPID()
            let killedAt = ContinuousClock.now
            try #require(kill(pid, SIGTERM) == 0, "kill \(pid): errno \(errno)")
            var killed = false
            let goneBy = ContinuousClock.now + .seconds(30)
            while HypervisorHost.isAlive(pid) && ContinuousClock.now < goneBy {
                if !killed && ContinuousClock.now - killedAt > .seconds(10) {
                    print("hypervisor tier: libvirtd \(pid) ignored SIGTERM (\(HypervisorHost.signalState(pid))); sending SIGKILL")
                    kill(pid, SIGKILL)
                    killed = true
                }
                try client.collect(for: .milliseconds(50))
            }
            try #require(
                !HypervisorHost.isAlive(pid),
                "libvirtd \(pid) did not exit within 30 s; its signal state: \(HypervisorHost.signalState(pid))")

            // Commands keep flowing for 3 s (long enough for several failed reconnection attempts):
            // every one gets a result, a retryable connection error.
            var connectionErrors = 0
            var seen: Set<String> = []
            var disconnectedHeartbeat: WorkerMessage?
            let downAtLeast = ContinuousClock.now + .seconds(3)
            let downUntil = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < downAtLeast || (disconnectedHeartbeat == nil && ContinuousClock.now < downUntil) {
                for (op, machine) in [("status", Optional(name)), ("list", nil)] {
                    let x = try client.hypervisorRun(op, machine: machine)
                    #expect(x.result.ok == false, "libvirtd is not running: \(x.result)")
                    guard x.result.ok == false else { continue }
                    let e = try Self.libvirtError(client, x)
                    #expect(e["category"] == "connection", "while libvirtd is down: \(e)")
                    #expect(e["retryable"] == true, "\(e)")
                    connectionErrors += 1
                    seen.insert("\(e["code_name"]?.stringValue ?? "?")/\(e["domain_name"]?.stringValue ?? "?")")
                }
                // Receive for 100 ms between rounds (heartbeats, among others): a steady flow, not a flood.
                try client.collect(for: .milliseconds(100))
                disconnectedHeartbeat = try client.awaitMessage(timeout: .milliseconds(1)) {
                    $0.type == "heartbeat" && $0["libvirt"] == "disconnected" && $0.receivedAt > killedAt
                }
            }
            print("hypervisor tier: \(connectionErrors) commands answered while libvirtd was down, with \(seen.sorted())")
            #expect(connectionErrors >= 6, "commands answered with connection errors while libvirtd was down: \(connectionErrors)")
            let hb = try #require(disconnectedHeartbeat, "no heartbeat said libvirt disconnected\n\(client.diagnostics())")
            WorkerExpect.envelope(hb, worker: worker, type: "heartbeat", topic: "heartbeat")
            #expect(worker.isRunning, "the worker survives the loss of libvirtd\n\(worker.logTail())")

            // The daemon comes back (`libvirtd -d`); the worker reconnects by itself within seconds.
            try HypervisorHost.restartDaemon()
            let restartedAt = ContinuousClock.now
            var status: WorkerMessage?
            let upUntil = ContinuousClock.now + .seconds(20)
            while status == nil && ContinuousClock.now < upUntil {
                let x = try client.hypervisorRun("status", machine: name)
                if x.result.ok == true {
                    status = x.result
                } else {
                    let e = try Self.libvirtError(client, x)
                    #expect(e["category"] == "connection" && e["retryable"] == true, "while reconnecting: \(e)")
                    try client.collect(for: .milliseconds(200))
                }
            }
            let back = try #require(status, "no successful status within 20 s of the daemon's return\n\(client.diagnostics())")
            #expect(back.state == "shutoff" && back.data?["vcpus"] == 1, "\(back)")
            let reconnectTime = ContinuousClock.now - restartedAt
            print("hypervisor tier: the worker answered again \(reconnectTime) after libvirtd came back")
            #expect(reconnectTime < .seconds(10), "reconnected within seconds (the backoff is at most 5 s): \(reconnectTime)")
            _ = try client.waitFor("a connected heartbeat after the daemon's return", timeout: .seconds(10)) {
                $0.type == "heartbeat" && $0["libvirt"] == "connected" && $0.receivedAt > restartedAt
            }
            let list = try client.hypervisorRun("list").result
            #expect(list.ok == true, "\(list)")
            #expect(list.data?["machines"]?.arrayValue?.contains { $0["name"] == .string(name) } == true, "\(list)")
            #expect(worker.isRunning)
            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }

    // MARK: 6. kill -9 during a restore

    @Test("a worker killed -9 in the middle of a restore: the next start completes it")
    func killedDuringRestore() throws {
        try Self.withTier { guests in
            let state = try HypervisorStateDirectory()
            let numbers = [1, 2, 3, 4]
            try guests.define(numbers)

            // A table written by hand: four guests that should run, all shut off.
            let now = "2026-11-25T20:31:07.123Z"
            var machines: [String: JSONValue] = [:]
            for n in numbers {
                machines[guests.uuid(n)] = [
                    "name": .string(guests.name(n)), "desired": "running", "observed": "shutoff", "updated_at": .string(now),
                ]
            }
            let workerID = WorkerProcess.uniqueID(prefix: "hv")
            let table: JSONValue = ["version": 1, "worker": .string(workerID), "saved_at": .string(now), "machines": .object(machines)]
            try WorkerClient.encode(table).write(to: URL(fileURLWithPath: state.stateFile))

            // First run: one start every 1.5 s; killed -9 at the first outcome.
            let first: WorkerMessage
            do {
                let tap = try HypervisorEventTap()
                let (worker, _) = try Self.launch(
                    .hypervisor(id: workerID, stateFile: state.stateFile, extra: ["--restore-stagger-ms", "1500"]), tap: tap)
                first = try tap.waitFor("the first restore.outcome", timeout: .seconds(30)) { $0.type == "restore.outcome" }
                worker.signal(SIGKILL)
                #expect(worker.waitForExit(timeout: .seconds(10)) != nil)
                #expect(worker.terminatedBySignal, "killed by SIGKILL")
                #expect(first["action"] == "started", "\(first)")
                try tap.pump(timeoutMs: 100)
                #expect(tap.messages { $0.type == "restore.summary" }.isEmpty, "the restore did not finish before the kill")
                let running = try numbers.filter { try HypervisorHost.state(guests.name($0)) == "running" }
                #expect(running.count < numbers.count, "the kill came in the middle of the restore: running \(running)")
            }
            // The table survived the kill whole.
            let after = try state.table()
            #expect(after["machines"]?.objectValue?.count == numbers.count, "\(after)")
            for n in numbers { #expect(after["machines"]?[guests.uuid(n)]?["desired"] == "running", "\(after)") }

            // Second run on the same table: the restore completes. Outcomes that go out before the tap
            // is listening (an already running machine is decided at once) are read from `report`.
            let tap = try HypervisorEventTap()
            let (worker, client) = try Self.launch(.hypervisor(id: workerID, stateFile: state.stateFile), tap: tap)
            let summary = try tap.waitFor("restore.summary", timeout: .seconds(60)) { $0.type == "restore.summary" }
            #expect(summary["trigger"] == "startup" && summary["table"] == "present", "\(summary)")
            #expect(summary["total"] == 4, "\(summary)")
            #expect(summary["counts"]?["failed"] == 0 && summary["counts"]?["missing"] == 0, "\(summary)")
            let started = summary["counts"]?["started"]?.intValue ?? 0
            let already = summary["counts"]?["already_running"]?.intValue ?? 0
            #expect(started + already == 4, "\(summary)")
            #expect(already >= 1, "the machine started before the kill runs on: \(summary)")
            #expect(started >= 1, "the machines the killed restore did not reach are started now: \(summary)")
            let report = try client.hypervisorRun("report").result
            #expect(report.data?["restore"]?["restore_id"] == summary["restore_id"], "\(report)")
            let reported = report.data?["outcomes"]?.arrayValue ?? []
            #expect(reported.count == 4, "\(report)")
            for o in reported {
                #expect(["started", "already_running"].contains(o["action"]?.stringValue ?? ""), "\(o)")
            }
            let firstName = try #require(first["machine"]?.stringValue)
            #expect(
                reported.first { $0["machine"] == .string(firstName) }?["action"] == "already_running",
                "the machine whose start was published before the kill is already running: \(report)")
            let published = Self.outcomes(tap.received, restoreID: summary["restore_id"]?.stringValue ?? "")
            for (machine, o) in published {
                #expect(o.withoutEnvelope == reported.first { $0["machine"] == .string(machine) }, "published and reported agree: \(o)")
            }
            for n in numbers { #expect(try HypervisorHost.state(guests.name(n)) == "running", "\(guests.name(n))") }
            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }

    // MARK: 7. several hosts

    @Test("three workers behind one front-end PUB: cmd.<id> reaches only that worker, cmd.all every one, results attributed")
    func severalWorkers() throws {
        try Self.withTier { guests in
            let name = guests.name(1)
            try guests.define([1])

            // Ids where one is a prefix of the next: a SUB's prefix match would let cmd.<b> reach <a>.
            let base = WorkerProcess.uniqueID(prefix: "hv")
            let ids = [base, base + "1", base + "12"]
            let workers = try ids.map { try WorkerProcess.start(.hypervisor(id: $0, extra: ["--no-restore"]), readyTimeout: .seconds(30)) }
            let client = try WorkerClient(workers)
            client.timeout = .seconds(30)
            try client.sync(timeout: .seconds(30))
            func barrierAll() throws { for w in workers { try client.barrier(w) } }

            // cmd.all: every worker answers, each under its own topic and id.
            for (op, machine) in [("ping", Optional<String>.none), ("status", name)] {
                let id = client.nextID("all-\(op)")
                try client.publish(topic: "cmd.all", WorkerClient.encode(WorkerClient.command(op, id: id, machine: machine)))
                let results = try client.waitForCount(3, "results of \(id)") { $0.type == "result" && $0.id == id }
                #expect(Set(results.compactMap(\.worker)) == Set(ids), "\(results)")
                for r in results {
                    #expect(r.topic == "result.\(r.worker ?? "?")", "\(r)")
                    #expect(r.ok == true, "\(r)")
                    if op == "status" { #expect(r.state == "shutoff", "\(r)") }
                }
                let runs = Set(results.compactMap(\.run))
                #expect(runs.count == 3, "three processes, three runs: \(results)")
            }

            // cmd.<id>: only that worker executes.
            for (i, w) in workers.enumerated() {
                let id = client.nextID("only-\(i)")
                try client.publish(WorkerClient.command("status", id: id, machine: name), to: w)
                let r = try client.result(id, from: w.id)
                #expect(r.ok == true && r.topic == "result.\(w.id)", "\(r)")
                try barrierAll()
                let answers = client.messages { ($0.type == "result" || $0.type == "accepted") && $0.id == id }
                #expect(answers.allSatisfy { $0.worker == w.id }, "only \(w.id) took \(id): \(answers)")
                #expect(answers.count == 2, "one ack and one result: \(answers)")
            }

            // A state change through one worker: executed there only, seen by all as a machine.event.
            let startID = client.nextID("start")
            try client.publish(WorkerClient.command("start", id: startID, machine: name), to: workers[1])
            let started = try client.result(startID, from: ids[1])
            #expect(started.ok == true && started.changed == true && started.state == "running", "\(started)")
            try barrierAll()
            let startAnswers = client.messages { ($0.type == "result" || $0.type == "accepted") && $0.id == startID }
            #expect(startAnswers.allSatisfy { $0.worker == ids[1] } && startAnswers.count == 2, "\(startAnswers)")
            let events = try client.waitForCount(3, "machine.event started from every worker") {
                $0.type == "machine.event" && $0["machine"] == .string(name) && $0["event"] == "started"
            }
            #expect(Set(events.compactMap(\.worker)) == Set(ids), "\(events)")
            for e in events { #expect(e.topic == "machine.\(e.worker ?? "?")", "\(e)") }
            #expect(try HypervisorHost.state(name) == "running")

            let destroyID = client.nextID("destroy")
            try client.publish(WorkerClient.command("destroy", id: destroyID, machine: name), to: workers[2])
            let destroyed = try client.result(destroyID, from: ids[2])
            #expect(destroyed.ok == true && destroyed.changed == true && destroyed.state == "shutoff", "\(destroyed)")
            try barrierAll()
            #expect(client.messages { $0.type == "result" && $0.id == destroyID }.count == 1)

            for w in workers { #expect(w.stop() == 0, "\(w.logTail())") }
        }
    }
}
