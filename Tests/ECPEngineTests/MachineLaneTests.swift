@testable import ECPEngine
import ECPProtocol
import Foundation
import Libvirt
import Testing

/// One machine, one order: a command that names a machine by name and one that names it by UUID
/// wait for each other.
@Suite("Lanes by machine, whichever spelling names it")
struct MachineLaneTests {
    /// Behind a backlog of reads in the first spelling's lane, a suspend then a resume in another
    /// spelling: the resume must come second and find the machine paused.
    @Test("suspend by one spelling, resume by another, behind a backlog: they run in arrival order",
          arguments: [("name", "uuid"), ("uuid", "name"), ("name", "dashless upper-case uuid")])
    func spellingsShareALane(first: String, second: String) throws {
        let node = try NodeFile([("a", true)])
        let uuid = NodeFile.uuid(0)
        func spelling(_ form: String) -> String {
            switch form {
            case "name": return "a"
            case "uuid": return uuid
            default: return uuid.replacingOccurrences(of: "-", with: "").uppercased()
            }
        }
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, maxParallel: 4)
        for i in 0..<200 {
            engine.submit(#"{"v":1,"id":"r\#(i)","op":"status","machine":"\#(spelling(first))"}"#)
        }
        engine.submit(#"{"v":1,"id":"sus","op":"suspend","machine":"\#(spelling(first))"}"#)
        engine.submit(#"{"v":1,"id":"res","op":"resume","machine":"\#(spelling(second))"}"#)
        let resumed = try #require(sink.result("res"))
        let suspended = try #require(sink.result("sus"))
        #expect(suspended["changed"] as? Bool == true, "\(suspended)")
        #expect(resumed["changed"] as? Bool == true, "the resume found the machine paused: \(resumed)")
        #expect(resumed["state"] as? String == "running", "\(resumed)")
        let results = sink.all { $0.type == "result" }.compactMap(\.id)
        let order = (results.firstIndex(of: "sus"), results.firstIndex(of: "res"))
        #expect(order.0! < order.1!, "suspend answered before resume")
    }

    @Test("reads queued between changes each see the change before them, though they share reads")
    func readsBetweenChanges() throws {
        let node = try NodeFile([("a", true)])
        let sink = MemorySink()
        let engine = makeEngine(uri: node.uri, sink: sink, maxParallel: 4)
        var expected: [String: String] = [:]
        for round in 0..<20 {
            let op = round % 2 == 0 ? "suspend" : "resume"
            engine.submit(#"{"v":1,"id":"c\#(round)","op":"\#(op)","machine":"a"}"#)
            for i in 0..<10 {
                engine.submit(#"{"v":1,"id":"r\#(round)-\#(i)","op":"status","machine":"a"}"#)
                expected["r\(round)-\(i)"] = round % 2 == 0 ? "paused" : "running"
            }
        }
        for (id, state) in expected {
            let r = try #require(sink.result(id))
            #expect((r["data"] as? [String: Any])?["state"] as? String == state, "\(id): \(r)")
            #expect(r["state"] as? String == state, "\(id): \(r)")
        }
    }

    @Test("the directory follows defines, renames and undefines")
    func directoryFollowsEvents() {
        let directory = MachineDirectory()
        let u = "6695eb01-f6a4-8304-79aa-97f2502e1900"
        let v = "6695eb01-f6a4-8304-79aa-97f2502e1901"
        directory.learn(name: "web1", uuid: u)
        #expect(directory.lanes(for: "web1") == ["web1", u])
        #expect(directory.lanes(for: u.uppercased()) == [u, "web1"])
        #expect(directory.lanes(for: "other") == ["other"])

        // libvirt reports a rename as the old name undefined and the new one defined.
        let defined: Int32 = 0, undefined: Int32 = 1, renamed: Int32 = 2
        directory.apply(LifecycleEvent(domainName: "web1", domainUUID: u, event: undefined, detail: renamed))
        directory.apply(LifecycleEvent(domainName: "web2", domainUUID: u, event: defined, detail: renamed))
        #expect(directory.lanes(for: "web1") == ["web1"])
        #expect(directory.lanes(for: u) == [u, "web2"])

        // The old name comes back as another machine.
        directory.apply(LifecycleEvent(domainName: "web1", domainUUID: v, event: defined, detail: 0))
        #expect(directory.lanes(for: "web1") == ["web1", v])
        #expect(directory.lanes(for: u) == [u, "web2"])

        directory.apply(LifecycleEvent(domainName: "web2", domainUUID: u, event: undefined, detail: 0))
        #expect(directory.lanes(for: u) == [u])
        #expect(!directory.knows(name: "web2"))
    }

    @Test("a name of 32 hex digits that is nobody's UUID shares a lane with its machine's UUID")
    func hexName() {
        let directory = MachineDirectory()
        let u = "6695eb01-f6a4-8304-79aa-97f2502e1900"
        let hex = "0123456789abcdef0123456789abcdef"
        directory.learn(name: hex, uuid: u)
        #expect(directory.lanes(for: hex) == ["01234567-89ab-cdef-0123-456789abcdef", hex, u])
        #expect(directory.lanes(for: u) == [u, hex])
    }
}
