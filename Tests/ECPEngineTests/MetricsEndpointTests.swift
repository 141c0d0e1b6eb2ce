import ECPProtocol
@testable import ECPWorker
import Synchronization
import Testing

extension String {
    fileprivate func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

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

    @Test("a scrape of 1,000 machines, each with two disks and an interface, stays within seconds even in a debug build")
    func thousandMachines() {
        let stats = FixedStats()
        var nic = InterfaceStats(name: "vnet0")
        nic.rxBytes = 1; nic.txBytes = 2; nic.rxPkts = 3; nic.txPkts = 4; nic.rxErrs = 0; nic.txErrs = 0; nic.rxDrop = 0; nic.txDrop = 0
        let disks = ["vda", "vdb"].map { BlockStats(name: $0, rdBytes: 1, wrBytes: 2, rdReqs: 3, wrReqs: 4, errs: 0) }
        let machines = (1...1000).map { i in
            MachineStats(name: "bench-m\(i)", uuid: "00000000-0000-4000-8000-\(String(i, radix: 10).leftPadded(12))", state: "running",
                         cpuTimeNs: UInt64(i) * 1_000_000, vcpus: 2, memoryKiB: 65536, maxMemoryKiB: 65536, block: disks, net: [nic])
        }
        stats.sample.withLock { $0 = StatsSample(collectedAt: "2026-01-01T00:00:00.000Z", machines: machines) }
        let e = endpoint(stats)
        _ = e.scrape()
        var bytes = 0
        let elapsed = ContinuousClock().measure { bytes = e.scrape().count }
        print("metrics scrape of 1,000 machines: \(elapsed), \(bytes) bytes")
        #expect(elapsed < .seconds(10), "\(elapsed)")
    }

    @Test("the Date header is RFC 9110's IMF-fixdate, in GMT, whatever the locale")
    func httpDate() {
        #expect(MetricsEndpoint.httpDate(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(MetricsEndpoint.httpDate(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(MetricsEndpoint.httpDate(1_798_761_599) == "Thu, 31 Dec 2026 23:59:59 GMT")
    }

    @Test("no sample: only the worker's own families")
    func noSample() {
        let text = String(decoding: endpoint(FixedStats()).scrape(), as: UTF8.self)
        #expect(!text.contains("libvirt_domain"))
        #expect(text.contains("# TYPE ecp_worker_uptime_seconds gauge"))
    }
}
