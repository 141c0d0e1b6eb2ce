import ECPProtocol
import Foundation
import Testing
import WorkerLauncher
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

// Support for the real-hypervisor tier: whether `qemu:///system` answers, `virsh` behind the
// worker's back, test guests that are always removed, the libvirtd of scripts/libvirtd-up.sh, a
// lock that keeps two runs of the tier apart, and an events tap that is listening before a
// worker starts.

/// Why the hypervisor tier could not do what a test asked.
struct HypervisorError: Error, CustomStringConvertible {
    var description: String
}

/// What a finished external command printed.
struct HypervisorCommandOutput: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
    var ok: Bool { status == 0 }
    var text: String { stdout + stderr }
}

/// The host's real hypervisor: `qemu:///system` through `virsh`, and the daemon behind it.
enum HypervisorHost {
    static let uri = "qemu:///system"
    /// Marker written by scripts/libvirtd-up.sh when it started the running libvirtd.
    static let startedMarker = "/run/ecp-libvirtd/started"
    /// The pid file libvirtd writes when it runs as root.
    static let pidFile = "/run/libvirtd.pid"

    /// Whether `qemu:///system` answered when the tier first asked, and if not, why.
    struct Probe: Sendable {
        var available: Bool
        var reason: String
    }

    /// Asked once per test process: `virsh -c qemu:///system version`.
    static let probe: Probe = {
        guard let virsh = executable("virsh") else {
            return Probe(available: false, reason: "virsh is not installed (package libvirt-clients)")
        }
        do {
            let out = try run(virsh, ["-q", "-c", uri, "version"], timeout: .seconds(15))
            if out.ok { return Probe(available: true, reason: "") }
            let said = out.text.trimmingCharacters(in: .whitespacesAndNewlines)
            return Probe(
                available: false,
                reason: "`virsh -c \(uri) version` exited with \(out.status): \(said.isEmpty ? "(no output)" : said)"
                    + " (bring the daemon up with scripts/libvirtd-up.sh)")
        } catch {
            return Probe(available: false, reason: "`virsh -c \(uri) version` could not run: \(error)")
        }
    }()

    /// Whether a hypervisor that does not answer fails the tier instead of skipping it: in CI
    /// (`CI=true`) or when `ECP_REQUIRE_HYPERVISOR=1`.
    static var required: Bool {
        let env = ProcessInfo.processInfo.environment
        return env["CI"]?.lowercased() == "true" || env["ECP_REQUIRE_HYPERVISOR"] == "1"
    }

    /// The suite's condition: run when the hypervisor answers, or when it is required (each test
    /// then fails with the reason). A skip prints why.
    static var tierEnabled: Bool {
        if probe.available || required { return true }
        var first = false
        skipReported.update { reported in
            first = !reported
            reported = true
        }
        if first {
            print("Hypervisor tier skipped: \(probe.reason). Set ECP_REQUIRE_HYPERVISOR=1 (or CI=true) to make this a failure.")
        }
        return false
    }

    /// Whether the reason for skipping has been printed (once per test process).
    private static let skipReported = HypervisorBox(false)

    /// Throws the reason when the hypervisor does not answer (the tier is required here).
    static func require() throws {
        guard probe.available else {
            throw HypervisorError(description: "the hypervisor tier is required here (CI or ECP_REQUIRE_HYPERVISOR=1) but \(uri) does not answer: \(probe.reason)")
        }
    }

    /// Whether the running libvirtd was started by scripts/libvirtd-up.sh (and so may be killed).
    static var daemonIsOurs: Bool { FileManager.default.fileExists(atPath: startedMarker) }

    // MARK: running programs

