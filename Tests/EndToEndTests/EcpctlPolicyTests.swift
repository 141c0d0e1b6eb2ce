import Foundation
import Testing

/// `ecpctl policy` and `ecpctl host-stop` against a real worker on the libvirt test driver:
/// the worker's `set_policy` and `host_stop` ops, the policies in `report`, and a host stop
/// that keeps the desired states for the next restore.
@Suite("ecpctl policy and host-stop with the worker")
struct EcpctlPolicyTests {
    /// Two machines shut off at the start, so that `ecpctl start` makes them desired running.
    static let machines = [
        WorkerMachine(name: "app1", uuid: "3d1e2f40-5a6b-4c7d-8e9f-0a1b2c3d4e5f", running: false, memoryKiB: 131_072, vcpus: 1),
        WorkerMachine(name: "app2", uuid: "7e8f9a0b-1c2d-4e3f-9a4b-5c6d7e8f9a0b", running: false, memoryKiB: 131_072, vcpus: 1),
    ]

    /// A line's words.
    private static func words(_ line: String) -> [String] {
        line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
    }

    @Test("policy: defaults, a change, a merge, a clear; report shows the effective policy")
    func policyRoundTrip() async throws {
        try await CtlWorker.with { worker in
            let start = try await Ctl.run(["start", "web1"] + worker.endpoints)
            #expect(start.status == 0, "\(start)")

            let defaults = try await Ctl.run(["policy", "web1"] + worker.endpoints)
            #expect(defaults.status == 0, "\(defaults)")
            #expect(
                defaults.stdoutLines == [
                    "web1: policy",
                    "  order:       none",
                    "  up_delay_ms: 0 (none)",
                    "  retries:     2",
                    "  host_stop:   shutdown",
                ], "\(defaults)")

            let set = try await Ctl.run(
                ["policy", "web1", "--order", "10", "--up-delay", "5s", "--retries", "3", "--host-stop", "managedsave"]
                    + worker.endpoints)
            #expect(set.status == 0, "\(set)")
            #expect(
                set.stdoutLines == [
                    "web1: policy",
                    "  order:       10",
                    "  up_delay_ms: 5000 (5s)",
                    "  retries:     3",
                    "  host_stop:   managedsave",
                ], "\(set)")

            let shown = try await Ctl.run(["policy", "web1"] + worker.endpoints)
            #expect(shown.status == 0 && shown.stdoutLines == set.stdoutLines, "\(shown)")

            let json = try await Ctl.run(["policy", "web1", "--json"] + worker.endpoints)
            #expect(json.status == 0, "\(json)")
            let reply = try ctlJSONObject(try #require(json.stdoutLines.first))
            let policy = try #require((reply["data"] as? [String: Any])?["policy"] as? [String: Any], "\(json)")
            #expect(policy["order"] as? Int == 10 && policy["up_delay_ms"] as? Int == 5000, "\(policy)")
            #expect(policy["retries"] as? Int == 3 && policy["host_stop"] as? String == "managedsave", "\(policy)")

            let report = try await Ctl.run(["report"] + worker.endpoints)
            #expect(report.status == 0, "\(report)")
            let rows = report.stdoutLines.map(Self.words)
            #expect(rows.contains(["NAME", "UUID", "DESIRED", "OBSERVED", "ORDER", "UP-DELAY", "RETRIES", "HOST-STOP", "UPDATED"]), "\(report)")
            let web1 = try #require(rows.first { $0.first == "web1" && $0.count == 9 }, "\(report)")
            #expect(Array(web1[2...7]) == ["running", "running", "10", "5s", "3", "managedsave"], "\(report)")

            // Only the members given change; null (--clear-order) is back to the default.
            let cleared = try await Ctl.run(["policy", "web1", "--clear-order", "--retries", "0"] + worker.endpoints)
            #expect(cleared.status == 0, "\(cleared)")
            #expect(
                cleared.stdoutLines == [
                    "web1: policy",
                    "  order:       none",
                    "  up_delay_ms: 5000 (5s)",
                    "  retries:     0",
                    "  host_stop:   managedsave",
                ], "\(cleared)")

