@testable import ECPEngine
import Foundation
import Testing

/// What the de-duplication memory keeps and forgets. A forgotten id runs again when it comes back,
/// so these are the limits of the "runs once" promise.
@Suite("Idempotency cache eviction")
struct IdempotencyCacheTests {
    typealias Cache = IdempotencyCache<String>

    /// Begins and completes `ids` in order, each with its own name as the result.
    static func run(_ cache: Cache, _ ids: some Sequence<String>) {
        for id in ids {
            #expect(isNew(cache.begin(id, waiter: "first")), "\(id) was new")
            #expect(cache.complete(id, result: Array(id.utf8)).isEmpty)
        }
    }

    static func isNew(_ lookup: Cache.Lookup) -> Bool {
        if case .new = lookup { return true }
        return false
    }

    static func isRunning(_ lookup: Cache.Lookup) -> Bool {
        if case .running = lookup { return true }
        return false
    }

    static func result(_ lookup: Cache.Lookup) -> String? {
        if case .done(let bytes) = lookup { return String(decoding: bytes, as: UTF8.self) }
        return nil
    }

    /// Expects the cache to remember exactly `ids`, each with its own result. Asking about an id
    /// the cache has forgotten would record it as new (and evict), so only the expected ids are
    /// asked about; the count says there is nothing else.
    static func expectRemembered(
        _ cache: Cache, exactly ids: [String], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        for id in ids {
            #expect(result(cache.begin(id, waiter: "probe")) == id, "\(id) is remembered with its result", sourceLocation: sourceLocation)
        }
        #expect(cache.count == ids.count, "nothing else is remembered", sourceLocation: sourceLocation)
    }

    static func ids(_ range: Range<Int>) -> [String] { range.map { "c\($0)" } }

    @Test("with no window, exactly the last capacity ids are remembered", arguments: [1, 3, 10])
    func lastCapacity(capacity: Int) {
        let cache = Cache(capacity: capacity, windowSeconds: 0)
        Self.run(cache, Self.ids(0..<(3 * capacity)))
        #expect(cache.count == capacity)
        let all = Self.ids(0..<(3 * capacity))
        Self.expectRemembered(cache, exactly: Array(all.suffix(capacity)))
    }

    @Test("within the window, ids beyond capacity are kept up to twice capacity")
    func windowUpToTwiceCapacity() {
        let cache = Cache(capacity: 4, windowSeconds: 600)
        Self.run(cache, Self.ids(0..<8))
        #expect(cache.count == 8, "young ids beyond capacity are kept, up to the hard limit")
        Self.run(cache, Self.ids(8..<11))
        #expect(cache.count == 8, "never more than twice capacity")
        Self.expectRemembered(cache, exactly: Self.ids(3..<11))
    }

    @Test("a given hard limit bounds the window; one below capacity counts as capacity")
    func hardLimit() {
        let bounded = Cache(capacity: 4, windowSeconds: 600, hardLimit: 6)
        Self.run(bounded, Self.ids(0..<10))
        #expect(bounded.count == 6)
        Self.expectRemembered(bounded, exactly: Self.ids(4..<10))

        let floor = Cache(capacity: 4, windowSeconds: 600, hardLimit: 2)
        #expect(floor.hardLimit == 4)
        Self.run(floor, Self.ids(0..<6))
        Self.expectRemembered(floor, exactly: Self.ids(2..<6))
    }

    @Test("ids beyond capacity are forgotten once older than the window, at the next new id")
    func agedOut() async throws {
        let cache = Cache(capacity: 2, windowSeconds: 0.5)
        Self.run(cache, Self.ids(0..<4))
        #expect(cache.count == 4, "all four are younger than the window")
        // The window is what is tested: time has to pass.
        try await Task.sleep(for: .milliseconds(600))
        #expect(cache.count == 4, "nothing is evicted until a new id comes")
        Self.run(cache, ["c4"])
        // c4 is young; of the old ones only the last capacity - 1 stay with it.
        #expect(cache.count == 2)
        Self.expectRemembered(cache, exactly: ["c3", "c4"])
    }

    @Test("a forgotten id runs again: the cache treats it as new")
    func forgottenRunsAgain() {
        let cache = Cache(capacity: 1, windowSeconds: 0)
        Self.run(cache, ["a", "b"])
        Self.expectRemembered(cache, exactly: ["b"])
        #expect(Self.isNew(cache.begin("a", waiter: "again")), "a was evicted: a new run")
        #expect(Self.isRunning(cache.begin("a", waiter: "dup")), "and the new run is remembered")
    }

