import CoreMetrics
import ECPEngine
import ECPTransport
import Prometheus

/// swift-metrics' factory for the worker's own figures: a Prometheus registry of its own (never
/// the process-wide one), whose families carry help texts and buckets chosen for what they time.
struct WorkerMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry

    static let help: [String: String] = [
        MetricName.commands: "Commands answered, by op and outcome (ok, libvirt_error, worker_error).",
        MetricName.commandDuration: "Time from a command's acceptance to its answer, by op.",
        MetricName.libvirtErrors: "libvirt errors reported, by libvirt code name and protocol category.",
        MetricName.requestErrors: "Requests refused before they ran (request_error messages), by reason.",
        MetricName.restoreDuration: "Time one machine's restore took, by the action taken.",
        MetricName.restoreOutcomes: "Machines restored, by the action taken (started, resumed, already_running, missing, skipped, failed).",
        MetricName.stateCommits: "Writes of the state table that reached the disk (each commits a batch of changes).",
        MetricName.stateCommitFailures: "Writes of the state table that failed and are retried.",
        MetricName.stateCommitDuration: "Time one write of the state table took (temporary file, fsync, rename).",
        SocketTransport.publishedMetric: "Messages published on the events socket, by topic without the worker id (result, ack, error.libvirt, ...).",
        MetricName.inFlight: "Commands accepted and not yet answered.",
        MetricName.libvirtConnected: "1 while the libvirt connection is up, else 0.",
        MetricName.uptime: "Seconds since the worker started.",
    ]

    /// Commands on the test driver answer in microseconds, a machine's boot takes seconds: the
    /// buckets span both.
    static let commandBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        .seconds(30), .seconds(60), .seconds(120),
    ]
    static let commitBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
    ]

    private func describe(_ label: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: label, unitName: "", helpText: Self.help[label] ?? "")
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: describe(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: describe(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        registry.makeGauge(descriptor: describe(label), labels: dimensions)
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: describe(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let buckets = label == MetricName.stateCommitDuration ? Self.commitBuckets : Self.commandBuckets
        return registry.makeDurationHistogram(descriptor: describe(label), labels: dimensions, buckets: buckets)
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}
