// How the worker waits, and why each way exists
//
// - Threads of its own (`WorkerThread`). Everything that blocks runs off Swift's cooperative
//   pool, which has one thread per core and must never block: libvirt calls (the dispatcher's
//   pool, the event loop, reconnecting), `zmq_poll` on the I/O and CURVE (ZAP) threads, the state
//   writer's fsyncs, draining at shutdown.
//
// - `Mutex` and `Atomic` (Synchronization), for state shared between threads that no thread
//   sleeps on: counters, flags, the idempotency cache, the transport's outbox, small boxes.
//
// - `Condition` (a pthread mutex and condition variable, Locks.swift), where a thread sleeps until
//   some state changes or a deadline passes; `Mutex` has no condition variable. The dispatcher's
//   idle threads, the state writer (and its pause before retrying a failed write) and `flush`,
//   reconnecting to libvirt with backoff, a `shutdown` waiting for its machine's stop event
//   (MachineStops), draining waiting for the last command in flight, a restore's stagger and its
//   wait for its outcomes. Timed waits run on the monotonic clock, and stopping wakes them. Two
//   shapes of it have names:
//   - `OneShot`: a value handed over once, for a thread reporting that it started (or why it
//     could not) and that it ended.
//   - `Scheduler`: a thread sleeping until the earliest of its actions falls due: commands' and
//     restores' deadlines (`timeout_ms`), and lifecycle events, which must keep their order.
//
// - Continuations, at the boundary with async code: `WorkerThread.run` suspends a task while a
//   thread of its own does blocking work (draining, closing the sockets, terminating the ZeroMQ
//   context, the last with a time limit). The service's only timer is its heartbeat task
//   (`Task.sleep(until:)`), and it waits for the stop signal with swift-service-lifecycle.
//
// - No polling with sleeps anywhere in the worker. Dispatch remains only in ecp-bench, whose
//   DispatchSource turns SIGINT and SIGTERM into a handler that stops the workers it spawned;
//   its `Clock.sleep`s are the measurements' settle times, not waits for something to happen.
//   WorkerLauncher (tests and ecp-bench; it does not depend on this module) waits for a spawned
//   worker's exit on Foundation's `NSCondition`, the same kind of wait as `Condition`.
