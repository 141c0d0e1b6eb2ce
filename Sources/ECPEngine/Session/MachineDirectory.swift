import Libvirt
import Synchronization

/// The names and UUIDs of the machines libvirt knows, listed at each (re)connection and kept
/// current by lifecycle events, so that commands naming one machine in different spellings (its
/// name, its UUID with or without dashes, in any case) share its lanes and run in arrival order.
///
/// It also keeps a handle on each machine of the calls connection, so that a read need not look
/// its machine up first. Neither use can go wrong on a stale entry: a lane too many costs some
/// waiting, and a read checks the handle's name and existence in the call that reads its state.
final class MachineDirectory: Sendable {
    private struct Table {
        var uuidByName: [String: String] = [:]
        var nameByUUID: [String: String] = [:]
        var handles: [String: Domain] = [:]

        mutating func remove(uuid: String) {
            handles.removeValue(forKey: uuid)
            if let name = nameByUUID.removeValue(forKey: uuid), uuidByName[name] == uuid {
                uuidByName.removeValue(forKey: name)
            }
        }
    }

    private let table = Mutex(Table())

    /// Replaces everything known with one listing of the calls connection's machines.
    func replaceAll(_ machines: [Domain]) {
        var fresh = Table()
        for m in machines {
            let uuid = m.uuid
            fresh.uuidByName[m.name] = uuid
            fresh.nameByUUID[uuid] = m.name
            fresh.handles[uuid] = m
        }
        table.withLock { $0 = fresh }
    }

    /// Keeps a handle a lookup on the calls connection found, with its name and UUID.
    func remember(_ domain: Domain) {
        learn(name: domain.name, uuid: domain.uuid)
        table.withLock { $0.handles[domain.uuid] = domain }
    }

    /// The handle kept for the machine this spelling names, if any: by UUID for a UUID's
    /// spelling, by name otherwise.
    func handle(for machine: String) -> Domain? {
        let uuid = Connection.canonicalUUID(machine)
        return table.withLock { t in
            if let uuid { return t.handles[uuid] }
            return t.uuidByName[machine].flatMap { t.handles[$0] }
        }
    }

    /// Records that `name` is the machine with `uuid` (a define, or the new name of a rename).
    func learn(name: String, uuid: String) {
        table.withLock { t in
            guard t.uuidByName[name] != uuid || t.nameByUUID[uuid] != name else { return }
            // A rename keeps the machine, and its handle.
            let handle = t.handles[uuid]
            t.remove(uuid: uuid)
            t.handles[uuid] = handle
            if let previous = t.uuidByName[name] { t.remove(uuid: previous) }
            t.uuidByName[name] = uuid
            t.nameByUUID[uuid] = name
        }
    }

    /// Whether a machine of this name is known.
    func knows(name: String) -> Bool {
        table.withLock { $0.uuidByName[name] != nil }
    }

    /// Forgets a machine that libvirt no longer defines under that name.
    func forget(uuid: String) {
        table.withLock { $0.remove(uuid: uuid) }
    }

    /// Keeps the directory current with what an event says: `defined` (a new machine, or the new
    /// name of a renamed one) and `undefined` (gone, or the old name of a renamed one).
    func apply(_ event: LifecycleEvent) {
        switch event.eventName {
        case "defined": learn(name: event.domainName, uuid: event.domainUUID)
        case "undefined": forget(uuid: event.domainUUID)
        default: break
        }
    }

    /// The lanes of a command that names `machine`: the lane of the spelling it uses, and the
    /// lane of the machine's other spelling when the directory knows it.
    func lanes(for machine: String) -> [String] {
        let uuid = Connection.canonicalUUID(machine)
        return table.withLock { t in
            if let key = uuid {
                // A UUID's spelling; 32 hex digits may also be a name (a UUID is looked up first).
                if let name = t.nameByUUID[key] { return [key, name] }
                if let uuid = t.uuidByName[machine] { return [key, machine, uuid] }
                return [key]
            }
            if let uuid = t.uuidByName[machine] { return [machine, uuid] }
            return [machine]
        }
    }

    /// One key per spelling: a UUID in lower case with dashes, a name as it is.
    static func laneKey(_ machine: String) -> String {
        Connection.canonicalUUID(machine) ?? machine
    }
}
