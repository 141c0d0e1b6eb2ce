import Synchronization

/// The bounds of a `replay` request.
public enum ReplayLimits {
    /// The most messages one page returns (`args.limit`).
    public static let maxPage = 5_000
    /// The default page.
    public static let defaultPage = 1_000
    /// The most topic prefixes one request may name, and the longest.
    public static let maxTopics = 64
    public static let maxTopicBytes = 256
}

/// The messages published in this run, newest kept, within a count and a byte bound: what
/// `replay` answers from. The publisher appends each message as it goes out, in `seq` order;
/// any thread may read a page.
public final class ReplayRing: Sendable {
    private struct Entry {
        var seq: UInt64
        var topic: String
        var message: [UInt8]
        var cost: Int { message.count + topic.utf8.count + 64 }
    }

    /// The kept entries are `entries[head...]`, oldest first: dropping the oldest moves `head`,
    /// and the dropped slots are reclaimed once they are half the array.
    private struct State {
        var entries: [Entry] = []
        var head = 0
        var bytes = 0
        /// The seq of the newest message published, kept or not.
        var newest: UInt64 = 0

        var count: Int { entries.count - head }
        var first: Entry? { head < entries.count ? entries[head] : nil }
        subscript(i: Int) -> Entry { entries[head + i] }

        mutating func append(_ entry: Entry) {
            entries.append(entry)
            bytes += entry.cost
        }

        mutating func dropOldest() {
            bytes -= entries[head].cost
            entries[head].message = []
            head += 1
            if head >= 1024 && head * 2 >= entries.count {
                entries.removeFirst(head)
                head = 0
            }
        }

        mutating func removeAll() {
            entries.removeAll()
            head = 0
            bytes = 0
        }
    }

    public let maxMessages: Int
    public let maxBytes: Int
    private let state = Mutex(State())

    public init(maxMessages: Int, maxBytes: Int) {
        self.maxMessages = max(0, maxMessages)
        self.maxBytes = max(0, maxBytes)
    }

    /// Keeps a published message, dropping the oldest past either bound. A message larger than
    /// the whole byte bound is not kept (and everything older goes, so no gap hides).
    public func append(seq: UInt64, topic: String, message: [UInt8]) {
        let entry = Entry(seq: seq, topic: topic, message: message)
        state.withLock { s in
            s.newest = seq
            guard maxMessages > 0, entry.cost <= maxBytes else {
                s.removeAll()
                return
            }
            s.append(entry)
            while s.count > maxMessages || s.bytes > maxBytes { s.dropOldest() }
        }
    }

    /// How many messages and bytes are kept now (for tests and measurements).
    public var usage: (messages: Int, bytes: Int) {
        state.withLock { ($0.count, $0.bytes) }
    }

    /// One page of what was published after `since`: oldest first, at most `limit` matching
    /// `topics` (prefixes; nil for every topic).
    public func page(since: UInt64, limit: Int, topics: [String]?) -> ReplayPage {
        state.withLock { s in
            let oldest = s.first?.seq ?? s.newest + 1
            var page = ReplayPage(
                messages: [], nextSeq: since, more: false, oldestSeq: oldest,
                truncated: since + 1 < oldest)
            // Entries are consecutive in seq: the first one after `since` is found by arithmetic.
            var index = since < oldest ? 0 : Int(since - oldest + 1)
            while index < s.count, page.messages.count < limit {
                let entry = s[index]
                if topics.map({ prefixes in prefixes.contains { entry.topic.hasPrefix($0) } }) ?? true {
                    page.messages.append((entry.topic, entry.message))
                }
                page.nextSeq = entry.seq
                index += 1
            }
            // Everything up to the newest was examined (a gap included): the next page starts there.
            if index >= s.count { page.nextSeq = max(page.nextSeq, s.newest) }
            page.more = page.nextSeq < s.newest
            return page
        }
    }
}

/// A page of `replay`.
public struct ReplayPage: Sendable {
    /// Each message's topic and its bytes exactly as published.
    public var messages: [(topic: String, message: [UInt8])]
    /// The `since_seq` to ask with next.
    public var nextSeq: UInt64
    /// Whether newer messages exist now.
    public var more: Bool
    /// The oldest seq the ring holds (the newest published plus one when it holds none).
    public var oldestSeq: UInt64
    /// Whether messages after the asked seq are gone.
    public var truncated: Bool

    /// The result's `data`, the messages written in as they were published.
    public func jsonBytes(run: String) -> [UInt8] {
        var w = JSONWriter(capacity: messages.reduce(128) { $0 + $1.message.count + $1.topic.utf8.count + 32 })
        w.beginObject()
        w.key("run"); w.string(run)
        w.key("messages")
        w.beginArray()
        for m in messages {
            w.beginObject()
            w.key("topic"); w.string(m.topic)
            w.key("message"); w.raw(m.message)
            w.endObject()
        }
        w.endArray()
        w.key("next_seq"); w.int(Int64(clamping: nextSeq))
        w.key("more"); w.bool(more)
        w.key("oldest_seq"); w.int(Int64(clamping: oldestSeq))
        w.key("truncated"); w.bool(truncated)
        w.endObject()
        return w.bytes
    }
}
