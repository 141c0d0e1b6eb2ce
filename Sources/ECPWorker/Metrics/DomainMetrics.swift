import ECPProtocol
import Libvirt
import Prometheus

/// The machines' stats under the Prometheus libvirt exporter's names and labels, so that
/// dashboards made for that exporter read the worker unchanged.
///
/// A fresh registry per scrape: a machine that is gone leaves no stale series behind, and no
/// series outlives the sample it came from.
enum DomainMetrics {
    static func registry(for sample: StatsSample) -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        for machine in sample.machines {
            let domain = [("domain", machine.name), ("uuid", machine.uuid)]
            gauge(registry, "libvirt_domain_info_vstate", domain, Double(Self.stateNumber(machine.state)),
                  "Virtual domain state. 0: no state, 1: running, 2: blocked, 3: paused, 4: being shut down, 5: shut off, 6: crashed, 7: suspended by guest power management.")
            if let ns = machine.cpuTimeNs {
                registry.makeCounter(
                    descriptor: describe("libvirt_domain_info_cpu_time_seconds_total", "Amount of CPU time used by the domain, in seconds."),
                    labels: domain)
                    .increment(by: Double(ns) / 1e9)
            }
            if let kib = machine.memoryKiB {
                gauge(registry, "libvirt_domain_info_memory_usage_bytes", domain, Double(kib) * 1024,
                      "Memory usage of the domain, in bytes.")
            }
            if let kib = machine.maxMemoryKiB {
                gauge(registry, "libvirt_domain_info_maximum_memory_bytes", domain, Double(kib) * 1024,
                      "Maximum allowed memory of the domain, in bytes.")
            }
            if let vcpus = machine.vcpus {
                gauge(registry, "libvirt_domain_info_virtual_cpus", domain, Double(vcpus), "Number of virtual CPUs for the domain.")
            }
            for disk in machine.block {
                let labels = domain + [("target_device", disk.name)]
                counter(registry, "libvirt_domain_block_stats_read_bytes_total", labels, disk.rdBytes, "Number of bytes read from a block device, in bytes.")
                counter(registry, "libvirt_domain_block_stats_write_bytes_total", labels, disk.wrBytes, "Number of bytes written to a block device, in bytes.")
                counter(registry, "libvirt_domain_block_stats_read_requests_total", labels, disk.rdReqs, "Number of read requests from a block device.")
                counter(registry, "libvirt_domain_block_stats_write_requests_total", labels, disk.wrReqs, "Number of write requests to a block device.")
                counter(registry, "libvirt_domain_block_stats_errors_total", labels, disk.errs, "Number of errors on a block device.")
            }
            for nic in machine.net {
                let labels = domain + [("target_device", nic.name)]
                counter(registry, "libvirt_domain_interface_stats_receive_bytes_total", labels, nic.rxBytes, "Number of bytes received on a network interface, in bytes.")
                counter(registry, "libvirt_domain_interface_stats_transmit_bytes_total", labels, nic.txBytes, "Number of bytes transmitted on a network interface, in bytes.")
                counter(registry, "libvirt_domain_interface_stats_receive_packets_total", labels, nic.rxPkts, "Number of packets received on a network interface.")
                counter(registry, "libvirt_domain_interface_stats_transmit_packets_total", labels, nic.txPkts, "Number of packets transmitted on a network interface.")
                counter(registry, "libvirt_domain_interface_stats_receive_errors_total", labels, nic.rxErrs, "Number of packet receive errors on a network interface.")
                counter(registry, "libvirt_domain_interface_stats_transmit_errors_total", labels, nic.txErrs, "Number of packet transmit errors on a network interface.")
                counter(registry, "libvirt_domain_interface_stats_receive_drops_total", labels, nic.rxDrop, "Number of packet receive drops on a network interface.")
                counter(registry, "libvirt_domain_interface_stats_transmit_drops_total", labels, nic.txDrop, "Number of packet transmit drops on a network interface.")
            }
        }
        return registry
    }

    /// libvirt's `virDomainState` number for a state name; a name it does not know is "no state".
    static func stateNumber(_ name: String) -> Int32 {
        DomainState.allCases.first { $0.name == name }?.rawValue ?? DomainState.nostate.rawValue
    }

    private static func describe(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    private static func gauge(_ registry: PrometheusCollectorRegistry, _ name: String, _ labels: [(String, String)], _ value: Double, _ help: String) {
        registry.makeGauge(descriptor: describe(name, help), labels: labels).set(to: value)
    }

    /// A figure libvirt did not give is left out, never written as 0.
    private static func counter(_ registry: PrometheusCollectorRegistry, _ name: String, _ labels: [(String, String)], _ value: UInt64?, _ help: String) {
        guard let value else { return }
        registry.makeCounter(descriptor: describe(name, help), labels: labels).increment(by: Int64(clamping: value))
    }
}
