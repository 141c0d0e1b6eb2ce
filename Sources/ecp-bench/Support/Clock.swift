import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The monotonic clock, in nanoseconds: every interval the bench reports is measured on it.
enum Clock {
    static func nanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Milliseconds between two readings, as a fraction.
    static func ms(from start: UInt64, to end: UInt64) -> Double {
        end >= start ? Double(end - start) / 1e6 : 0
    }

    /// Nanoseconds for a number of seconds.
    static func ns(seconds: Double) -> UInt64 {
        UInt64(max(0, seconds) * 1e9)
    }

    /// Sleeps for a number of milliseconds.
    static func sleep(ms: Double) {
        guard ms > 0 else { return }
        usleep(UInt32(min(ms * 1000, Double(UInt32.max))))
    }
}
