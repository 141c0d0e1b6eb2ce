import Synchronization

/// The Swift handlers behind one libvirt callback registration.
///
/// libvirt accepts a given C callback only once per connection and event type ("event callback
/// already tracked"), so a ``Connection`` registers one C callback per kind of event and fans
/// each event out to any number of handlers kept here.
final class HandlerRegistry<Value: Sendable>: Sendable {
    typealias Handler = @Sendable (Value) -> Void

    private struct State {
        var handlers: [(id: Int32, handler: Handler)] = []
        var nextID: Int32 = 1
        var attached = false
    }

    private let state = Mutex(State())
    /// Serialises registrations, so the C callback is attached to libvirt at most once.
    private let registration = Mutex(())

    /// Adds a handler and returns its id.
    ///
    /// - Parameter attach: called (serialised with other registrations) before the handler is
    ///   added, with `true` if the C callback still has to be registered with libvirt; it throws
    ///   if the connection cannot take the handler, and then nothing is added.
    func add(
        _ handler: @escaping Handler,
        attach: (_ needed: Bool) throws(LibvirtError) -> Void
    ) throws(LibvirtError) -> Int32 {
        try registration.withLock { _ throws(LibvirtError) -> Int32 in
            let needed = !state.withLock { $0.attached }
            try attach(needed)
            return state.withLock { state in
                state.attached = true
                let id = state.nextID
                state.nextID += 1
                state.handlers.append((id, handler))
                return id
            }
        }
    }

    /// Removes a handler; returns whether it was there.
    @discardableResult
    func remove(_ id: Int32) -> Bool {
        state.withLock { state in
            guard let index = state.handlers.firstIndex(where: { $0.id == id }) else {
                return false
            }
            state.handlers.remove(at: index)
            return true
        }
    }

    /// Calls every handler, in the order they were added, outside the lock.
    func dispatch(_ value: Value) {
        let handlers = state.withLock { $0.handlers.map(\.handler) }
        for handler in handlers {
            handler(value)
        }
    }
}
