import CoreMetrics
import ECPProtocol
import Synchronization

/// The names of the worker's own metrics, shared by whoever records them and the endpoint that
/// describes them.
public enum MetricName {
    public static let commands = "ecp_worker_commands_total"
    public static let commandDuration = "ecp_worker_command_duration_seconds"
    public static let libvirtErrors = "ecp_worker_libvirt_errors_total"
    public static let requestErrors = "ecp_worker_request_errors_total"
    public static let restoreDuration = "ecp_worker_restore_duration_seconds"
    public static let restoreOutcomes = "ecp_worker_restore_outcomes_total"
    public static let stateCommits = "ecp_worker_state_commits_total"
    public static let stateCommitFailures = "ecp_worker_state_commit_failures_total"
    public static let stateCommitDuration = "ecp_worker_state_commit_duration_seconds"
    public static let messagesPublished = "ecp_worker_messages_published_total"
    public static let inFlight = "ecp_worker_in_flight_commands"
    public static let libvirtConnected = "ecp_worker_libvirt_connected"
    public static let uptime = "ecp_worker_uptime_seconds"
}

/// What a command came to, as the `outcome` label says it.
enum CommandOutcomeLabel: String, CaseIterable {
    case ok
    case libvirtError = "libvirt_error"
    case workerError = "worker_error"
}

/// The engine's figures, recorded through swift-metrics. Every series a command can touch is
/// made up front, so that recording one costs the handler's own update and no lookup in the
/// factory; only libvirt errors, whose codes are many and rare, are made on first use.
final class EngineMetrics: Sendable {
    private struct OpSeries {
        let outcomes: [Counter]
        let duration: Timer
    }

    private let factory: any MetricsFactory
    private let ops: [Op: OpSeries]
    private let requestErrors: [RequestErrorReason: Counter]
    private let restoreOutcomes: [String: (count: Counter, duration: Timer)]
    private let libvirtErrors = Mutex<[String: Counter]>([:])
    let stateCommits: Counter
    let stateCommitFailures: Counter
    let stateCommitDuration: Timer

    init(factory: any MetricsFactory) {
        self.factory = factory
        var ops: [Op: OpSeries] = [:]
        for op in Op.allCases {
            ops[op] = OpSeries(
                outcomes: CommandOutcomeLabel.allCases.map {
                    Counter(label: MetricName.commands, dimensions: [("op", op.rawValue), ("outcome", $0.rawValue)], factory: factory)
                },
                duration: Timer(label: MetricName.commandDuration, dimensions: [("op", op.rawValue)], factory: factory))
        }
        self.ops = ops
        var reasons: [RequestErrorReason: Counter] = [:]
        for reason in RequestErrorReason.allCases {
            reasons[reason] = Counter(label: MetricName.requestErrors, dimensions: [("reason", reason.rawValue)], factory: factory)
        }
        self.requestErrors = reasons
        var restores: [String: (Counter, Timer)] = [:]
        for action in RestoreAction.allCases {
            restores[action.rawValue] = (
                Counter(label: MetricName.restoreOutcomes, dimensions: [("action", action.rawValue)], factory: factory),
                Timer(label: MetricName.restoreDuration, dimensions: [("action", action.rawValue)], factory: factory)
            )
        }
        self.restoreOutcomes = restores
        stateCommits = Counter(label: MetricName.stateCommits, factory: factory)
        stateCommitFailures = Counter(label: MetricName.stateCommitFailures, factory: factory)
        stateCommitDuration = Timer(label: MetricName.stateCommitDuration, factory: factory)
    }

    static let none = EngineMetrics(factory: NOOPMetricsHandler.instance)

    func command(_ op: Op, outcome: CommandOutcomeLabel, nanoseconds: UInt64) {
        guard let series = ops[op] else { return }
        let index = switch outcome {
        case .ok: 0
        case .libvirtError: 1
        case .workerError: 2
        }
        series.outcomes[index].increment()
        series.duration.recordNanoseconds(Int64(clamping: nanoseconds))
    }

    func requestError(_ reason: RequestErrorReason) {
        requestErrors[reason]?.increment()
    }

    func restoreOutcome(action: String, milliseconds: Double) {
        guard let series = restoreOutcomes[action] else { return }
        series.count.increment()
        series.duration.recordMilliseconds(milliseconds)
    }

    func libvirtError(codeName: String, category: String) {
        let key = codeName + "\u{0}" + category
        let counter = libvirtErrors.withLock { counters in
            if let c = counters[key] { return c }
            let c = Counter(
                label: MetricName.libvirtErrors, dimensions: [("code", codeName), ("category", category)], factory: factory)
            counters[key] = c
            return c
        }
        counter.increment()
    }
}
