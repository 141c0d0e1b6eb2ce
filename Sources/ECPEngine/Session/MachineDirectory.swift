import Libvirt
import Synchronization

/// The names and UUIDs of the machines libvirt knows, listed at each (re)connection and kept
/// current by lifecycle events, so that commands naming one machine in different spellings (its
/// name, its UUID with or without dashes, in any case) share its lanes and run in arrival order.
///
/// It decides only which commands wait for which: a stale entry costs some waiting, never a
/// wrong answer, because every command still looks its machine up in libvirt.
final class MachineDirectory: Sendable {
    private struct Table {
        var uuidByName: [String: String] = [:]
        var nameByUUID: [String: String] = [:]

        mutating func remove(uuid: String) {
            if let name = nameByUUID.removeValue(forKey: uuid), uuidByName[name] == uuid {
                uuidByName.removeValue(forKey: name)
            }
        }
    }

    private let table = Mutex(Table())

    /// Replaces everything known with one listing of the driver's machines.
    func replaceAll(_ machines: [(name: String, uuid: String)]) {
        var fresh = Table()
        for m in machines {
            fresh.uuidByName[m.name] = m.uuid
            fresh.nameByUUID[m.uuid] = m.name
        }
        table.withLock { $0 = fresh }
    }

    /// Records that `name` is the machine with `uuid` (a define, or the new name of a rename).
    func learn(name: String, uuid: String) {
        table.withLock { t in
            guard t.uuidByName[name] != uuid || t.nameByUUID[uuid] != name else { return }
            t.remove(uuid: uuid)
            if let previous = t.uuidByName[name] { t.nameByUUID.removeValue(forKey: previous) }
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
