import ArgumentParser
import Foundation
import Libvirt
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `--uri` and `--guests`: a run on a real libvirt daemon, with guests of the bench's own.
struct HostOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Start the worker on this libvirt URI instead of the test driver: a real daemon such as qemu:///system.",
        valueName: "uri"))
    var uri: String?

    @Option(help: ArgumentHelp(
        "With --uri: define N tiny guests of the bench's own (ecp-bench-<8 hex>-<n>: 32 MiB, 1 vCPU, no disk, no NIC, no OS), destroyed and undefined at the end, also on failure or interruption. throughput and latency start them first and send the ops that need a machine to them (unless --machine or --machines names others); restore leaves them shut off for the worker to start.",
        valueName: "N"))
    var guests: Int?

    func validate() throws {
        if let n = guests, !(1...HostGuests.maximum).contains(n) {
            throw ValidationError("--guests must be between 1 and \(HostGuests.maximum), got \(n)")
        }
        if guests != nil && uri == nil { throw ValidationError("--guests needs --uri: the guests are defined on that host") }
        if let uri, uri.hasPrefix("test:") {
            throw ValidationError("--uri is for a real libvirt daemon (qemu:///system); the test driver is the default, and --test-machines gives it machines")
        }
    }

    /// `--uri` and `--guests` set up the host of a worker the bench starts.
    func check(spawn: Bool, testMachines: Int?) throws {
        if uri != nil && !spawn { throw ValidationError("--uri needs --spawn: it sets up the started worker's host") }
        if uri != nil && testMachines != nil { throw ValidationError("give --uri or --test-machines, not both") }
    }
}

/// The host a run measured, for the table and the JSON.
struct HostInfo: Encodable, Sendable {
    var uri: String
    /// Guests the bench defined for the run.
    var guests: Int
    /// The driver's name, e.g. QEMU.
    var hypervisor: String
    var hypervisorVersion: String?
    /// The guests' domain type: kvm, or qemu (TCG) when the host has no usable /dev/kvm.
    var domainType: String?
    var emulator: String?
    /// How long defining and starting the guests took, before the run (load runs).
    var guestsStartS: Double?

    enum CodingKeys: String, CodingKey {
        case uri, guests, hypervisor, emulator
        case guestsStartS = "guests_start_s"
        case hypervisorVersion = "hypervisor_version"
        case domainType = "domain_type"
    }

    var summary: String {
        "\(uri), \(hypervisor)" + (hypervisorVersion.map { " \($0)" } ?? "")
            + (guests > 0 ? ", \(guests) guests of the bench" + (domainType.map { " (\($0), 32 MiB, 1 vCPU)" } ?? "") : "")
            + (guestsStartS.map { String(format: ", started in %.1f s", $0) } ?? "")
    }
}

/// Tiny guests the bench defines on a real libvirt host, named `ecp-bench-<8 hex>-<n>` so that they
/// cannot collide with anything else there. ``remove()`` destroys and undefines exactly those, and
/// ``Cleanup`` calls it on every way out, the signal handler included.
///
/// Every libvirt call that creates or removes a guest runs under one lock, and ``remove()`` closes
/// the set: a signal that arrives while the main thread is defining or starting guests waits for
/// that call, and nothing is defined or started after the removal.
final class HostGuests: Sendable {
    static let maximum = 256

    struct Guest: Sendable {
        var name: String
        var uuid: String
    }

    let uri: String
    let prefix: String
    let connection: Connection
    let hypervisor: String
    let hypervisorVersion: String?
    let emulator: String
    let arch: String

    private struct State: Sendable {
        var guests: [Guest] = []
        /// The domain type of the definitions: kvm falls back to qemu when a start fails with it.
        var domainType: String
        var removed = false
    }

    private let state: Mutex<State>

