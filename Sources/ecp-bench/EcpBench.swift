import ArgumentParser

@main
struct EcpBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ecp-bench",
        abstract: "Measures an ecp-worker from outside, over its ZeroMQ sockets and its metrics endpoint: throughput, latency, restore, start-up, memory, scrapes, and a soak under attack.",
        discussion: """
            Each subcommand prints an aligned table, or with --json one JSON object on standard output. \
            Latencies are from the moment a command is sent to the moment its result arrives on the \
            events socket, in microseconds (HdrHistogram, 3 significant digits).

            throughput, latency and memory drive a worker with commands on its commands socket \
            (the bench's PUB binds @tcp://127.0.0.1:5555, where a worker with default options \
            connects) and read results on its events socket; with --spawn (always for memory) the \
            bench starts a worker of its own on free ports with the libvirt test driver. restore, \
            startup and metrics always start their own workers; metrics scrapes the worker's \
            Prometheus endpoint over HTTP. Started workers are stopped (SIGTERM, then \
            waited for) when the bench ends, also when it is interrupted.

            Every run is bounded: --timeout-s in all, and it stops by itself when no result has come \
            for --stall-s (10 s), reporting what it got.

            Exit status: 0 the run completed and every command succeeded; 3 it completed but some \
            commands (metrics: scrapes) failed (see the failures rows); 1 it stopped before the end (time limit, no \
            more results, the worker exited); 2 it could not start (no worker answering, bad options).
            """,
        subcommands: [
            ThroughputCommand.self, LatencyCommand.self, StatsCommand.self, RestoreCommand.self, StartupCommand.self, MemoryCommand.self, MetricsCommand.self, SoakCommand.self,
        ])
}
