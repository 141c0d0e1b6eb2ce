import Foundation
import Testing

/// The systemd units in scripts/systemd: `systemd-analyze verify` finds nothing to say about
/// them, and they are ordered and set up the way the README's "Host reboot" relies on.
///
/// `verify` checks that the executables exist, so the units are copied to a temporary
/// directory with /usr/local/bin/ecp-worker and /usr/local/bin/ecpctl pointing at the built
/// binaries. It needs no running systemd (it works in a container); it comes with Debian's
/// `systemd` package (`scripts/install-deps.sh --test`).
@Suite("systemd units", .enabled(if: SystemdUnits.isLinux))
struct SystemdUnitTests {
    @Test("systemd-analyze verify accepts both units without a warning")
    func verify() throws {
        let copies = try SystemdUnits.installedCopies()
        defer { try? FileManager.default.removeItem(at: copies.directory) }
        let result = try SystemdUnits.verify(copies.units)
        let complaints = SystemdUnits.complaints(in: result.output, about: copies)
        #expect(result.status == 0, "systemd-analyze verify exited \(result.status):\n\(result.output)")
        #expect(complaints.isEmpty, "systemd-analyze verify:\n\(complaints.joined(separator: "\n"))")
    }

    @Test("the check is not blind: a unit with an unknown key and a missing executable is reported")
    func verifyReportsProblems() throws {
        let copies = try SystemdUnits.installedCopies()
        defer { try? FileManager.default.removeItem(at: copies.directory) }
        let unit = copies.directory.appendingPathComponent("ecp-worker.service")
        var text = try String(contentsOf: unit, encoding: .utf8)
        text = text.replacingOccurrences(of: "Restart=on-failure", with: "Restart=on-failure\nRestartEverything=yes")
        text = text.replacingOccurrences(of: "ExecStart=\(copies.worker)", with: "ExecStart=/nonexistent/ecp-worker")
        try text.write(to: unit, atomically: true, encoding: .utf8)
        let result = try SystemdUnits.verify([unit])
        let complaints = SystemdUnits.complaints(in: result.output, about: copies)
        #expect(complaints.contains { $0.contains("RestartEverything") }, "\(result.output)")
        #expect(complaints.contains { $0.contains("/nonexistent/ecp-worker") }, "\(result.output)")
    }

    @Test("the worker unit: after libvirt, restarted on failure, state under /var/lib/ecp-worker, local settings read")
    func workerUnit() throws {
        let unit = try SystemdUnits.settings("ecp-worker.service")
        #expect(unit["After"]?.contains("libvirtd.service") == true, "\(unit)")
        #expect(unit["After"]?.contains("network-online.target") == true, "\(unit)")
        #expect(unit["Requires"] == nil && unit["BindsTo"] == nil, "a libvirtd restart must not restart the worker")
        #expect(unit["ExecStart"] == ["/usr/local/bin/ecp-worker"], "\(unit)")
        #expect(unit["Restart"] == ["on-failure"], "\(unit)")
        #expect(unit["StateDirectory"] == ["ecp-worker"], "\(unit)")
        let environment = unit["Environment"] ?? []
        #expect(environment.contains("ECP_STATE_FILE=/var/lib/ecp-worker/state.json"), "\(unit)")
        #expect(environment.contains("ECP_LIBVIRT_URI=qemu:///system"), "\(unit)")
        #expect(environment.contains("ECP_CONTROL=@tcp://127.0.0.1:5557"), "\(unit)")
        #expect(unit["EnvironmentFile"] == ["-/etc/default/ecp-worker"], "\(unit)")
        #expect(unit["WantedBy"] == ["multi-user.target"], "\(unit)")
    }

