import ECPProtocol
import ECPWorker
import Synchronization
import Testing

/// A stats source whose sample the test sets.
final class FixedStats: StatsSource {
    let sample = Mutex<StatsSample?>(nil)
    func latestStats() -> StatsSample? { sample.withLock { $0 } }
}

@Suite("Metrics endpoint: the scrape's text")
struct MetricsEndpointTests {
    private func endpoint(_ stats: FixedStats) -> MetricsEndpoint {
        let e = MetricsEndpoint()
        e.attach(readings: MetricsReadings(inFlight: { 3 }, libvirtConnected: { true }, uptimeSeconds: { 12.5 }), stats: stats)
        return e
    }

    @Test("the machines' stats are written under the libvirt exporter's names; a null figure is left out")
    func domainFamilies() {
        let stats = FixedStats()
        var disk = BlockStats(name: "vda", rdBytes: 4096, wrBytes: nil, rdReqs: 2, wrReqs: 1, errs: 0)
        disk.wrBytes = nil
        var nic = InterfaceStats(name: "vnet0")
        nic.rxBytes = 100
        nic.txBytes = 200
        stats.sample.withLock {
            $0 = StatsSample(collectedAt: "2026-01-01T00:00:00.000Z", machines: [
                MachineStats(name: "web1", uuid: "u-1", state: "running", cpuTimeNs: 1_500_000_000, vcpus: 2,
                             memoryKiB: 1024, maxMemoryKiB: 2048, block: [disk], net: [nic]),
                MachineStats(name: "db1", uuid: "u-2", state: "shutoff"),
            ])
        }
        let e = endpoint(stats)
        let text = String(decoding: e.scrape(), as: UTF8.self)
        #expect(text.contains(#"libvirt_domain_info_vstate{domain="web1",uuid="u-1"} 1"#), "\(text)")
        #expect(text.contains(#"libvirt_domain_info_vstate{domain="db1",uuid="u-2"} 5"#))
        #expect(text.contains(#"libvirt_domain_info_cpu_time_seconds_total{domain="web1",uuid="u-1"} 1.5"#))
        #expect(text.contains(#"libvirt_domain_info_memory_usage_bytes{domain="web1",uuid="u-1"} 1048576"#))
        #expect(text.contains(#"libvirt_domain_info_maximum_memory_bytes{domain="web1",uuid="u-1"} 2097152"#))
        #expect(text.contains(#"libvirt_domain_info_virtual_cpus{domain="web1",uuid="u-1"} 2"#))
        #expect(text.contains(#"libvirt_domain_block_stats_read_bytes_total{domain="web1",uuid="u-1",target_device="vda"} 4096"#))
        #expect(!text.contains("libvirt_domain_block_stats_write_bytes_total{"), "a null figure is no series")
        #expect(text.contains(#"libvirt_domain_interface_stats_transmit_bytes_total{domain="web1",uuid="u-1",target_device="vnet0"} 200"#))
        #expect(!text.contains("libvirt_domain_interface_stats_receive_drops_total{"))
        #expect(!text.contains(#"libvirt_domain_info_cpu_time_seconds_total{domain="db1""#))
        #expect(text.contains("# HELP libvirt_domain_info_vstate "))
        #expect(text.contains("ecp_worker_in_flight_commands 3"))
        #expect(text.contains("ecp_worker_libvirt_connected 1"))

        // A machine that is gone leaves the output at the next scrape.
        stats.sample.withLock { $0 = StatsSample(collectedAt: "2026-01-01T00:00:01.000Z", machines: [MachineStats(name: "db1", uuid: "u-2", state: "running")]) }
        let next = String(decoding: e.scrape(), as: UTF8.self)
        #expect(!next.contains("web1"), "\(next)")
        #expect(next.contains(#"libvirt_domain_info_vstate{domain="db1",uuid="u-2"} 1"#))
    }

    @Test("no sample: only the worker's own families")
    func noSample() {
        let text = String(decoding: endpoint(FixedStats()).scrape(), as: UTF8.self)
        #expect(!text.contains("libvirt_domain"))
        #expect(text.contains("# TYPE ecp_worker_uptime_seconds gauge"))
    }
}