            let missing = try await Ctl.run(["policy", "ghost", "--order", "1"] + worker.endpoints)
            #expect(missing.status == 1, "\(missing)")
        }
    }

    @Test("host-stop stops two running machines, prints two outcomes and the counts, and the next restore brings them back")
    func hostStopAndRestore() async throws {
        try await CtlWorker.with(machines: Self.machines) { worker in
            for name in ["app1", "app2"] {
                let start = try await Ctl.run(["start", name] + worker.endpoints)
                #expect(start.status == 0, "\(start)")
            }

            let stop = try await Ctl.run(["host-stop", "--timeout", "10s"] + worker.endpoints)
            #expect(stop.status == 0, "\(stop)")
            let lines = stop.stdoutLines
            #expect(lines.first?.hasPrefix("host stop ") == true && lines.first?.contains(": 2 machines, ") == true, "\(stop)")
            let rows = lines.map(Self.words)
            #expect(rows.contains(["MACHINE", "ORDER", "FOUND", "MODE", "ACTION", "DURATION", "ERROR"]), "\(stop)")
            for name in ["app1", "app2"] {
                let row = try #require(rows.first { $0.first == name }, "\(stop)")
                #expect(row.count == 7 && row[1] == "-" && row[2] == "running" && row[3] == "shutdown", "\(row)")
                #expect(["shut_down", "forced"].contains(row[4]) && row[6] == "-", "\(row)")
            }
            #expect(rows.filter { $0.first == "app1" || $0.first == "app2" }.count == 2, "one line per machine: \(stop)")
            #expect(rows.contains(["failed:", "0"]) && rows.contains(["already_off:", "0"]), "\(stop)")
            let stopped = rows.compactMap { row -> Int? in
                guard row.count == 2, ["shut_down:", "forced:"].contains(row[0]) else { return nil }
                return Int(row[1])
            }
            #expect(stopped.reduce(0, +) == 2, "\(stop)")

            for name in ["app1", "app2"] {
                let status = try await Ctl.run(["status", name] + worker.endpoints)
                #expect(status.stdoutLines.contains("state:          shutoff"), "\(status)")
            }
            // The desired states are kept: the table still wants both running.
            let report = try await Ctl.run(["report"] + worker.endpoints)
            let table = report.stdoutLines.map(Self.words)
            for name in ["app1", "app2"] {
                let row = try #require(table.first { $0.first == name && $0.count == 9 }, "\(report)")
                #expect(row[2] == "running" && row[3] == "shutoff", "\(report)")
            }

            let restore = try await Ctl.run(["restore"] + worker.endpoints)
            #expect(restore.status == 0, "\(restore)")
            #expect(restore.stdoutLines.map(Self.words).contains(["started:", "2"]), "\(restore)")
            for name in ["app1", "app2"] {
                let status = try await Ctl.run(["status", name] + worker.endpoints)
                #expect(status.stdoutLines.contains("state:          running"), "\(status)")
            }

        }
    }

    @Test("host-stop follows each machine's policy: managed save, left running, order; a saved machine restores from its save")
    func hostStopByPolicy() async throws {
        try await CtlWorker.with(machines: Self.machines) { worker in
            for name in ["app1", "app2"] {
                let start = try await Ctl.run(["start", name] + worker.endpoints)
                #expect(start.status == 0, "\(start)")
            }
            let saved = try await Ctl.run(["policy", "app1", "--order", "1", "--host-stop", "managedsave"] + worker.endpoints)
            #expect(saved.status == 0, "\(saved)")
            let left = try await Ctl.run(["policy", "app2", "--order", "2", "--host-stop", "none"] + worker.endpoints)
            #expect(left.status == 0, "\(left)")

            let stop = try await Ctl.run(["host-stop", "--json"] + worker.endpoints)
            #expect(stop.status == 0, "\(stop)")
            let reply = try ctlJSONObject(try #require(stop.stdoutLines.first, "\(stop)"))
            let data = try #require(reply["data"] as? [String: Any], "\(stop)")
            #expect(data["type"] as? String == "host_stop.summary", "\(data)")
            let outcomes = try #require(data["outcomes"] as? [[String: Any]], "\(data)")
            #expect(outcomes.map { $0["machine"] as? String } == ["app2", "app1"], "reverse restore order: \(outcomes)")
            #expect(outcomes.map { $0["action"] as? String } == ["left_running", "saved"], "\(outcomes)")
            #expect(outcomes.map { $0["order"] as? Int } == [2, 1], "\(outcomes)")
            let counts = try #require(data["counts"] as? [String: Any])
            #expect(counts["saved"] as? Int == 1 && counts["left_running"] as? Int == 1 && counts["failed"] as? Int == 0, "\(counts)")

            let restore = try await Ctl.run(["restore"] + worker.endpoints)
            #expect(restore.status == 0, "\(restore)")
            let report = try await Ctl.run(["report"] + worker.endpoints)
            #expect(report.status == 0, "\(report)")
            let rows = report.stdoutLines.map(Self.words)
            #expect(rows.contains { $0.first == "MACHINE" && $0.contains("ORDER") && $0.contains("ATTEMPTS") }, "\(report)")
            let app1 = try #require(rows.first { $0.first == "app1" && $0.contains("(from") }, "\(report)")
            #expect(app1.contains("started") && app1[1] == "1", "\(app1)")
        }
    }
}
