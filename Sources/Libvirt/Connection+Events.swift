import CLibvirt

extension Connection {
    /// Calls `handler` for every lifecycle event of every domain on this connection
    /// (`virConnectDomainEventRegisterAny` with `VIR_DOMAIN_EVENT_ID_LIFECYCLE`).
    ///
    /// Needs ``EventLoop/startDefault()`` to have run before this connection was opened. The
    /// handler runs on the event-loop thread: keep it short and hand work elsewhere. Handlers
    /// of one connection are called in the order they were added.
    ///
    /// The connection registers one libvirt callback, on the first call, and fans events out to
    /// its handlers; the ids returned are this connection's own, not libvirt's.
    ///
    /// - Returns: the handler id, for ``removeLifecycleHandler(_:)``.
    @discardableResult
    public func onLifecycleEvent(
        _ handler: @escaping @Sendable (LifecycleEvent) -> Void
    ) throws(LibvirtError) -> Int32 {
        try lifecycleHandlers.add(handler) { needed throws(LibvirtError) in
            try withPointer("virConnectDomainEventRegisterAny") { pointer -> Void? in
                guard needed else {
                    return ()
                }
                // libvirt owns this reference from a successful registration on and drops it
                // through `releaseLifecycleRegistry` when the connection goes away.
                let registry = Unmanaged.passRetained(lifecycleHandlers)
                let id = virConnectDomainEventRegisterAny(
                    pointer,
                    nil,
                    Int32(VIR_DOMAIN_EVENT_ID_LIFECYCLE.rawValue),
                    lifecycleCallback,
                    registry.toOpaque(),
                    releaseLifecycleRegistry
                )
                guard id >= 0 else {
                    // A failed registration leaves the reference with us. Releasing it makes no
                    // libvirt call, so the thread's error is still there to capture.
                    registry.release()
                    return nil
                }
                return ()
            }
        }
    }

    /// Removes a lifecycle handler. Unknown ids are ignored. The connection's libvirt callback
    /// stays registered until the connection closes.
    public func removeLifecycleHandler(_ id: Int32) {
        lifecycleHandlers.remove(id)
    }

    /// Calls `handler` when libvirt closes the connection on its own: the daemon went away, an
    /// I/O error, a keepalive timeout (`virConnectRegisterCloseCallback`).
    ///
    /// Needs a running ``EventLoop``. Only daemon-backed drivers (`qemu:///…`) ever call it.
    /// libvirt 9.0.0 accepts the registration without error on drivers that have no close
    /// callbacks, such as `test:///`, and then never calls the handler. Any number of handlers
    /// may be added; they share one libvirt registration.
    public func onClose(_ handler: @escaping @Sendable (CloseReason) -> Void) throws(LibvirtError) {
        _ = try closeHandlers.add(handler) { needed throws(LibvirtError) in
            try withPointer("virConnectRegisterCloseCallback") { pointer -> Void? in
                guard needed else {
                    return ()
                }
                // On success libvirt drops this reference when the callback is unregistered or
                // the connection is disposed. A driver without close callbacks keeps nothing and
                // never drops it: one registry per such connection stays allocated.
                let registry = Unmanaged.passRetained(closeHandlers)
                guard
                    virConnectRegisterCloseCallback(pointer, closeCallback, registry.toOpaque(), releaseCloseRegistry)
                        >= 0
                else {
                    registry.release()
                    return nil
                }
                return ()
            }
        }
    }
}

/// The C lifecycle callback (`virConnectDomainEventCallback`), cast to the generic callback type
/// `virConnectDomainEventRegisterAny` takes, as the C macro `VIR_DOMAIN_EVENT_CALLBACK` does.
private let lifecycleCallback: virConnectDomainEventGenericCallback = unsafeBitCast(
    lifecycleTrampoline as @convention(c) (
        virConnectPtr?, virDomainPtr?, Int32, Int32, UnsafeMutableRawPointer?
    ) -> Int32,
    to: virConnectDomainEventGenericCallback.self
)

/// Turns a C lifecycle event into a ``LifecycleEvent`` and hands it to the connection's handlers.
private func lifecycleTrampoline(
    _ connection: virConnectPtr?,
    _ domain: virDomainPtr?,
    _ event: Int32,
    _ detail: Int32,
    _ opaque: UnsafeMutableRawPointer?
) -> Int32 {
    guard let domain, let opaque else {
        return 0
    }
    let registry = Unmanaged<HandlerRegistry<LifecycleEvent>>.fromOpaque(opaque).takeUnretainedValue()
    let name = virDomainGetName(domain).map { String(cString: $0) } ?? ""
    let uuid = Domain.uuidString(of: domain) ?? ""
    registry.dispatch(LifecycleEvent(domainName: name, domainUUID: uuid, event: event, detail: detail))
    return 0
}

/// The C close callback (`virConnectCloseFunc`).
private func closeCallback(_ connection: virConnectPtr?, _ reason: Int32, _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque else {
        return
    }
    let registry = Unmanaged<HandlerRegistry<CloseReason>>.fromOpaque(opaque).takeUnretainedValue()
    registry.dispatch(CloseReason(rawValue: reason) ?? .error)
}

/// Drops libvirt's reference to a lifecycle registry (`virFreeCallback`).
private func releaseLifecycleRegistry(_ opaque: UnsafeMutableRawPointer?) {
    if let opaque {
        Unmanaged<HandlerRegistry<LifecycleEvent>>.fromOpaque(opaque).release()
    }
}

/// Drops libvirt's reference to a close registry (`virFreeCallback`).
private func releaseCloseRegistry(_ opaque: UnsafeMutableRawPointer?) {
    if let opaque {
        Unmanaged<HandlerRegistry<CloseReason>>.fromOpaque(opaque).release()
    }
}
