import Foundation
import Libvirt
import Testing

/// libvirt's last error is per thread; errors captured on many threads sharing one connection
/// must each be the calling thread's own.
@Suite("Concurrent error capture")
struct ConcurrencyTests {
    static let threadCount = 8
    static let callsPerThread = 1000

    @Test func eachThreadCapturesItsOwnErrors() async throws {
        let node = try NodeFile()
        let connection = try node.connect()

        let reports = await onThreads(Self.threadCount) { thread in
            Self.hammer(connection, thread: thread)
        }

        #expect(reports.count == Self.threadCount)
        for report in reports {
            #expect(report.problems.isEmpty, "thread \(report.thread): \(report.problems.prefix(5))")
            #expect(report.failures == Self.callsPerThread / 2, "thread \(report.thread)")
            #expect(report.successes == Self.callsPerThread / 2, "thread \(report.thread)")
        }
    }

    struct Report: Sendable {
        var thread: Int
        var failures = 0
        var successes = 0
        var problems: [String] = []
    }

    /// Alternates failing calls that carry this thread's names with succeeding calls.
    static func hammer(_ connection: Connection, thread: Int) -> Report {
        var report = Report(thread: thread)
        let own = "thread\(thread)-machine"
        let uuid = String(format: "00000000-0000-0000-0000-%012d", thread + 1)
        // A stale handle: its domain is undefined, so every operation on it fails with a
        // message naming this thread's domain and UUID.
        let stale: Domain
        do {
            stale = try connection.define(xml: domainXML(name: own, uuid: uuid))
            try stale.undefine()
        } catch {
            report.problems.append("setup: \(error)")
            return report
        }

        for call in 0..<callsPerThread {
            let bogus = "bogus-t\(thread)-c\(call)"
            if call % 2 == 0 {
                var expectedCode = LibvirtError.Code.ok
                var mustContain: [String] = []
                let error: LibvirtError?
                switch call / 2 % 3 {
                case 0:
                    // The test driver's "Domain not found" does not repeat the name; the code
                    // must still be this call's.
                    expectedCode = .noDomain
                    error = captureError { () throws(LibvirtError) in _ = try connection.lookup(name: bogus) }
                case 1:
                    // libxml2 quotes the faulty line, so the message names this call.
                    expectedCode = .xmlDetail
                    mustContain = [bogus]
                    error = captureError { () throws(LibvirtError) in
                        _ = try connection.define(xml: "<domain type='test'><name>\(bogus)</name>")
                    }
                default:
                    expectedCode = .noDomain
                    mustContain = [own, uuid]
                    error = captureError { () throws(LibvirtError) in try stale.suspend() }
                }
                guard let error else {
                    report.problems.append("call \(call): no error")
                    continue
                }
                report.failures += 1
                if error.code != expectedCode {
                    report.problems.append("call \(call): code \(error.code), expected \(expectedCode): \(error)")
                }
                for text in mustContain {
                    let carried = (error.message ?? "") + "\n" + (error.str1 ?? "") + "\n" + (error.str2 ?? "")
                    if !carried.contains(text) {
                        report.problems.append("call \(call): \(text) missing from \(error)")
                    }
                }
            } else {
                do {
                    switch call / 2 % 3 {
                    case 0:
                        _ = try connection.lookup(name: "db1").state()
                    case 1:
                        _ = try connection.lookup(uuid: "11111111-2222-3333-4444-000000000004").info()
                    default:
                        _ = try connection.listAllDomains()
                    }
                    report.successes += 1
                } catch {
                    report.problems.append("call \(call): unexpected \(error)")
                }
            }
        }
        return report
    }
}

/// Runs `body` on `count` new `Thread`s at once and returns their results in thread order.
func onThreads<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) -> T) async -> [T] {
    await withTaskGroup(of: (Int, T).self) { group in
        for index in 0..<count {
            group.addTask {
                (index, await onNewThread { body(index) })
            }
        }
        var results: [(Int, T)] = []
        for await result in group {
            results.append(result)
        }
        return results.sorted { $0.0 < $1.0 }.map(\.1)
    }
}
