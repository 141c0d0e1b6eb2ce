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
