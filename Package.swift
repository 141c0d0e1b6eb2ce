// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ecp-worker",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ecp-worker", targets: ["ecp-worker"]),
        .executable(name: "ecpctl", targets: ["ecpctl"]),
        .executable(name: "ecp-bench", targets: ["ecp-bench"]),
        .executable(name: "ecp-console", targets: ["ecp-console"]),
        .library(name: "ZeroMQ", targets: ["ZeroMQ"]),
        .library(name: "Libvirt", targets: ["Libvirt"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.1.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .systemLibrary(
            name: "CLibvirt",
            pkgConfig: "libvirt",
            providers: [.apt(["libvirt-dev"])]
        ),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"]),
        .target(name: "Threading"),
        .target(name: "Libvirt", dependencies: ["CLibvirt", "Threading"]),
        // No dependencies: scripts/fuzz.sh compiles its sources alone with libFuzzer.
        .target(name: "ECPProtocol"),
        // The engine: commands, dispatcher, operations, restore, state table. It knows libvirt
        // and the protocol, never ZeroMQ: messages leave it through a MessageSink.
        .target(
            name: "ECPEngine",
            dependencies: [
                "Libvirt", "ECPProtocol", "Threading",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // The transport: the worker's three sockets, CURVE and its ZAP handler.
        .target(
            name: "ECPTransport",
            dependencies: [
                "ZeroMQ", "ECPProtocol", "Threading",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // Starting a worker on the libvirt test driver, for ecp-bench and the tests.
        .target(name: "WorkerLauncher", dependencies: ["ZeroMQ"]),
        // One JSON object (or a line for people) per log record: the worker's and the console's logs.
        .target(
            name: "StructuredLogging",
            dependencies: ["ECPProtocol", .product(name: "Logging", package: "swift-log")]
        ),
        // The worker: an engine wired to a transport, as a service; its configuration.
        .target(
            name: "ECPWorker",
            dependencies: [
                "ECPEngine", "ECPTransport", "ZeroMQ", "ECPProtocol", "Threading",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "ecp-worker",
            dependencies: [
                "ECPWorker", "ECPEngine", "StructuredLogging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "ecpctl",
            dependencies: [
                "ZeroMQ", "ECPProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "ecp-bench",
            dependencies: [
                "ZeroMQ", "ECPProtocol", "WorkerLauncher", "Libvirt",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The web console: a client of any number of workers with a web page of its own. Nothing
        // of the worker links it.
        .target(
            name: "ECPConsole",
            dependencies: [
                "ZeroMQ", "ECPProtocol", "Threading",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "ecp-console",
            dependencies: [
                "ECPConsole", "ZeroMQ", "ECPProtocol", "StructuredLogging",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ]
        ),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "LibvirtTests", dependencies: ["Libvirt", "WorkerLauncher"]),
        .testTarget(name: "ECPProtocolTests", dependencies: ["ECPProtocol"]),
        .testTarget(
            name: "ECPEngineTests",
            dependencies: [
                "ECPEngine", "ECPWorker", "ECPProtocol", "Libvirt", "WorkerLauncher",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "EndToEndTests", dependencies: ["ZeroMQ", "ECPProtocol", "WorkerLauncher"]),
        .testTarget(
            name: "ConsoleTests",
            dependencies: [
                "ECPConsole", "ZeroMQ", "ECPProtocol", "WorkerLauncher",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
