import Glibc

/// A pthread mutex, the one under a `Condition`: a condition variable needs a pthread mutex, which
/// `Mutex` does not expose. Plain state under a lock uses `Mutex`.
final class Lock: @unchecked Sendable {
    // Safety of @unchecked Sendable: the mutex is what makes concurrent use safe; it lives at a
    // fixed address of its own, as pthread requires.
    fileprivate let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    init() {
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() {
        pthread_mutex_lock(mutex)
    }

    func unlock() {
        pthread_mutex_unlock(mutex)
    }
}

/// A lock and a condition variable together (a pthread mutex and condition): threads lock, check
/// the state, and `wait` (which unlocks while it waits) until another thread changes the state
/// under the lock and calls `signal` (one waiter) or `broadcast` (all of them).
///
/// As with any condition variable a wait may end without a signal, so waiters re-check their
/// state in a loop.
public final class Condition: @unchecked Sendable {
    // Safety of @unchecked Sendable: as for `Lock`; the condition is only used under the lock.
    private let mutex = Lock()
    private let condition: Waiter

    public init() {
        condition = Waiter(on: mutex)
    }

    public func lock() {
        mutex.lock()
    }

    public func unlock() {
        mutex.unlock()
    }

    /// Waits for a signal; the caller holds the lock, and holds it again on return.
    public func wait() {
        condition.wait()
    }

    /// Waits for a signal at most `seconds`; the caller holds the lock, and holds it again on
    /// return. Returns false when the time ran out.
    @discardableResult
    public func wait(seconds: Double) -> Bool {
        condition.wait(seconds: seconds)
    }

    /// Wakes one waiting thread; call it holding the lock.
    public func signal() {
        condition.signal()
    }

    /// Wakes every waiting thread; call it holding the lock.
    public func broadcast() {
        condition.broadcast()
    }

    /// A condition variable of its own on this lock: a pool of threads gives one to each thread,
    /// so that it can wake the one it chooses (the one that went idle last, whose caches are warm).
    public func makeWaiter() -> Waiter { Waiter(on: mutex) }

    /// A condition variable on a `Condition`'s lock (its own, or one thread's).
    public final class Waiter: @unchecked Sendable {
        // Safety of @unchecked Sendable: used only under the lock it was made on, which it keeps.
        private let lock: Lock
        private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

        fileprivate init(on lock: Lock) {
            self.lock = lock
            // Timed waits measure on the monotonic clock: setting the system time does not
            // shorten or stretch them.
            var attributes = pthread_condattr_t()
            pthread_condattr_init(&attributes)
            pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
            condition.initialize(to: pthread_cond_t())
            pthread_cond_init(condition, &attributes)
            pthread_condattr_destroy(&attributes)
        }

        deinit {
            pthread_cond_destroy(condition)
            condition.deallocate()
        }

        /// Waits for a signal; the caller holds the lock, and holds it again on return.
        public func wait() {
            pthread_cond_wait(condition, lock.mutex)
        }

        /// Waits for a signal at most `seconds`; false when the time ran out.
        public func wait(seconds: Double) -> Bool {
            let seconds = max(0, seconds)
            var deadline = timespec()
            clock_gettime(CLOCK_MONOTONIC, &deadline)
            let whole = seconds.rounded(.down)
            deadline.tv_sec += Int(whole)
            deadline.tv_nsec += Int((seconds - whole) * 1_000_000_000)
            if deadline.tv_nsec >= 1_000_000_000 {
                deadline.tv_sec += 1
                deadline.tv_nsec -= 1_000_000_000
            }
            return pthread_cond_timedwait(condition, lock.mutex, &deadline) != ETIMEDOUT
        }

        /// Wakes one thread waiting here; call it holding the lock.
        public func signal() {
            pthread_cond_signal(condition)
        }

        /// Wakes every thread waiting here; call it holding the lock.
        public func broadcast() {
            pthread_cond_broadcast(condition)
        }
    }
}