    @Test("a duplicate of a finished id gets the first result, however often it comes")
    func duplicateOfFinished() {
        let cache = Cache(capacity: 2, windowSeconds: 0)
        Self.run(cache, ["a"])
        for _ in 0..<5 { #expect(Self.result(cache.begin("a", waiter: "dup")) == "a") }
        #expect(cache.complete("a", result: Array("second".utf8)).isEmpty)
        #expect(Self.result(cache.begin("a", waiter: "dup")) == "a", "a second completion does not replace the first result")
    }

    @Test("duplicates of a running id wait, and get the result when it completes, in order")
    func waiters() {
        let cache = Cache(capacity: 2, windowSeconds: 0)
        #expect(Self.isNew(cache.begin("a", waiter: "w0")))
        #expect(Self.isRunning(cache.begin("a", waiter: "w1")))
        #expect(Self.isRunning(cache.begin("a", waiter: "w2")))
        #expect(cache.complete("a", result: Array("done".utf8)) == ["w1", "w2"], "the first sender is not a waiter")
        #expect(Self.result(cache.begin("a", waiter: "w3")) == "done")
    }

    @Test("a running id is never evicted, and its waiters survive eviction passes")
    func runningKept() {
        let cache = Cache(capacity: 2, windowSeconds: 0)
        #expect(Self.isNew(cache.begin("long", waiter: "w0")))
        #expect(Self.isRunning(cache.begin("long", waiter: "w1")))
        Self.run(cache, Self.ids(0..<10))
        #expect(Self.isRunning(cache.begin("long", waiter: "w2")), "still running after ten newer ids")
        #expect(cache.complete("long", result: Array("long".utf8)) == ["w1", "w2"])
        // Passed over while running, it went to the back: it now counts as one of the newest.
        Self.run(cache, ["c10"])
        Self.expectRemembered(cache, exactly: ["long", "c10"])
    }

    @Test("running ids beyond capacity are all kept; the count exceeds capacity only by them")
    func manyRunning() {
        let cache = Cache(capacity: 2, windowSeconds: 0)
        for id in Self.ids(0..<5) { #expect(Self.isNew(cache.begin(id, waiter: "w"))) }
        #expect(cache.count == 5)
        for id in Self.ids(0..<5) { _ = cache.complete(id, result: Array(id.utf8)) }
        Self.run(cache, ["next"])
        #expect(cache.count == 2)
        Self.expectRemembered(cache, exactly: ["c4", "next"])
    }

    @Test("forget drops an id and hands back its waiters; a late completion keeps it forgotten")
    func forget() {
        let cache = Cache(capacity: 4, windowSeconds: 0)
        #expect(Self.isNew(cache.begin("a", waiter: "w0")))
        #expect(Self.isRunning(cache.begin("a", waiter: "w1")))
        #expect(cache.forget("a") == ["w1"])
        #expect(cache.count == 0)
        #expect(cache.complete("a", result: Array("late".utf8)).isEmpty)
        #expect(cache.count == 0, "completing a forgotten id does not bring it back")
        #expect(Self.isNew(cache.begin("a", waiter: "w2")))
        #expect(cache.forget("missing").isEmpty)
    }

    @Test("results are kept within maxBytes in all: the oldest finished go first, the newest stays")
    func byteBound() {
        // Counts that would keep everything: only the bytes bound evicts.
        let cache = Cache(capacity: 1_000, windowSeconds: 600, maxBytes: 1_000)
        for i in 0..<50 {
            let id = "b\(i)"
            #expect(Self.isNew(cache.begin(id, waiter: "first")))
            // 100 to 390 bytes each.
            #expect(cache.complete(id, result: [UInt8](repeating: UInt8(i), count: 100 + 10 * (i % 30))).isEmpty)
            #expect(cache.bytes <= 1_000, "after \(id): \(cache.bytes) bytes kept")
            if case .done(let kept) = cache.begin(id, waiter: "probe") {
                #expect(kept.count == 100 + 10 * (i % 30), "the newest keeps its result")
            } else {
                Issue.record("\(id), the newest, was evicted")
            }
        }
        // The kept ones are the newest: b49 (290 bytes), b48 (280), b47 (270): 840 bytes.
        #expect(cache.count == 3)
        #expect(cache.bytes == 840)
    }

    @Test("a running entry is never evicted for bytes, and its result counts once it completes")
    func byteBoundSparesRunning() {
        let cache = Cache(capacity: 1_000, windowSeconds: 600, maxBytes: 500)
        #expect(Self.isNew(cache.begin("slow", waiter: "first")))
        for i in 0..<10 {
            #expect(Self.isNew(cache.begin("f\(i)", waiter: "first")))
            #expect(cache.complete("f\(i)", result: [UInt8](repeating: 0, count: 200)).isEmpty)
            #expect(cache.bytes <= 500)
        }
        #expect(Self.isRunning(cache.begin("slow", waiter: "second")), "the running entry is kept")
        #expect(cache.complete("slow", result: [UInt8](repeating: 1, count: 300)) == ["second"])
        // f8 made room; f9 (200 bytes) and slow (300) fit.
        #expect(cache.bytes == 500)
        #expect(Self.result(cache.begin("slow", waiter: "third")) != nil, "the newest result stays")
        #expect(cache.count == 2)
    }

    @Test("a result larger than maxBytes on its own is not kept")
    func oversizedResult() {
        let cache = Cache(capacity: 10, windowSeconds: 600, maxBytes: 100)
        Self.run(cache, ["a"])
        #expect(Self.isNew(cache.begin("big", waiter: "first")))
        #expect(cache.complete("big", result: [UInt8](repeating: 0, count: 101)).isEmpty)
        #expect(cache.bytes == 0 && cache.count == 0)
    }
}
