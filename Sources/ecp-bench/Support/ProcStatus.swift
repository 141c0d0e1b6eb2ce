import Foundation

/// Memory figures of a process, from `/proc/<pid>/status` (Linux), in KiB.
struct ProcMemory: Codable, Sendable, Equatable {
    /// `VmRSS`: resident memory now.
    var rssKiB: Int
    /// `VmHWM`: the largest resident memory so far.
    var peakKiB: Int

    enum CodingKeys: String, CodingKey {
        case rssKiB = "rss_kib"
        case peakKiB = "peak_kib"
    }

    /// Reads the figures, or nil when the process is gone or /proc is not there.
    static func read(pid: Int32) -> ProcMemory? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/status"),
            let text = String(data: data, encoding: .utf8)
        else { return nil }
        var rss: Int?
        var peak: Int?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("VmRSS:") {
                rss = kib(line)
            } else if line.hasPrefix("VmHWM:") {
                peak = kib(line)
            }
        }
        guard let rss else { return nil }
        return ProcMemory(rssKiB: rss, peakKiB: peak ?? rss)
    }

    /// `VmRSS:	   12345 kB` → 12345.
    private static func kib(_ line: Substring) -> Int? {
        line.split(separator: " ", omittingEmptySubsequences: true)
            .lazy.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.first
    }
}

/// Whether a process id names a live process.
func processExists(_ pid: Int32) -> Bool {
    kill(pid, 0) == 0 || errno == EPERM
}

/// What a process's resident memory is made of (Linux), in KiB: from `/proc/<pid>/status` and
/// `/proc/<pid>/smaps_rollup`.
struct ProcMemoryBreakdown: Codable, Sendable, Equatable {
    /// `VmRSS`: resident memory, `RssAnon` + `RssFile` + `RssShmem`.
    var rssKiB: Int
    /// `RssAnon`: resident anonymous memory (heap, stacks), private to the process.
    var rssAnonKiB: Int
    /// `RssFile`: resident pages of mapped files (the executable's and libraries' code and
    /// read-only data), shared with other processes mapping the same files and reclaimable.
    var rssFileKiB: Int
    /// `Pss` (smaps_rollup): resident memory with each shared page divided among its sharers.
    var pssKiB: Int?
    /// `Private_Dirty` (smaps_rollup): pages written by this process alone: what it really costs.
    var privateDirtyKiB: Int?
    /// `Threads`.
    var threads: Int

    enum CodingKeys: String, CodingKey {
        case rssKiB = "rss_kib"
        case rssAnonKiB = "rss_anon_kib"
        case rssFileKiB = "rss_file_kib"
        case pssKiB = "pss_kib"
        case privateDirtyKiB = "private_dirty_kib"
        case threads
    }

    /// Reads the figures, or nil when the process is gone or /proc is not there.
    static func read(pid: Int32) -> ProcMemoryBreakdown? {
        guard let status = fields("/proc/\(pid)/status"), let rss = status["VmRSS"] else { return nil }
        let rollup = fields("/proc/\(pid)/smaps_rollup")
        return ProcMemoryBreakdown(
            rssKiB: rss, rssAnonKiB: status["RssAnon"] ?? 0, rssFileKiB: status["RssFile"] ?? 0,
            pssKiB: rollup?["Pss"], privateDirtyKiB: rollup?["Private_Dirty"], threads: status["Threads"] ?? 0)
    }

    /// `Name:   123 kB` lines as name → 123.
    private static func fields(_ path: String) -> [String: Int]? {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            return nil
        }
        var out: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let value = line[line.index(after: colon)...].split(separator: " ", omittingEmptySubsequences: true)
                .lazy.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.first
            if let value { out[String(line[..<colon])] = value }
        }
        return out
    }
}