    /// Connects to `uri` and reads what guests it can run; registers for ``Cleanup``.
    init(uri: String) throws {
        do {
            connection = try Connection(uri: uri)
            hypervisor = try connection.hypervisorType()
        } catch {
            throw BenchFailure(2, "cannot connect to \(uri): \(error)")
        }
        self.uri = uri
        hypervisorVersion = try? connection.hypervisorVersion()
        var name = utsname()
        uname(&name)
        arch = withUnsafeBytes(of: &name.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let offer = Self.guestOffer(capabilities: (try? connection.capabilities()) ?? "", arch: arch)
        emulator = offer.emulator ?? "/usr/bin/qemu-system-x86_64"
        let kvm = FileManager.default.fileExists(atPath: "/dev/kvm") && (offer.kvm ?? true)
        state = Mutex(State(domainType: kvm ? "kvm" : "qemu"))
        let hex = (0..<4).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        prefix = "ecp-bench-\(hex)"
        Cleanup.hosts.withLock { $0.append(self) }
    }

    var domainType: String { state.withLock { $0.domainType } }
    var guests: [Guest] { state.withLock { $0.guests } }

    func info() -> HostInfo {
        let count = guests.count
        return HostInfo(
            uri: uri, guests: count, hypervisor: hypervisor, hypervisorVersion: hypervisorVersion,
            domainType: count > 0 ? domainType : nil, emulator: count > 0 ? emulator : nil)
    }

    /// Defines `count` guests, shut off, and starts them when `start`.
    func create(count: Int, start: Bool) throws {
        try state.withLock { s in
            guard !s.removed else { throw BenchFailure(1, "interrupted") }
            for n in 1...count {
                let guest = Guest(name: "\(prefix)-\(n)", uuid: UUID().uuidString.lowercased())
                try define(guest, type: s.domainType)
                s.guests.append(guest)
            }
        }
        if start { try startAll() }
    }

    /// Starts every guest that is shut off: the first alone, the others at once (a QEMU start
    /// waits mostly on the daemon and the new process, not on this thread). A first start that
    /// fails under kvm (a /dev/kvm the daemon cannot use, as in some nested VMs) makes every guest
    /// qemu (TCG) and tries again.
    func startAll() throws {
        try state.withLock { s in
            guard !s.removed else { throw BenchFailure(1, "interrupted") }
            guard let guest = s.guests.first else { return }
            do {
                let domain = try connection.lookup(name: guest.name)
                if try !domain.isActive() { try domain.create() }
            } catch let error as LibvirtError where s.domainType == "kvm" {
                note("guest \(guest.name) does not start under kvm (\(error)); the guests run under qemu (TCG) instead")
                s.domainType = "qemu"
                for g in s.guests { try define(g, type: "qemu") }
                do {
                    try connection.lookup(name: guest.name).create()
                } catch {
                    throw BenchFailure(2, "cannot start guest \(guest.name) on \(uri): \(error)")
                }
            } catch {
                throw BenchFailure(2, "cannot start guest \(guest.name) on \(uri): \(error)")
            }
            let failures = forEachAtOnce(Array(s.guests.dropFirst())) { domain in
                if try !domain.isActive() { try domain.create() }
            }
            if let (name, error) = failures.first { throw BenchFailure(2, "cannot start guest \(name) on \(uri): \(error)") }
        }
    }

    /// Runs `body` on the domain of each guest, several at once; returns the failures.
    private func forEachAtOnce(_ guests: [Guest], _ body: @Sendable (Domain) throws -> Void) -> [(String, any Error)] {
        let failures = Mutex<[(String, String)]>([])
        DispatchQueue.concurrentPerform(iterations: guests.count) { k in
            do {
                try body(try connection.lookup(name: guests[k].name))
            } catch {
                let text = "\(error)"
                failures.withLock { $0.append((guests[k].name, text)) }
            }
        }
        return failures.withLock { $0 }.map { ($0.0, BenchFailure(2, $0.1) as any Error) }
    }

    /// Powers every running guest off (they stay defined).
    func destroyAll() throws {
        try state.withLock { s in
            let failures = forEachAtOnce(s.guests) { domain in
                if try domain.isActive() { try domain.destroy() }
            }
            if let (name, error) = failures.first { throw BenchFailure(1, "cannot destroy guest \(name) on \(uri): \(error)") }
        }
    }

    /// Destroys and undefines every guest of the bench; nothing is created afterwards. Returns the
    /// names that could not be removed.
    @discardableResult
    func remove() -> [String] {
        state.withLock { s in
            s.removed = true
            _ = forEachAtOnce(s.guests) { domain in
                if try domain.isActive() { try domain.destroy() }
            }
            var left: [String] = []
            for guest in s.guests {
                guard let domain = try? connection.lookup(name: guest.name) else { continue }
                if (try? domain.isActive()) == true { try? domain.destroy() }
                if (try? domain.isPersistent()) == true { try? domain.undefine() }
                if let again = try? connection.lookup(name: guest.name) {
                    // Started in the moment between the two calls: now transient, so this removes it.
                    try? again.destroy()
                    if (try? connection.lookup(name: guest.name)) != nil { left.append(guest.name) }
                }
            }
            s.guests.removeAll()
            return left
        }
    }

    private func define(_ guest: Guest, type: String) throws {
        do {
            _ = try connection.define(xml: xml(guest, type: type))
        } catch {
            throw BenchFailure(2, "cannot define guest \(guest.name) on \(uri): \(error)")
        }
    }

    /// No OS and no disk: the guest sits in its firmware, the least a real guest can cost.
    func xml(_ guest: Guest, type: String) -> String {
        "<domain type='\(type)'><name>\(guest.name)</name><uuid>\(guest.uuid)</uuid>"
            + "<memory unit='MiB'>32</memory><vcpu>1</vcpu>"
            + "<os><type arch='\(arch)'>hvm</type></os>"
            + "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>"
            + "<devices><emulator>\(emulator)</emulator><memballoon model='none'/></devices></domain>"
    }

    /// The emulator of hvm guests of `arch` in the capabilities XML, and whether kvm is offered for them.
    static func guestOffer(capabilities xml: String, arch: String) -> (emulator: String?, kvm: Bool?) {
        for block in xml.components(separatedBy: "<guest>").dropFirst() {
            let guest = block.components(separatedBy: "</guest>")[0]
            guard guest.contains("<os_type>hvm</os_type>"),
                guest.contains("<arch name='\(arch)'>") || guest.contains("<arch name=\"\(arch)\">")
            else { continue }
            var emulator: String?
            if let open = guest.range(of: "<emulator>"), let close = guest.range(of: "</emulator>", range: open.upperBound..<guest.endIndex) {
                emulator = String(guest[open.upperBound..<close.lowerBound])
            }
            return (emulator, guest.contains("<domain type='kvm'") || guest.contains("<domain type=\"kvm\""))
        }
        return (nil, nil)
    }
}
