@testable import ECPEngine
import ECPProtocol
import Foundation
import Testing

@Suite("stats on the libvirt test driver")
struct StatsTests {
    /// running, shut off, paused.
    static func node() throws -> NodeFile { try NodeFile(states: [("s-run", 1), ("s-off", 5), ("s-pause", 3)]) }

    static func machines(_ result: Received) -> [String: [String: Any]] {
        // A result holds them in `data`; a stats message at its top.
        let list = ((result["data"] as? [String: Any])?["machines"] ?? result["machines"]) as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: list.map { ($0["name"] as! String, $0) })
    }

    @Test("every machine: figures from the info call where the test driver's bulk call has none; nulls, never zeros")
    func allMachines() throws {
        let node = try Self.node()
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)
        engine.submit(#"{"v":1,"id":"a1","op":"stats"}"#)
        let r = try #require(sink.result("a1"))
        #expect(r["ok"] as? Bool == true)
        #expect(((r["data"] as? [String: Any])?["collected_at"] as? String)?.hasSuffix("Z") == true)
        let m = Self.machines(r)
        #expect(Set(m.keys) == ["s-run", "s-off", "s-pause"])
        for (name, machine) in m {
            #expect(machine["vcpus"] as? Int == 1, "\(name)")
            #expect(machine["max_memory_kib"] as? Int == 65_536, "\(name)")
            #expect(machine["memory_kib"] is Int, "\(name)")
            // First sample: no share yet, and the key is there with null.
            #expect(machine["cpu_percent"] is NSNull, "\(name)")
            #expect(machine["block"] is [Any] && machine["net"] is [Any], "\(name)")
        }
        #expect(m["s-run"]?["state"] as? String == "running")
        #expect(m["s-run"]?["cpu_time_ns"] is Int)
        #expect(m["s-pause"]?["cpu_time_ns"] is Int)
        #expect(m["s-off"]?["state"] as? String == "shutoff")
        #expect(m["s-off"]?["cpu_time_ns"] is NSNull)
    }

    @Test("cpu_percent comes with the second sample of a machine, and never for a shut-off one")
    func cpuPercent() throws {
        let node = try Self.node()
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)
        engine.submit(#"{"v":1,"id":"c1","op":"stats"}"#)
        _ = try #require(sink.result("c1"))
        Thread.sleep(forTimeInterval: 0.05)
        engine.submit(#"{"v":1,"id":"c2","op":"stats","machine":"s-run"}"#)
        let second = try #require(sink.result("c2"))
        let run = try #require(Self.machines(second)["s-run"])
        let percent = try #require(run["cpu_percent"] as? Double)
        #expect(percent >= 0)
        engine.submit(#"{"v":1,"id":"c3","op":"stats"}"#)
        let third = Self.machines(try #require(sink.result("c3")))
        #expect(third["s-run"]?["cpu_percent"] is Double)
        #expect(third["s-off"]?["cpu_percent"] is NSNull)
    }

    @Test("one machine by name, by UUID with and without dashes; an unknown one is VIR_ERR_NO_DOMAIN")
    func oneMachine() throws {
        let node = try Self.node()
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink)
        let uuid = NodeFile.uuid(1)
        for (i, given) in ["s-off", uuid, uuid.uppercased(), uuid.replacingOccurrences(of: "-", with: "")].enumerated() {
            engine.submit(#"{"v":1,"id":"o\#(i)","op":"stats","machine":"\#(given)"}"#)
            let r = try #require(sink.result("o\(i)"))
            #expect(r["ok"] as? Bool == true, "\(given)")
            #expect(r["machine"] as? String == given)
            #expect(Array(Self.machines(r).keys) == ["s-off"], "\(given)")
        }
        engine.submit(#"{"v":1,"id":"o9","op":"stats","machine":"nobody"}"#)
        let r = try #require(sink.result("o9"))
        #expect(r["ok"] as? Bool == false)
        let error = try #require(r["error"] as? [String: Any])
        #expect(error["code_name"] as? String == "VIR_ERR_NO_DOMAIN")
        #expect((error["summary"] as? String)?.contains("stats of machine 'nobody'") == true)
    }

    @Test("the periodic sample: at startup on stats.<worker-id>, and kept for latestStats()")
    func periodic() throws {
        let node = try Self.node()
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, statsIntervalMs: 1000)
        let first = try #require(sink.wait { $0.type == "stats" })
        #expect(first.topic == "stats.t1")
        #expect(Set(Self.machines(first).keys) == ["s-run", "s-off", "s-pause"])
        let latest = try #require(engine.latestStats())
        #expect(latest.machines.count == 3)
        #expect(latest.machines.first { $0.name == "s-off" }?.cpuTimeNs == nil)
    }

    @Test("with periodic samples off, latestStats() takes one when asked")
    func onDemand() throws {
        let node = try Self.node()
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, statsIntervalMs: 0)
        let sample = try #require(engine.latestStats())
        #expect(sample.machines.map(\.name) == ["s-off", "s-pause", "s-run"])
        #expect(sink.wait(timeout: 0.3) { $0.type == "stats" } == nil)
    }
}