    @Test("the host-stop unit: ordered like libvirt-guests, stops the machines at shutdown through the worker's control socket")
    func hostStopUnit() throws {
        let unit = try SystemdUnits.settings("ecp-host-stop.service")
        let after = unit["After"] ?? []
        for dependency in ["libvirtd.service", "ecp-worker.service"] {
            #expect(after.contains(dependency), "\(unit)")
        }
        #expect(unit["Wants"] == ["ecp-worker.service"], "\(unit)")
        #expect(unit["Requires"] == nil && unit["BindsTo"] == nil && unit["PartOf"] == nil, "a worker restart must not stop the machines")
        #expect(unit["Type"] == ["oneshot"] && unit["RemainAfterExit"] == ["yes"], "\(unit)")
        #expect(unit["ExecStart"] == ["/bin/true"], "\(unit)")
        #expect(unit["ExecStop"] == ["/usr/local/bin/ecpctl host-stop"], "\(unit)")
        #expect(unit["Environment"]?.contains("ECPCTL_CONTROL=>tcp://127.0.0.1:5557") == true, "\(unit)")
        #expect(unit["WantedBy"] == ["multi-user.target"], "\(unit)")
        // Long enough for many ACPI waits, and below the 30 minutes after which systemd forces
        // the poweroff or reboot.
        let timeout = try #require(unit["TimeoutStopSec"]?.first)
        let minutes = try #require(Int(timeout.replacingOccurrences(of: "min", with: "")), "\(timeout)")
        #expect((10..<30).contains(minutes), "\(timeout)")
    }
}

/// The units, their copies for `verify`, and running it.
enum SystemdUnits {
    static let names = ["ecp-worker.service", "ecp-host-stop.service"]

    static var isLinux: Bool {
        #if os(Linux)
        return true
        #else
        return false
        #endif
    }

    /// scripts/systemd in the package.
    static var directory: URL {
        BuiltExecutable.packageRoot.appendingPathComponent("scripts/systemd")
    }

    /// Copies of the units in a new temporary directory, with the installed binaries' paths
    /// pointing at the built ones.
    static func installedCopies() throws -> (directory: URL, units: [URL], worker: String, ctl: String) {
        let worker = try BuiltExecutable.url("ecp-worker", variable: "ECP_WORKER_BIN").path
        let ctl = try BuiltExecutable.url("ecpctl", variable: "ECPCTL_BIN").path
        let target = FileManager.default.temporaryDirectory.appendingPathComponent("ecp-systemd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        var units: [URL] = []
        for name in names {
            var text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            text = text.replacingOccurrences(of: "/usr/local/bin/ecp-worker", with: worker)
            text = text.replacingOccurrences(of: "/usr/local/bin/ecpctl", with: ctl)
            let copy = target.appendingPathComponent(name)
            try text.write(to: copy, atomically: true, encoding: .utf8)
            units.append(copy)
        }
        return (target, units, worker, ctl)
    }

    /// `systemd-analyze`, or a failure that says which package brings it.
    static func analyzer() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let candidates = path.split(separator: ":").map { "\($0)/systemd-analyze" } + ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw BuiltExecutableError(
                description: "systemd-analyze not found: install Debian's systemd package (scripts/install-deps.sh --test)")
        }
        return found
    }

    /// Runs `systemd-analyze verify` on `units`: its exit status and its output (stdout and
    /// stderr together).
    static func verify(_ units: [URL]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try analyzer())
        process.arguments = ["verify"] + units.map(\.path)
        var environment = ProcessInfo.processInfo.environment
        environment["SYSTEMD_LOG_COLOR"] = "0"
        environment["SYSTEMD_PAGER"] = "cat"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// The lines of `verify`'s output about these units (it may also mention the host's own
    /// units, which are not ours to judge).
    static func complaints(in output: String, about copies: (directory: URL, units: [URL], worker: String, ctl: String)) -> [String] {
        output.split(separator: "\n").map(String.init).filter { line in
            line.contains(copies.directory.path) || names.contains { line.contains($0) }
                || line.contains(copies.worker) || line.contains(copies.ctl) || line.contains("/nonexistent/")
        }
    }

    /// A unit's `Key=value` settings, every value of a key in order (comments and sections
    /// left out).
    static func settings(_ name: String) throws -> [String: [String]] {
        let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
        var settings: [String: [String]] = [:]
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#"), !trimmed.hasPrefix("["),
                let equals = trimmed.firstIndex(of: "=")
            else { continue }
            let key = String(trimmed[..<equals])
            let value = String(trimmed[trimmed.index(after: equals)...])
            // Space-separated lists (After=, Wants=) are one value per unit.
            let values = ["After", "Wants", "Requires", "BindsTo", "PartOf", "WantedBy"].contains(key)
                ? value.split(separator: " ").map(String.init) : [value]
            settings[key, default: []] += values
        }
        return settings
    }
}
