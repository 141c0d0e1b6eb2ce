import Foundation
import Testing

/// `ecpctl policy`, `ecpctl host-stop` and the policy fields of `ecpctl report`: what ecpctl
/// checks before it sends anything, what it sends, and how it prints the replies of the
/// `set_policy` / `host_stop` wire contract (a fake worker answers; the real worker's side is
/// in EcpctlPolicyTests).
@Suite("ecpctl policy and host-stop")
struct EcpctlHostRebootTests {
    // MARK: usage errors, before anything is sent

    @Test(
        "bad policy and host-stop options are usage errors that say what is wrong",
        arguments: [
            (["policy", "web1", "--retries", "11"], "--retries must be between 0 and 10, got 11"),
            (["policy", "web1", "--retries", "-1"], "--retries"),
            (["policy", "web1", "--order", "1001"], "--order must be between 0 and 1000, got 1001"),
            (["policy", "web1", "--order", "10", "--clear-order"], "--order and --clear-order exclude each other"),
            (["policy", "web1", "--host-stop", "hibernate"], "'shutdown', 'managedsave', 'destroy' or 'none'"),
            (["policy", "web1", "--up-delay", "5x"], "e.g. 500ms, 5s, 2m"),
            (["policy", "web1", "--up-delay", "5"], "give a number and a unit"),
            (["policy", "web1", "--up-delay", "11m"], "--up-delay must be between 0 and 10m"),
            (["policy", "--order", "1"], "machine"),
            (["policy", " web1", "--order", "1"], "machine must not begin or end with white space"),
            (["host-stop", "--mode", "none"], "'shutdown', 'managedsave' or 'destroy'"),
            (["host-stop", "--timeout", "soon"], "e.g. 500ms, 5s, 2m"),
            (["host-stop", "--timeout", "0s"], "--timeout must be between 1ms and 24h"),
            (["host-stop", "--timeout", "25h"], "--timeout must be between 1ms and 24h"),
            (["host-stop", "--parallel", "0"], "--parallel must be 1 or more, got 0"),
        ])
    func usageErrors(arguments: [String], message: String) async throws {
        // Nothing listens there: a usage error must come before any attempt to reach it.
        let result = try await Ctl.run(arguments + ["--control", ">tcp://127.0.0.1:9", "--timeout-ms", "200"])
        #expect(result.status == 64, "\(result)")
        #expect(result.stderr.contains(message), "\(result)")
        #expect(result.stdout.isEmpty, "\(result)")
    }

    @Test("durations take ms, s, m, h and their sums", arguments: [
        ("500ms", 500), ("5s", 5000), ("1.5s", 1500), ("2m", 120_000), ("1m30s", 90_000), ("0s", 0), ("10m", 600_000),
    ])
    func durations(text: String, milliseconds: Int) async throws {
        let store = PolicyStore()
        let router = try await CtlFakePeer.router { request in Self.answer(request, store: store) }
        let result = try await Ctl.run(["policy", "web1", "--up-delay", text, "--control", router.endpoint, "--timeout-ms", "10000"])
        await router.stop()
        #expect(result.status == 0, "\(result)")
        let args = try #require(router.requests.first.map(Self.request)?["args"] as? [String: Any], "\(result)")
        #expect(args["up_delay_ms"] as? Int == milliseconds, "\(args)")
    }