    /// The full path of a program found on PATH (or the usual system directories).
    static func executable(_ name: String) -> String? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/usr/bin:/sbin:/bin"
        for dir in path.split(separator: ":") where !dir.isEmpty {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs a program to its end and returns what it printed. Output goes through temporary files,
    /// not pipes, so a daemon that a script leaves behind holding them cannot block the read. A
    /// program still running after `timeout` is killed (by its pid) and reported as an error.
    static func run(_ executable: String, _ arguments: [String], timeout: Duration = .seconds(60)) throws -> HypervisorCommandOutput {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ecp-hv-run-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outURL = dir.appendingPathComponent("out"), errURL = dir.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        let done = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in done.signal() }
        try process.run()
        try? out.close()
        try? err.close()
        let ms = Int(timeout.components.seconds * 1000)
        if done.wait(timeout: .now() + .milliseconds(ms)) == .timedOut {
            kill(process.processIdentifier, SIGKILL)
            _ = done.wait(timeout: .now() + 5)
            throw HypervisorError(description: "\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout)")
        }
        let stdout = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        return HypervisorCommandOutput(status: process.terminationStatus, stdout: stdout, stderr: stderr)
    }

    /// `virsh -c qemu:///system <arguments>`.
    @discardableResult
    static func virsh(_ arguments: [String], timeout: Duration = .seconds(60)) throws -> HypervisorCommandOutput {
        guard let virsh = executable("virsh") else { throw HypervisorError(description: "virsh is not installed") }
        return try run(virsh, ["-q", "-c", uri] + arguments, timeout: timeout)
    }

    /// `virsh` that must succeed.
    @discardableResult
    static func virshOK(_ arguments: [String], timeout: Duration = .seconds(60)) throws -> HypervisorCommandOutput {
        let out = try virsh(arguments, timeout: timeout)
        guard out.ok else {
            throw HypervisorError(description: "virsh \(arguments.joined(separator: " ")) failed (\(out.status)): \(out.text)")
        }
        return out
    }

    /// Runs several `virsh` commands at once (a destroy takes about two seconds here) and throws
    /// the first failure.
    static func virshAllOK(_ commands: [[String]]) throws {
        let results = HypervisorBox<[Result<HypervisorCommandOutput, any Error>?]>(Array(repeating: nil, count: commands.count))
        DispatchQueue.concurrentPerform(iterations: commands.count) { i in
            let r = Result { try virshOK(commands[i]) }
            results.update { $0[i] = r }
        }
        for r in results.value { _ = try r?.get() }
    }

    /// Whether the hypervisor answers now.
    static var answers: Bool {
        (try? virsh(["version"], timeout: .seconds(10)).ok) ?? false
    }

    /// A guest's state in the protocol's words (`running`, `paused`, `shutoff`...), nil when
    /// libvirt does not know the guest.
    static func state(_ name: String) throws -> String? {
        let out = try virsh(["domstate", name])
        guard out.ok else {
            if out.text.contains("failed to get domain") || out.text.contains("Domain not found") { return nil }
            throw HypervisorError(description: "virsh domstate \(name) failed (\(out.status)): \(out.text)")
        }
        switch out.stdout.trimmingCharacters(in: .whitespacesAndNewlines) {
        case "shut off": return "shutoff"
        case "in shutdown": return "shutdown"
        case "no state": return "nostate"
        case "idle": return "blocked"
        case let other: return other
        }
    }

