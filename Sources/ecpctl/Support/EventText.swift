import ECPProtocol
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One events message as a line for a person: `HH:MM:SS.mmm topic type key facts`.
enum EventText {
    /// The line, and whether it reports an error (topic `error.*`, a failed result, a failed
    /// restore outcome or a restore with failures).
    static func line(topic: String, body: Data) -> (text: String, isError: Bool) {
        let shownTopic = Sanitize.display(topic)
        guard let message = JSONValue.parse(body), message.objectValue != nil else {
            let text = String(decoding: body.prefix(300), as: UTF8.self)
            return ("\(clock(nil)) \(shownTopic) ? - not a JSON object: \(Sanitize.display(text))", topic.hasPrefix("error."))
        }
        let type = message["type"]?.stringValue ?? "?"
        var isError = topic.hasPrefix("error.")
        let key: String
        var facts: [String] = []
        switch type {
        case "accepted":
            key = message.text("id")
            facts = [message.text("op"), message.text("machine")]
        case "result":
            key = message.text("id")
            facts = [message.text("op"), message.text("machine")]
            if message["ok"]?.boolValue == true {
                facts.append(message["changed"]?.boolValue == false ? "ok/unchanged" : "ok/changed")
                facts.append(message.text("state"))
            } else {
                isError = true
                facts.append("FAILED")
                if let summary = message["error"]?["summary"] { facts.append(summary.displayText) }
            }
            if message["duplicate"]?.boolValue == true { facts.append("(duplicate)") }
            if message["saved"]?.boolValue == false {
                isError = true
                facts.append("(not saved)")
            }
        case "E2LibvirtError":
            key = message.text("id")
            facts = [message["summary"]?.displayText ?? message.text("message")]
        case "request_error":
            key = message.text("id")
            let field = message["field"].flatMap { $0 == .null ? nil : " (\($0.displayText))" } ?? ""
            facts = [message.text("reason") + field + ":", message.text("detail")]
        case "machine.event":
            key = message.text("machine")
            facts = [message.text("event"), message.text("detail"), "state=" + message.text("state")]
        case "heartbeat":
            key = "-"
            facts = [
                "uptime_s=" + message.text("uptime_s"), "libvirt=" + message.text("libvirt"),
                "in_flight=" + message.text("in_flight"), "processed=" + message.text("processed"),
                "failed=" + message.text("failed"),
            ]
            if let table = message["state_table"] {
                facts.append("state_table=" + table.displayText)
                if message["unsaved_since"] != nil { facts.append("unsaved_since=" + message.text("unsaved_since")) }
            }
            if message["libvirt"]?.stringValue == "disconnected" || message["state_table"]?.stringValue == "unsaved" {
                isError = true
            }
        case "restore.outcome":
            key = message.text("machine")
            facts = [
                "desired=" + message.text("desired"), "found=" + message.text("found"),
                "action=" + message.text("action"),
            ]
            if let summary = message["error"]?["summary"] { facts.append(summary.displayText) }
            if message["action"]?.stringValue == "failed" { isError = true }
        case "restore.summary":
            key = message.text("restore_id")
            facts = ["trigger=" + message.text("trigger"), "table=" + message.text("table"), "total=" + message.text("total")]
            let counts = message["counts"]?.objectValue ?? [:]
            facts += counts.keys.sorted().map { "\(Sanitize.display($0))=\(counts[$0]!.displayText)" }
            if (counts["failed"]?.intValue ?? 0) > 0 || message["table"]?.stringValue == "corrupt" { isError = true }
            if message["error"] != nil { facts.append(message.text("error")) }
        case "worker.started":
            key = message.text("version")
            var endpoints = ""
            if let map = message["endpoints"]?.objectValue {
                endpoints = map.keys.sorted().map { "\(Sanitize.display($0))=\(map[$0]!.displayText)" }.joined(separator: " ")
            }
            facts = ["libvirt_uri=" + message.text("libvirt_uri"), endpoints]
        case "worker.stopping":
            key = message.text("reason")
        default:
            key = message.text("id")
            var rest = message.objectValue ?? [:]
            for envelope in ["v", "type", "worker", "run", "seq", "ts", "id"] { rest[envelope] = nil }
            facts = [JSONValue.object(rest).displayText]
        }
        let text = ([clock(message["ts"]?.stringValue), shownTopic, Sanitize.display(type), key] + facts)
            .filter { !$0.isEmpty }
            .joined(separator: " ")
        return (text, isError)
    }

    /// `HH:MM:SS.mmm` in local time, from the message's `ts` (UTC, ISO 8601), or now when it
    /// has none.
    static func clock(_ timestamp: String?) -> String {
        var seconds: time_t
        var millis: Int
        if let timestamp, let parsed = parse(timestamp) {
            (seconds, millis) = parsed
        } else {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            seconds = now.tv_sec
            millis = Int(now.tv_nsec / 1_000_000)
        }
        var local = tm()
        localtime_r(&seconds, &local)
        return String(format: "%02d:%02d:%02d.%03d", local.tm_hour, local.tm_min, local.tm_sec, millis)
    }

    /// Reads `2026-11-25T20:31:07.123Z`.
    static func parse(_ timestamp: String) -> (time_t, Int)? {
        guard timestamp.hasSuffix("Z") else { return nil }
        let parts = timestamp.dropLast().split(whereSeparator: { !$0.isNumber })
        guard parts.count >= 6 else { return nil }
        let numbers = parts.prefix(6).compactMap { Int32($0) }
        guard numbers.count == 6 else { return nil }
        var utc = tm()
        utc.tm_year = numbers[0] - 1900
        utc.tm_mon = numbers[1] - 1
        utc.tm_mday = numbers[2]
        utc.tm_hour = numbers[3]
        utc.tm_min = numbers[4]
        utc.tm_sec = numbers[5]
        var millis = 0
        if parts.count > 6 {
            let fraction = parts[6].prefix(3)
            millis = (Int(fraction) ?? 0) * [100, 10, 1][fraction.count - 1]
        }
        let seconds = timegm(&utc)
        guard seconds != -1 else { return nil }
        return (seconds, millis)
    }
}