    @Test("--help explains and gives examples", arguments: [
        ("policy", ["ecpctl policy web1 --order 10 --up-delay 5s --retries 3", "--host-stop managedsave", "--clear-order", "managedsave", "--restore-retries"]),
        ("host-stop", ["ecpctl host-stop --mode managedsave --parallel 4", "ecpctl host-stop --timeout 5m", "reverse restore order", "TimeoutStopSec", "24 hours", "Exit status"]),
    ])
    func help(subcommand: String, phrases: [String]) async throws {
        // Help is wrapped to the terminal's width: phrases are looked for across line breaks.
        func flat(_ text: String) -> String { text.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
        let result = try await Ctl.run([subcommand, "--help"])
        #expect(result.status == 0, "\(result)")
        for phrase in phrases {
            #expect(flat(result.stdout).contains(phrase), "\(phrase) missing from:\n\(result.stdout)")
        }
        let root = try await Ctl.run(["--help"])
        #expect(root.stdout.contains("policy") && root.stdout.contains("host-stop"), "\(root)")
        #expect(flat(root.stdout).contains("5 host-stop: one or more machines failed to stop"), "\(root)")
    }

    // MARK: policy

    @Test("policy sends the members given (null to clear), an empty args to show, and prints the whole policy")
    func policyRequests() async throws {
        let store = PolicyStore()
        let router = try await CtlFakePeer.router { request in Self.answer(request, store: store) }
        let control = ["--control", router.endpoint, "--timeout-ms", "10000"]
        let set = try await Ctl.run(
            ["policy", "web1", "--order", "10", "--up-delay", "5s", "--retries", "3", "--host-stop", "managedsave"] + control)
        let show = try await Ctl.run(["policy", "web1"] + control)
        let clear = try await Ctl.run(["policy", "web1", "--clear-order", "--host-stop", "none"] + control)
        let json = try await Ctl.run(["policy", "--json", "web1", "--retries", "0"] + control)
        await router.stop()

        let requests = router.requests.map(Self.request)
        #expect(requests.count == 4)
        #expect(requests.allSatisfy { $0["op"] as? String == "set_policy" && $0["machine"] as? String == "web1" })
        #expect(requests.allSatisfy { $0["timeout_ms"] == nil }, "no command deadline")
        let setArgs = try #require(requests.first?["args"] as? [String: Any])
        #expect(setArgs.count == 4, "\(setArgs)")
        #expect(setArgs["order"] as? Int == 10 && setArgs["up_delay_ms"] as? Int == 5000, "\(setArgs)")
        #expect(setArgs["retries"] as? Int == 3 && setArgs["host_stop"] as? String == "managedsave", "\(setArgs)")
        #expect((requests[1]["args"] as? [String: Any])?.isEmpty == true, "show sends empty args: \(requests[1])")
        let clearArgs = try #require(requests[2]["args"] as? [String: Any])
        #expect(clearArgs.count == 2 && clearArgs["order"] is NSNull && clearArgs["host_stop"] as? String == "none", "\(clearArgs)")

        #expect(set.status == 0, "\(set)")
        #expect(
            set.stdoutLines == [
                "web1: policy",
                "  order:       10",
                "  up_delay_ms: 5000 (5s)",
                "  retries:     3",
                "  host_stop:   managedsave",
            ], "\(set)")
        #expect(show.status == 0 && show.stdoutLines == set.stdoutLines, "\(show)")
        #expect(clear.status == 0, "\(clear)")
        #expect(clear.stdoutLines.contains("  order:       none"), "\(clear)")
        #expect(clear.stdoutLines.contains("  host_stop:   none"), "\(clear)")
        #expect(clear.stdoutLines.contains("  retries:     3"), "members not given stay: \(clear)")

        #expect(json.status == 0, "\(json)")
        let reply = try ctlJSONObject(try #require(json.stdoutLines.first))
        #expect(json.stdoutLines.count == 1 && reply["op"] as? String == "set_policy", "\(json)")
        #expect(((reply["data"] as? [String: Any])?["policy"] as? [String: Any])?["retries"] as? Int == 0, "\(json)")
    }

    @Test("policy: a change the worker could not save says so; a refusal and a failure exit 2 and 1")
    func policyNotSavedAndErrors() async throws {
        let store = PolicyStore()
        let router = try await CtlFakePeer.router { request in
            let command = Self.request(request)
            let id = command["id"] as? String ?? "?"
            switch command["machine"] as? String {
            case "ghost":
                return Data(#"{"v":1,"type":"result","worker":"w","id":"\#(id)","op":"set_policy","machine":"ghost","ok":false,"error":{"type":"E2LibvirtError","code":42,"code_name":"VIR_ERR_NO_DOMAIN","domain":12,"domain_name":"VIR_FROM_TEST","level":"error","message":"Domain not found","str1":null,"str2":null,"str3":null,"int1":-1,"int2":-1,"category":"not_found","retryable":false,"summary":"test driver: cannot set the policy of machine 'ghost': it does not exist (VIR_ERR_NO_DOMAIN)"},"duration_ms":0.4}"#.utf8)
            case "old":
                return Data(#"{"v":1,"type":"request_error","worker":"w","id":"\#(id)","reason":"unknown_op","field":"op","detail":"unknown op \"set_policy\""}"#.utf8)
            default:
                return Self.answer(request, store: store, saved: false)
            }
        }
        let control = ["--control", router.endpoint, "--timeout-ms", "10000"]
        let unsaved = try await Ctl.run(["policy", "web1", "--order", "1"] + control)
        let missing = try await Ctl.run(["policy", "ghost", "--order", "1"] + control)
        let old = try await Ctl.run(["policy", "old"] + control)
        await router.stop()

        #expect(unsaved.status == 0, "\(unsaved)")
        #expect(unsaved.stdoutLines.first?.hasPrefix("web1: policy [not saved: ") == true, "\(unsaved)")
        #expect(unsaved.stdout.contains("would use the previous policy"), "\(unsaved)")
        #expect(missing.status == 1, "\(missing)")
        #expect(missing.stderrLines.first?.contains("VIR_ERR_NO_DOMAIN") == true, "\(missing)")
        #expect(old.status == 2, "\(old)")
        #expect(old.stderrLines.contains("  reason: unknown_op"), "\(old)")
    }

    // MARK: host-stop

    @Test("host-stop pings, sends host_stop without a deadline, prints a line per machine and the counts")
    func hostStop() async throws {
        let router = try await CtlFakePeer.router { request in Self.answer(request) }
        let control = ["--control", router.endpoint, "--timeout-ms", "10000"]
        let result = try await Ctl.run(["host-stop", "--mode", "managedsave", "--timeout", "5m", "--parallel", "2"] + control)
        let defaults = try await Ctl.run(["host-stop"] + control)
        await router.stop()

        let requests = router.requests.map(Self.request)
        #expect(requests.map { $0["op"] as? String } == ["ping", "host_stop", "ping", "host_stop"], "\(requests)")
        let stop = requests[1]
        #expect(stop["machine"] == nil && stop["timeout_ms"] == nil, "no machine, no deadline: \(stop)")
        let args = try #require(stop["args"] as? [String: Any])
        #expect(args.count == 3 && args["mode"] as? String == "managedsave", "\(args)")
        #expect(args["timeout_ms"] as? Int == 300_000 && args["parallel"] as? Int == 2, "\(args)")
        #expect((requests[3]["args"] as? [String: Any])?.isEmpty == true, "defaults are the worker's: \(requests[3])")

        #expect(result.status == 0, "\(result)")
        #expect(result.stderr.isEmpty, "\(result)")
        let lines = result.stdoutLines
        #expect(lines.first == "host stop hs-7: 2 machines, 2.0s", "\(result)")
        let rows = lines.map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(rows.contains(["MACHINE", "ORDER", "FOUND", "MODE", "ACTION", "DURATION", "ERROR"]), "\(result)")
        #expect(rows.contains(["web1", "10", "running", "managedsave", "saved", "1.2s", "-"]), "\(result)")
        #expect(rows.contains(["db1", "-", "paused", "shutdown", "shut_down", "0.8s", "-"]), "\(result)")
        #expect(lines.contains("  saved:        1") && lines.contains("  shut_down:    1"), "\(result)")
        #expect(lines.contains("  failed:       0"), "\(result)")
        #expect(defaults.status == 0, "\(defaults)")
    }

    @Test("host-stop: a machine that failed to stop means exit status 5, with or without --json")
    func hostStopFailed() async throws {
        let router = try await CtlFakePeer.router { request in Self.answer(request, hostStopFails: true) }
        let control = ["--control", router.endpoint, "--timeout-ms", "10000"]
        let text = try await Ctl.run(["host-stop"] + control)
        let json = try await Ctl.run(["host-stop", "--json"] + control)
        await router.stop()

        #expect(text.status == 5, "\(text)")
        let row = try #require(text.stdoutLines.first { $0.hasPrefix("db1 ") }, "\(text)")
        #expect(row.contains(" failed ") && row.contains("cannot shut down machine 'db1'"), "\(row)")
        #expect(text.stdoutLines.contains("  failed:       1"), "\(text)")
        #expect(text.stderrLines == ["ecpctl: 1 machine failed to stop: db1"], "\(text)")

        #expect(json.status == 5, "\(json)")
        #expect(json.stdoutLines.count == 1, "only the reply: \(json)")
        let reply = try ctlJSONObject(try #require(json.stdoutLines.first))
        #expect(((reply["data"] as? [String: Any])?["outcomes"] as? [Any])?.count == 2, "\(json)")
    }

    @Test("host-stop without a worker fails within --timeout-ms, not after the long wait")
    func hostStopNoWorker() async throws {
        let port = try CtlPorts.free()
        let result = try await Ctl.run(["host-stop", "--control", ">tcp://127.0.0.1:\(port)", "--timeout-ms", "400"])
        #expect(result.status == 3, "\(result)")
        #expect(result.stderr.contains("no reply from >tcp://127.0.0.1:\(port) within 400 ms"), "\(result)")
        #expect(!result.killed, "\(result)")
    }

    // MARK: report

    @Test("report shows policies and restore attempts, order and managed saves when the worker sends them")
    func reportWithPolicies() async throws {
        let router = try await CtlFakePeer.router { request in Self.answer(request) }
        let report = try await Ctl.run(["report", "--control", router.endpoint, "--timeout-ms", "10000"])
        await router.stop()

        #expect(report.status == 0, "\(report)")
        let rows = report.stdoutLines.map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(rows.contains(["MACHINE", "ORDER", "DESIRED", "FOUND", "ACTION", "ATTEMPTS", "ERROR"]), "\(report)")
        #expect(rows.contains(["web1", "10", "running", "shutoff", "started", "(from", "save)", "1", "-"]), "\(report)")
        #expect(rows.contains(["db1", "-", "running", "shutoff", "started", "2", "-"]), "\(report)")
        #expect(rows.contains(["NAME", "UUID", "DESIRED", "OBSERVED", "ORDER", "UP-DELAY", "RETRIES", "HOST-STOP", "UPDATED"]), "\(report)")
        #expect(rows.contains(["web1", "u-web1", "running", "running", "10", "5s", "3", "managedsave", "2026-11-25T20:31:07.120Z"]), "\(report)")
        #expect(rows.contains(["db1", "u-db1", "running", "running", "-", "0", "2", "shutdown", "2026-11-25T20:31:07.120Z"]), "\(report)")
    }

    @Test("report from a worker without policies prints as before")
    func reportWithoutPolicies() async throws {
        let router = try await CtlFakePeer.router { request in Self.answer(request, oldReport: true) }
        let report = try await Ctl.run(["report", "--control", router.endpoint, "--timeout-ms", "10000"])
        await router.stop()

        #expect(report.status == 0, "\(report)")
        let rows = report.stdoutLines.map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(rows.contains(["MACHINE", "DESIRED", "FOUND", "ACTION", "ERROR"]), "\(report)")
        #expect(rows.contains(["web1", "running", "shutoff", "started", "-"]), "\(report)")
        #expect(rows.contains(["NAME", "UUID", "DESIRED", "OBSERVED", "UPDATED"]), "\(report)")
        #expect(rows.contains(["web1", "u-web1", "running", "running", "2026-11-25T20:31:07.120Z"]), "\(report)")
    }

    // MARK: a fake worker speaking the contract

    /// A command document sent by ecpctl.
    static func request(_ payload: Data) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: payload) as? [String: Any]) ?? [:]
    }

    /// The fake worker's answers: `ping`; `set_policy` merging into the policy `store` keeps
    /// (one per fake worker); `host_stop` with two outcomes; `report` with or without the
    /// policy fields.
    static func answer(
        _ payload: Data, store: PolicyStore = PolicyStore(), saved: Bool = true, hostStopFails: Bool = false, oldReport: Bool = false
    ) -> Data {
        let command = request(payload)
        let id = command["id"] as? String ?? "?"
        let head = #""v":1,"type":"result","worker":"w","run":"r","seq":1,"ts":"2026-11-25T20:31:07.123Z","id":"\#(id)""#
        switch command["op"] as? String {
        case "ping":
            return Data(#"{\#(head),"op":"ping","ok":true,"changed":false,"data":{"uptime_s":1.5},"duration_ms":0.1}"#.utf8)
        case "set_policy":
            let machine = command["machine"] as? String ?? "?"
            let args = command["args"] as? [String: Any] ?? [:]
            let policy = store.merge(args)
            let savedField = saved ? "" : #","saved":false"#
            return Data(#"{\#(head),"op":"set_policy","machine":"\#(machine)","ok":true,"changed":true\#(savedField),"data":{"policy":\#(policy)},"duration_ms":0.3}"#.utf8)
        case "host_stop":
            let second =
                hostStopFails
                ? #"{"type":"host_stop.outcome","host_stop_id":"hs-7","machine":"db1","uuid":"u-db1","mode":"shutdown","order":null,"found":"running","action":"failed","duration_ms":812.0,"error":{"type":"E2LibvirtError","code":1,"code_name":"VIR_ERR_INTERNAL_ERROR","domain":10,"domain_name":"VIR_FROM_QEMU","level":"error","message":"internal error","str1":null,"str2":null,"str3":null,"int1":-1,"int2":-1,"category":"internal","retryable":false,"summary":"QEMU driver: cannot shut down machine 'db1': internal error (VIR_ERR_INTERNAL_ERROR)"}}"#
                : #"{"type":"host_stop.outcome","host_stop_id":"hs-7","machine":"db1","uuid":"u-db1","mode":"shutdown","order":null,"found":"paused","action":"shut_down","duration_ms":812.0}"#
            let counts =
                hostStopFails
                ? #"{"shut_down":0,"forced":0,"saved":1,"destroyed":0,"left_running":0,"already_off":0,"failed":1}"#
                : #"{"shut_down":1,"forced":0,"saved":1,"destroyed":0,"left_running":0,"already_off":0,"failed":0}"#
            let first = #"{"type":"host_stop.outcome","host_stop_id":"hs-7","machine":"web1","uuid":"u-web1","mode":"managedsave","order":10,"found":"running","action":"saved","duration_ms":1200.0}"#
            return Data(#"{\#(head),"op":"host_stop","ok":true,"changed":true,"data":{"type":"host_stop.summary","host_stop_id":"hs-7","total":2,"counts":\#(counts),"duration_ms":2012.0,"outcomes":[\#(first),\#(second)]},"duration_ms":2012.5}"#.utf8)
        case "report":
            let summary = #"{"type":"restore.summary","restore_id":"rs-1","trigger":"startup","table":"present","state_file":"/var/lib/ecp-worker/state.json","total":2,"counts":{"started":2,"resumed":0,"already_running":0,"missing":0,"skipped":0,"failed":0},"duration_ms":40.0}"#
            let updated = #""updated_at":"2026-11-25T20:31:07.120Z""#
            if oldReport {
                return Data(#"{\#(head),"op":"report","ok":true,"changed":false,"data":{"restore":\#(summary),"outcomes":[{"type":"restore.outcome","restore_id":"rs-1","machine":"web1","uuid":"u-web1","desired":"running","found":"shutoff","action":"started","duration_ms":5.0}],"machines":{"u-web1":{"name":"web1","desired":"running","observed":"running",\#(updated),"desired_from":"command"}}},"duration_ms":0.2}"#.utf8)
            }
            let outcomes = #"[{"type":"restore.outcome","restore_id":"rs-1","machine":"web1","uuid":"u-web1","desired":"running","found":"shutoff","action":"started","attempts":1,"order":10,"from_save":true,"duration_ms":5.0},{"type":"restore.outcome","restore_id":"rs-1","machine":"db1","uuid":"u-db1","desired":"running","found":"shutoff","action":"started","attempts":2,"order":null,"duration_ms":9.0}]"#
            let machines = #"{"u-web1":{"name":"web1","desired":"running","observed":"running",\#(updated),"desired_from":"command","policy":{"order":10,"up_delay_ms":5000,"retries":3,"host_stop":"managedsave"}},"u-db1":{"name":"db1","desired":"running","observed":"running",\#(updated),"desired_from":"command","policy":{"order":null,"up_delay_ms":0,"retries":2,"host_stop":"shutdown"}}}"#
            return Data(#"{\#(head),"op":"report","ok":true,"changed":false,"data":{"restore":\#(summary),"outcomes":\#(outcomes),"machines":\#(machines)},"duration_ms":0.2}"#.utf8)
        default:
            return Data(#"{"v":1,"type":"request_error","worker":"w","id":"\#(id)","reason":"unknown_op","field":"op","detail":"unknown op"}"#.utf8)
        }
    }
}

/// The policy a fake worker keeps: set_policy merges into it (null: back to the default).
final class PolicyStore: @unchecked Sendable {
    private let lock = NSLock()
    private var policy: [String: Any] = [:]

    /// Merges `args` and returns the effective policy as JSON.
    func merge(_ args: [String: Any]) -> String {
        lock.lock()
        defer { lock.unlock() }
        for (key, value) in args {
            policy[key] = value is NSNull ? nil : value
        }
        let defaults: [String: Any] = ["order": NSNull(), "up_delay_ms": 0, "retries": 2, "host_stop": "shutdown"]
        let effective = defaults.merging(policy) { _, set in set }
        let data = (try? JSONSerialization.data(withJSONObject: effective, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