    /// Polls `virsh domstate` every 50 ms until the guest is in `state` (nil: not defined), at
    /// most `timeout`; throws with the last state seen otherwise.
    static func waitForState(_ name: String, _ state: String?, timeout: Duration = .seconds(20)) throws {
        let until = ContinuousClock.now + timeout
        var last: String?
        while true {
            last = try Self.state(name)
            if last == state { return }
            if ContinuousClock.now >= until {
                throw HypervisorError(description: "guest \(name) is \(last ?? "undefined") after \(timeout), expected \(state ?? "undefined")")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    // MARK: the daemon

    /// Starts libvirtd again (`libvirtd -d`) after a test stopped the one scripts/libvirtd-up.sh
    /// had started, unless a live libvirtd is there already, and waits (at most `timeout`) until
    /// `qemu:///system` answers. The script itself is not used for this: it refuses to start a
    /// daemon while `pgrep -x libvirtd` sees one, and the stopped daemon can linger as a zombie
    /// until the container's init reaps it.
    static func restartDaemon(timeout: Duration = .seconds(30)) throws {
        let until = ContinuousClock.now + timeout
        var started = false
        while !answers {
            // A daemon still on its way out is waited for; once none is alive, one is started.
            if !started, (try? daemonPID()).map(isAlive) != true {
                guard let libvirtd = executable("libvirtd") else { throw HypervisorError(description: "libvirtd is not installed") }
                let status = try spawnAndWait(libvirtd, ["-d"], timeout: .seconds(30))
                guard status == 0 else { throw HypervisorError(description: "libvirtd -d exited with status \(status) (see /var/log/libvirt)") }
                started = true
                continue
            }
            if ContinuousClock.now >= until {
                throw HypervisorError(description: "\(uri) does not answer after \(timeout) (libvirtd \(started ? "started" : "not started") by the test)")
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// Runs a program that daemonizes (its parent exits once the daemon is up) and returns the
    /// parent's exit status. `Process` is not used: it learns of the end of its child through a
    /// descriptor that a daemon would inherit and keep open for ever, and its child inherits the
    /// signal mask of the calling thread, where the test runtime blocks SIGTERM (a daemon started
    /// so ignores SIGTERM). Here the child gets /dev/null as standard input and output, no other
    /// descriptor of this process, an empty signal mask and default signal actions.
    static func spawnAndWait(_ path: String, _ arguments: [String], timeout: Duration) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        for fd: Int32 in 0...2 {
            posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
        }
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        for fd in open.compactMap({ Int32($0) }) where fd > 2 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = argv.withUnsafeBufferPointer { posix_spawn(&pid, path, &actions, &attributes, UnsafeMutablePointer(mutating: $0.baseAddress!), environ) }
        guard rc == 0 else { throw HypervisorError(description: "posix_spawn \(path): error \(rc)") }
        let until = ContinuousClock.now + timeout
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid { break }
            if r < 0 { throw HypervisorError(description: "waitpid \(pid): errno \(errno)") }
            if ContinuousClock.now >= until {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                throw HypervisorError(description: "\(path) \(arguments.joined(separator: " ")) did not return within \(timeout)")
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        // WIFEXITED / WEXITSTATUS
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -(status & 0x7f)
    }

    /// The pid of the running libvirtd, from its pid file, checked against /proc.
    static func daemonPID() throws -> pid_t {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else { throw HypervisorError(description: "no libvirtd pid in \(pidFile)") }
        let comm = (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard comm == "libvirtd" else {
            throw HypervisorError(description: "\(pidFile) names pid \(pid), which is \(comm ?? "not running"), not libvirtd")
        }
        return pid
    }

    /// The signal lines of a process's status (a daemon started with SIGTERM blocked ignores it).
    static func signalState(_ pid: pid_t) -> String {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        return status.split(separator: "\n").filter { $0.hasPrefix("Sig") || $0.hasPrefix("ShdPnd") }.joined(separator: ", ")
    }

    /// Whether a process exists.
    static func isAlive(_ pid: pid_t) -> Bool {
        FileManager.default.fileExists(atPath: "/proc/\(pid)")
            && ((try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.contains(") Z ") != true)
    }
}

/// A value shared between threads under a lock.
final class HypervisorBox<Value>: @unchecked Sendable {
    // Safety: every access goes through `lock`.
    private let lock = NSLock()
    private var _value: Value
    init(_ value: Value) { _value = value }
    var value: Value { lock.withLock { _value } }
    func update(_ body: (inout Value) -> Void) { lock.withLock { body(&_value) } }
}

/// Keeps two runs of the tier (two `swift test` processes on one host) apart: one holds the lock
/// for the duration of a test, the other waits. Tests kill and restart the shared libvirtd and
/// record every guest of the host in state tables, so they must not overlap.
final class HypervisorTierLock {
    static let path = "/tmp/ecp-hypervisor-tier.lock"
    private let fd: Int32

    init(timeout: Duration = .seconds(600)) throws {
        fd = open(Self.path, O_CREAT | O_RDWR | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw HypervisorError(description: "cannot open \(Self.path): errno \(errno)") }
        let until = ContinuousClock.now + timeout
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if ContinuousClock.now >= until {
                close(fd)
                throw HypervisorError(description: "another run of the hypervisor tier held \(Self.path) for \(timeout)")
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

/// The guests of one test: names `ecp-test-<8 hex>-<n>` that cannot collide with anything else on
/// the host, defined by the test, and all removed by ``cleanup()`` (destroy + undefine), which
/// touches nothing whose name lacks the prefix.
final class HypervisorGuests: Sendable {
    /// `ecp-test-<8 hex>`.
    let prefix: String
    private let uuidBase: String

    init() {
        let hex = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        prefix = "ecp-test-\(hex.prefix(8))"
        // UUIDs of the form xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxNN: random, the guest number last.
        uuidBase = "\(hex.dropFirst(8).prefix(8))-\(hex.dropFirst(16).prefix(4))-4\(hex.dropFirst(20).prefix(3))-8\(hex.dropFirst(23).prefix(3))-\(hex.dropFirst(26).prefix(6))"
    }

    /// The name of guest `n`.
    func name(_ n: Int) -> String { "\(prefix)-\(n)" }

    /// The UUID of guest `n` (lower case).
    func uuid(_ n: Int) -> String { uuidBase + String(format: "%06x", n) }

    /// The domain XML of guest `n`: 32 MiB, one vCPU, no disk, no NIC, QEMU without KVM. With no
    /// operating system it ignores ACPI power-off.
    func xml(_ n: Int, withUUID: Bool = true) -> String {
        Self.xml(name: name(n), uuid: withUUID ? uuid(n) : nil)
    }

    static func xml(name: String, uuid: String?) -> String {
        "<domain type='qemu'><name>\(name)</name>\(uuid.map { "<uuid>\($0)</uuid>" } ?? "")"
            + "<memory unit='MiB'>32</memory><vcpu>1</vcpu>"
            + "<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>"
            + "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>"
    }

    // MARK: guests with an operating system

    /// Where the consoles of this test's OS guests are written (one file per guest, appended to
    /// across boots).
    var consoleDirectory: String { "/tmp/\(prefix)-consoles" }

    /// The console file of guest `n`.
    func consolePath(_ n: Int) -> String { "\(consoleDirectory)/\(n).log" }

    /// The domain XML of guest `n` with the test guest's OS (scripts/test-guest.sh): 96 MiB,
    /// direct kernel boot, ACPI, and its serial console in ``consolePath(_:)``. With
    /// `ignoreACPISeconds`, its OS keeps the power button closed that long after booting.
    func osXML(_ n: Int, ignoreACPISeconds: Int? = nil) throws -> String {
        let image = try TestGuestImage.located.get()
        try FileManager.default.createDirectory(atPath: consoleDirectory, withIntermediateDirectories: true)
        let cmdline = "console=ttyS0 quiet" + (ignoreACPISeconds.map { " ecp_ignore_acpi_s=\($0)" } ?? "")
        return "<domain type='qemu'><name>\(name(n))</name><uuid>\(uuid(n))</uuid>"
            + "<memory unit='MiB'>96</memory><vcpu>1</vcpu>"
            + "<os><type arch='x86_64' machine='pc'>hvm</type><kernel>\(image.kernel)</kernel>"
            + "<initrd>\(image.initrd)</initrd><cmdline>\(cmdline)</cmdline></os>"
            + "<features><acpi/></features>"
            + "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
            + "<serial type='file'><source path='\(consolePath(n))' append='on'/><target port='0'/></serial>"
            + "</devices></domain>"
    }

    /// What guest `n`'s OS has written on its console so far, one line per element.
    func console(_ n: Int) -> [String] {
        let text = (try? String(contentsOfFile: consolePath(n), encoding: .utf8)) ?? ""
        return text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// How often guest `n`'s OS has said `line` (`ecp-test-guest: <line>`).
    func consoleCount(_ n: Int, _ line: String) -> Int {
        console(n).filter { $0 == "ecp-test-guest: \(line)" }.count
    }

    /// Waits until guest `n`'s OS has said `line` at least `count` times. The console is a file
    /// that QEMU appends to; it is read every 50 ms.
    func waitForConsole(_ n: Int, _ line: String, count: Int = 1, timeout: Duration = .seconds(60)) throws {
        let until = ContinuousClock.now + timeout
        while consoleCount(n, line) < count {
            if ContinuousClock.now >= until {
                throw HypervisorError(description: "guest \(name(n)) said '\(line)' \(consoleCount(n, line)) times in \(timeout), expected \(count); its console:\n"
                    + console(n).suffix(20).joined(separator: "\n"))
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
    }

    /// Defines guests with the test guest's OS with `virsh define`.
    func defineWithOS(_ numbers: [Int]) throws {
        try define(numbers) { try osXML($0) }
    }

    /// Defines guests with `virsh define` (behind any worker's back).
    func define(_ numbers: [Int]) throws {
        try define(numbers) { xml($0) }
    }

    private func define(_ numbers: [Int], xml: (Int) throws -> String) throws {
        for n in numbers {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(name(n)).xml")
            try xml(n).write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            try HypervisorHost.virshOK(["define", file.path])
        }
    }

    /// The names of the host's guests that carry this test's prefix.
    func existing() throws -> [String] {
        let out = try HypervisorHost.virshOK(["list", "--all", "--name"])
        return out.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.hasPrefix(prefix + "-") }
    }

    /// Destroys and undefines every guest with this test's prefix, all at once. Failures are
    /// printed, not thrown: it runs in `defer`, also after a failure.
    func cleanup() {
        let names: [String]
        do {
            names = try existing()
        } catch {
            print("hypervisor tier: cannot list guests to remove those of \(prefix): \(error)")
            return
        }
        defer { try? FileManager.default.removeItem(atPath: consoleDirectory) }
        DispatchQueue.concurrentPerform(iterations: names.count) { i in
            let name = names[i]
            guard name.hasPrefix(prefix + "-") else { return }
            do {
                if let state = try HypervisorHost.state(name), state != "shutoff" {
                    try HypervisorHost.virsh(["destroy", name])
                }
                let out = try HypervisorHost.virsh(["undefine", name])
                if !out.ok, try HypervisorHost.state(name) != nil {
                    print("hypervisor tier: cannot undefine \(name): \(out.text)")
                }
            } catch {
                print("hypervisor tier: cannot remove \(name): \(error)")
            }
        }
    }
}

/// The test guest's OS: the kernel and initramfs that scripts/test-guest.sh makes from Debian's
/// packages and caches. Located once per test process by running the script, which builds them
/// the first time and afterwards only prints where they are.
enum TestGuestImage {
    static let located: Result<(kernel: String, initrd: String), HypervisorError> = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let script = root.appendingPathComponent("scripts/test-guest.sh").path
        do {
            let out = try HypervisorHost.run("/bin/bash", [script], timeout: .seconds(600))
            let dir = out.stdout.split(separator: "\n").last.map(String.init) ?? ""
            guard out.ok, !dir.isEmpty else {
                return .failure(HypervisorError(description: "scripts/test-guest.sh exited with \(out.status): \(out.stderr)"))
            }
            let kernel = dir + "/vmlinuz", initrd = dir + "/initrd.img"
            guard FileManager.default.fileExists(atPath: kernel), FileManager.default.fileExists(atPath: initrd) else {
                return .failure(HypervisorError(description: "scripts/test-guest.sh named \(dir), which holds no vmlinuz and initrd.img"))
            }
            return .success((kernel, initrd))
        } catch let error as HypervisorError {
            return .failure(error)
        } catch {
            return .failure(HypervisorError(description: "scripts/test-guest.sh could not run: \(error)"))
        }
    }()
}

/// A temporary directory for a state table shared by several worker runs.
final class HypervisorStateDirectory {
    let url: URL
    var stateFile: String { url.appendingPathComponent("state.json").path }

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("ecp-hv-state-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// The state table as JSON.
    func table() throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: URL(fileURLWithPath: stateFile)))
    }
}

/// A SUB socket that is connecting before a worker starts: it connects to a port chosen before
/// the worker is launched (the worker is then told `--events=@<that port>`), and libzmq retries
/// every 100 ms until the worker binds. So it hears a startup restore that the harness's client,
/// which connects once the worker answers `ping`, would mostly miss. The worker's very first
/// messages can still go out before the connection is made (the late joiner): what the tap heard
/// is checked against `report`, which holds everything.
final class HypervisorEventTap {
    let address: String
    private let context: Context
    private let subscriber: Socket
    private(set) var received: [WorkerMessage] = []

    init() throws {
        address = "tcp://127.0.0.1:\(try SpawnedWorker.freePorts(1)[0])"
        context = try Context()
        subscriber = try context.makeSocket(.sub)
        try subscriber.setLinger(milliseconds: 0)
        try subscriber.setReceiveHighWaterMark(0)
        try subscriber.setMaxMessageSize(-1)
        try subscriber.subscribe("")
        try subscriber.connect(address)
    }

    deinit { subscriber.close() }

    /// The worker option that points its events socket here.
    var workerArguments: [String] { ["--events=@\(address)"] }

    func pump(timeoutMs: Int) throws {
        let events = try poll([.socket(subscriber)], timeoutMs: timeoutMs)
        guard events[0].contains(.readable) else { return }
        while let frames = try subscriber.receive(dontWait: true) {
            let topic = frames.count > 1 ? String(decoding: frames[0], as: UTF8.self) : ""
            received.append(WorkerMessage(topic: topic, body: frames.last ?? Data()))
        }
    }

    /// The first message (looking back too) that satisfies `predicate`, within `timeout`.
    func waitFor(_ what: String, timeout: Duration, where predicate: (WorkerMessage) -> Bool) throws -> WorkerMessage {
        var checked = 0
        let until = ContinuousClock.now + timeout
        while true {
            if let found = received[checked...].first(where: predicate) { return found }
            checked = received.count
            if ContinuousClock.now >= until {
                throw HypervisorError(description: "timed out after \(timeout) waiting for \(what); the tap heard:\n"
                    + received.suffix(30).map(\.description).joined(separator: "\n"))
            }
            try pump(timeoutMs: max(1, min(100, WorkerClient.milliseconds(until - .now))))
        }
    }

    /// Every message heard so far that satisfies `predicate`.
    func messages(where predicate: (WorkerMessage) -> Bool) -> [WorkerMessage] {
        received.filter(predicate)
    }
}

extension WorkerClient {
    /// Moves the client's events subscriber from the address the harness gave the worker to the
    /// one it really publishes on (a worker launched with ``HypervisorEventTap/workerArguments``).
    func hypervisorListen(onEvents address: String, insteadOf old: String) throws {
        try subscriber.disconnect(old)
        try subscriber.connect(address)
    }

    /// Sends a command over the control socket, checks the ack/result/reply shape, and returns
    /// the result.
    @discardableResult
    func hypervisorRun(
        _ op: String, machine: String? = nil, args: JSONValue? = nil, via channel: CommandChannel = .control,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> (command: JSONValue, result: WorkerMessage) {
        let command = Self.command(op, id: nextID("hv-\(op)"), machine: machine, args: args)
        let x = try execute(command, via: channel)
        WorkerExpect.exchange(x, command: command, worker: worker, sourceLocation: sourceLocation)
        return (command, x.result)
    }
}

extension WorkerLaunchOptions {
    /// Options for a worker on the real hypervisor.
    static func hypervisor(id: String = WorkerProcess.uniqueID(prefix: "hv"), stateFile: String? = nil, extra: [String] = []) -> WorkerLaunchOptions {
        var o = WorkerLaunchOptions()
        o.id = id
        o.machines = []
        o.libvirtURI = HypervisorHost.uri
        o.stateFilePath = stateFile
        o.extraArguments = extra
        return o
    }
}
