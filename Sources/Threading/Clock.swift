#if canImport(Glibc)
import Glibc
#endif

/// Monotonic time in nanoseconds, for durations.
@inline(__always)
public func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Milliseconds between two monotonic instants, rounded to microseconds.
@inline(__always)
public func millis(since start: UInt64, to end: UInt64 = monotonicNanos()) -> Double {
    (Double(end &- start) / 1_000).rounded() / 1_000
}
