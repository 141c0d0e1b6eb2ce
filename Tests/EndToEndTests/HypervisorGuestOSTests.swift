import ECPProtocol
import Foundation
import Testing

/// The hypervisor tier with guests that run an operating system (scripts/test-guest.sh): an ACPI
/// shutdown that the guest obeys, a reboot that boots it again, a paused start that boots only
/// once resumed. What a guest's OS does is read from its serial console.
extension HypervisorTests {
    /// `virDomainShutoffReason` values that `status` reports as `reason` for a shut-off machine.
    enum ShutoffReason {
        static let shutdown: Int64 = 1
        static let destroyed: Int64 = 2
    }

    /// `virsh domstate --reason`: "shut off (shutdown)", "running (booted)"...
    static func stateWithReason(_ name: String) throws -> String {
        try HypervisorHost.virshOK(["domstate", "--reason", name]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("start paused, then resume: the OS boots only once resumed; shutdown with wait_ms: the OS powers itself off (reason shutdown, no force)")
    func guestOSPausedStartAndShutdown() throws {
        try Self.withTier { guests in
            let name = guests.name(1)
            let (worker, client) = try Self.launch(.hypervisor())

            let define = try client.hypervisorRun("define", args: ["xml": .string(try guests.osXML(1))]).result
            try #require(define.ok == true, "\(define)")
            let paused = try client.hypervisorRun("start", machine: name, args: ["paused": true]).result
            #expect(paused.ok == true && paused.changed == true && paused.state == "paused", "\(paused)")
            // Its vCPU has not run a single instruction: the firmware has not even loaded the kernel.
            #expect(guests.consoleCount(1, "booted") == 0, "a paused guest boots nothing: \(guests.console(1))")
            let resume = try client.hypervisorRun("resume", machine: name).result
            #expect(resume.ok == true && resume.changed == true && resume.state == "running", "\(resume)")
            try guests.waitForConsole(1, "listening")

            let shutdown = try client.hypervisorRun("shutdown", machine: name, args: ["wait_ms": 30_000]).result
            #expect(shutdown.ok == true && shutdown.changed == true && shutdown.state == "shutoff", "\(shutdown)")
            #expect(shutdown.data?["forced"] == nil, "the guest powered itself off: \(shutdown)")
            #expect(guests.consoleCount(1, "powering off") == 1, "\(guests.console(1))")
            #expect(try Self.stateWithReason(name) == "shut off (shutdown)")
            let status = try client.hypervisorRun("status", machine: name).result
            #expect(status.state == "shutoff" && status.data?["reason"]?.intValue == ShutoffReason.shutdown, "\(status)")
            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }

    @Test("a guest whose OS ignores ACPI for its first seconds powers itself off within wait_ms: the request is sent again")
    func guestOSLateListenerShutdown() throws {
        try Self.withTier { guests in
            let name = guests.name(1)
            let (worker, client) = try Self.launch(.hypervisor(extra: ["--shutdown-retry-ms", "1000", "--log-level", "info"]))

            let define = try client.hypervisorRun("define", args: ["xml": .string(try guests.osXML(1, ignoreACPISeconds: 3))]).result
            try #require(define.ok == true, "\(define)")
            let start = try client.hypervisorRun("start", machine: name).result
            try #require(start.ok == true && start.state == "running", "\(start)")
            try guests.waitForConsole(1, "ignoring acpi")

            // The first request reaches a guest that is not listening and is lost.
            let (command, shutdown) = try client.hypervisorRun("shutdown", machine: name, args: ["wait_ms": 30_000])
            #expect(shutdown.ok == true && shutdown.changed == true && shutdown.state == "shutoff", "\(shutdown)")
            #expect(shutdown.data?["forced"] == nil, "the guest powered itself off: \(shutdown)")
            #expect(guests.consoleCount(1, "powering off") == 1, "\(guests.console(1))")
            #expect(try Self.stateWithReason(name) == "shut off (shutdown)")

            // Each repeat is logged, with the command's id.
            let id = try #require(command["id"]?.stringValue)
            let repeats = worker.log.split(separator: "\n").filter {
                $0.contains("shutdown request sent again") && $0.contains("\"command.id\":\"\(id)\"")
            }
            #expect(!repeats.isEmpty, "the request was sent again while the guest ignored it\n\(worker.logTail())")
            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }

    @Test("reboot: the guest's OS boots a second time and the machine stays running")
    func guestOSReboot() throws {
        try Self.withTier { guests in
            let name = guests.name(1)
            try guests.defineWithOS([1])
            let (worker, client) = try Self.launch(.hypervisor())

            let start = try client.hypervisorRun("start", machine: name).result
            try #require(start.ok == true && start.state == "running", "\(start)")
            try guests.waitForConsole(1, "listening")
            let reboot = try client.hypervisorRun("reboot", machine: name).result
            #expect(reboot.ok == true && reboot.changed == true && reboot.state == "running", "\(reboot)")
            try guests.waitForConsole(1, "booted", count: 2)
            try guests.waitForConsole(1, "listening", count: 2)
            #expect(try HypervisorHost.state(name) == "running")
            let status = try client.hypervisorRun("status", machine: name).result
            #expect(status.ok == true && status.state == "running", "\(status)")
            #expect(worker.stop() == 0, "\(worker.logTail())")
        }
    }
}
