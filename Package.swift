// swift-tools-version: 6.2
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "swarm-worker",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "swarm-worker", targets: ["swarm-worker"]),
        .executable(name: "swarmctl", targets: ["swarmctl"]),
        .executable(name: "swarmui-emulator", targets: ["swarmui-emulator"]),
        .executable(name: "vastai-emulator", targets: ["vastai-emulator"]),
        .executable(name: "fal-emulator", targets: ["fal-emulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket", from: "1.6.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2", traits: []),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // Shared primitives: JSON values, backoff, secrets, log format.
        .target(
            name: "SwarmCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log")
            ],
            swiftSettings: strictSettings
        ),
        // Typed client for SwarmUI's HTTP and WebSocket API.
        .target(
            name: "SwarmUI",
            dependencies: [
                "SwarmCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // RunPod's worker protocol: the wire vocabulary (jobs, results, uploads, reports, stages, output files), URL
        // templates and the `QueueClient` protocol. The leaf of the wire types: plain Codable, no networking.
        .target(
            name: "JobProtocol",
            dependencies: ["SwarmCore"],
            swiftSettings: strictSettings
        ),
        // The worker: supervision of SwarmUI, readiness, the job loop, health endpoint.
        .target(
            name: "Worker",
            dependencies: [
                "SwarmCore", "SwarmUI", "JobProtocol", "Storage",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // The control plane's durable state: one protocol, SQLite (GRDB) and PostgreSQL (postgres-nio).
        .target(
            name: "JobStore",
            dependencies: [
                "SwarmCore", "JobProtocol",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The control plane: RunPod-compatible API, webhooks, keys, CLI client.
        .target(
            name: "ControlPlane",
            dependencies: [
                "SwarmCore", "JobProtocol", "JobStore", "Storage", "VastAI", "Fleet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Output storage: SigV4 presigning, S3 and local backends, the worker's streaming uploader.
        .target(
            name: "Storage",
            dependencies: [
                "JobProtocol",
                "SwarmCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Typed client for vast.ai's REST API: offers, instances, templates, errors, the create request.
        .target(
            name: "VastAI",
            dependencies: [
                "SwarmCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // The fleet on vast.ai: planning, reconciling and scaling rules, offer ranking, its records on the job store,
        // status, boot watch, teardown and the service `serve` runs.
        .target(
            name: "Fleet",
            dependencies: [
                "SwarmCore", "JobProtocol", "JobStore", "VastAI",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // Stand-in for vast.ai's REST API, as slow and loose as the real one; for tests, never in product code.
        .target(
            name: "VastAIEmulator",
            dependencies: [
                "SwarmCore", "LoopbackServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // Stand-in for fal.ai's queue API and CDN, as unkind as its contract; for tests, never in product code.
        .target(
            name: "FalEmulator",
            dependencies: [
                "SwarmCore", "LoopbackServer", "ControlPlane",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "fal-emulator",
            dependencies: [
                "FalEmulator", "LoopbackServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // A Hummingbird application on an ephemeral loopback port for the length of a call: emulators, benchmarks.
        .target(
            name: "LoopbackServer",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        // Stand-in for SwarmUI on machines without a GPU; never linked into swarm-worker.
        .target(
            name: "SwarmUIEmulator",
            dependencies: [
                "SwarmCore", "LoopbackServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        // glibc's malloc tuning (mallopt), which Swift's Glibc module does not expose.
        .target(name: "CSwarmMalloc"),
        .executableTarget(
            name: "swarm-worker",
            dependencies: [
                "Worker", "JobProtocol", "SwarmCore", "CSwarmMalloc",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "swarmctl",
            dependencies: [
                "ControlPlane", "Worker", "SwarmUIEmulator", "SwarmCore", "JobStore", "JobProtocol", "VastAI", "Fleet",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "swarmui-emulator",
            dependencies: [
                "SwarmUIEmulator", "LoopbackServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "vastai-emulator",
            dependencies: [
                "VastAIEmulator", "SwarmCore", "LoopbackServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "worker-overhead",
            dependencies: [
                "Worker", "SwarmUI", "SwarmUIEmulator", "JobProtocol", "SwarmCore", "LoopbackServer",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "benchmarks/worker-overhead",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "control-plane-bench",
            dependencies: [
                "ControlPlane", "JobStore", "SwarmCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "benchmarks/control-plane",
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "output-upload",
            dependencies: [
                "Storage", "SwarmUIEmulator", "SwarmCore", "ControlPlane", "JobStore", "LoopbackServer",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "benchmarks/output-upload",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "FalEmulatorTests",
            dependencies: [
                "FalEmulator", "SwarmCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "tests/FalEmulatorTests",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SwarmCoreTests",
            dependencies: ["SwarmCore"],
            path: "tests/SwarmCoreTests",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SwarmUITests",
            dependencies: [
                "SwarmUI", "SwarmUIEmulator", "SwarmCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "tests/SwarmUITests",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "JobProtocolTests",
            dependencies: ["JobProtocol", .product(name: "Hummingbird", package: "hummingbird")],
            path: "tests/JobProtocolTests",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "WorkerTests",
            dependencies: [
                "Worker", "SwarmUIEmulator", "JobProtocol", "Storage", "SwarmCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            path: "tests/WorkerTests",
            swiftSettings: strictSettings
        ),
        // Seeding SwarmUI onto the volume and model downloads against local file servers.
        .testTarget(
            name: "ProvisioningTests",
            dependencies: [
                "Worker", "SwarmCore", "JobProtocol",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "tests/ProvisioningTests",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "JobStoreTests",
            dependencies: ["JobStore", "JobProtocol", "SwarmCore", .product(name: "GRDB", package: "GRDB.swift")],
            path: "tests/JobStoreTests",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "ControlPlaneTests",
            dependencies: [
                "ControlPlane", "JobStore", "JobProtocol", "SwarmCore", "Storage", "VastAI", "Fleet", "Worker", "FalEmulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "tests/ControlPlaneTests",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "StorageTests",
            dependencies: [
                "Storage", "SwarmCore", "JobProtocol",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "tests/StorageTests",
            resources: [.copy("Fixtures")],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "VastAITests",
            dependencies: [
                "VastAI", "VastAIEmulator", "VastAITestSupport", "SwarmCore", "JobProtocol",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "tests/VastAITests",
            swiftSettings: strictSettings
        ),
        // `withVast`: a client with short waits against a fresh vast.ai emulator, for VastAITests and FleetTests.
        .target(
            name: "VastAITestSupport",
            dependencies: [
                "VastAI", "VastAIEmulator", "SwarmCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "tests/VastAITestSupport",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "FleetTests",
            dependencies: [
                "Fleet", "VastAI", "VastAIEmulator", "VastAITestSupport", "SwarmCore", "JobProtocol",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "tests/FleetTests",
            swiftSettings: strictSettings
        ),
        // Whole programs as child processes: swarm-worker, swarmctl, the emulator.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "swarm-worker", "swarmctl", "swarmui-emulator", "JobProtocol", "SwarmCore", "VastAI", "VastAIEmulator", "LoopbackServer",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "tests/IntegrationTests",
            swiftSettings: strictSettings
        ),
    ]
)
