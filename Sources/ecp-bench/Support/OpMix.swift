import ECPProtocol

/// The operations a load run sends, with weights: `status=8,suspend=1,resume=1`.
///
/// The weights become a fixed cycle (smooth weighted round-robin: `status` ×8 spread between one
/// `suspend` and one `resume`), so a run is the same sequence every time. Operations on a machine
/// take the machines in turn (`--machines a,b,c`).
///
/// When the mix holds both `suspend` and `resume`, their draws are paired per machine: each one
/// is sent as whatever flips that machine (`suspend` when the bench last left it running,
/// `resume` when it left it paused). The worker runs one machine's commands in arrival order,
/// and the bench sends them from one socket in order, so the sequence holds with any number in
/// flight: every such command changes the state (`changed: true`), and the suspend and resume
/// counts differ by at most one per machine. A run starts from each machine's state as `status`
/// reports it and, at the end, puts back any machine left in the other state.
struct OpMix: CustomStringConvertible {
    /// The ops a run may use: read-only ones, and the suspend/resume pair, which a run can undo.
    static let allowed: [Op] = [.status, .suspend, .resume, .ping, .list, .report, .stats]

    var weights: [(op: Op, weight: Int)]

    init(parsing text: String) throws(MixError) {
        var weights: [(op: Op, weight: Int)] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: true) {
            let pieces = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard let name = pieces.first, let op = Op(rawValue: name) else {
                throw MixError("unknown op in \(String(part).debugDescription); a mix uses \(Self.allowed.map(\.rawValue).joined(separator: ", "))")
            }
            guard Self.allowed.contains(op) else {
                throw MixError("op \(op.rawValue) cannot be in a mix (it would change machines in ways a run cannot undo); use \(Self.allowed.map(\.rawValue).joined(separator: ", "))")
            }
            let weight: Int
            if pieces.count == 2 {
                guard let w = Int(pieces[1]), w >= 0, w <= 1000 else {
                    throw MixError("the weight of \(op.rawValue) must be an integer from 0 to 1000, got \(pieces[1].debugDescription)")
                }
                weight = w
            } else {
                weight = 1
            }
            guard !weights.contains(where: { $0.op == op }) else { throw MixError("op \(op.rawValue) appears twice in the mix") }
            if weight > 0 { weights.append((op, weight)) }
        }
        guard !weights.isEmpty else { throw MixError("the mix is empty: give at least one op with a positive weight, e.g. status=1") }
        self.weights = weights
    }

    /// One cycle of ops, as long as the sum of the weights, each op spread evenly.
    var cycle: [Op] {
        let total = weights.reduce(0) { $0 + $1.weight }
        var current = [Int](repeating: 0, count: weights.count)
        var out: [Op] = []
        out.reserveCapacity(total)
        for _ in 0..<total {
            var best = 0
            for k in weights.indices {
                current[k] += weights[k].weight
                if current[k] > current[best] { best = k }
            }
            current[best] -= total
            out.append(weights[best].op)
        }
        return out
    }

    /// Whether suspend and resume are sent as per-machine pairs.
    var pairsSuspendResume: Bool {
        weights.contains { $0.op == .suspend } && weights.contains { $0.op == .resume }
    }

    /// Whether any op of the mix names a machine.
    var needsMachine: Bool { weights.contains { $0.op.needsMachine } }

    /// Whether any op of the mix changes a machine's state.
    var changesState: Bool { weights.contains { $0.op.changesState } }

    var description: String { weights.map { "\($0.op.rawValue)=\($0.weight)" }.joined(separator: ",") }

    /// The weights, for JSON.
    var dictionary: [String: Int] { Dictionary(uniqueKeysWithValues: weights.map { ($0.op.rawValue, $0.weight) }) }
}

struct MixError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
