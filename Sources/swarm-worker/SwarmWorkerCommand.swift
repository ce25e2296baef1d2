import ArgumentParser
import AsyncHTTPClient
import CSwarmMalloc
import JobProtocol
import Logging
import SwarmCore
import Worker

import Foundation

@main
struct SwarmWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarm-worker",
        abstract: "Runs SwarmUI jobs pulled from a RunPod-compatible queue.",
        discussion: "Configuration comes from the environment; .env.example lists every variable with its default.",
        subcommands: [Run.self, Check.self, Models.self],
        defaultSubcommand: Run.self
    )
}

/// Options every subcommand shares.
struct CommonOptions: ParsableArguments {
    @Flag(help: "Use the SwarmUI already running at SWARMUI_API_URL instead of launching one (SWARMUI_ATTACH=1).")
    var attach = false

    /// The worker's configuration: its environment, read by `WorkerConfiguration` and nowhere else, and `--attach`.
    func readConfiguration() throws(WorkerConfigurationError) -> WorkerConfiguration {
        try WorkerConfiguration(environment: ProcessInfo.processInfo.environment, attach: attach)
    }

    func loadConfiguration() throws -> WorkerConfiguration {
        do throws(WorkerConfigurationError) {
            return try readConfiguration()
        } catch {
            Self.explain(error)
            throw ExitCode(2)
        }
    }

    static func explain(_ error: WorkerConfigurationError) {
        FileHandle.standardError.write(Data("swarm-worker: \(error)\nSee .env.example for every variable and its default.\n".utf8))
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Launch (or attach to) SwarmUI, wait until it can generate, and run jobs.")

    @OptionGroup var options: CommonOptions

    func run() async throws {
        Self.boundMallocHeap()
        let configuration: WorkerConfiguration
        do throws(WorkerConfigurationError) {
            configuration = try options.readConfiguration()
        } catch {
            CommonOptions.explain(error)
            if let endpoints = error.queue { await Self.report(error, to: endpoints) }
            throw ExitCode(2)
        }
        let logger = SwarmLogging.bootstrap(level: configuration.logLevel, label: "swarm-worker", redacting: configuration.secrets)
        guard let endpoints = configuration.queue else {
            logger.critical("no queue configured: set SWARM_QUEUE_URL and SWARM_WORKER_KEY, or RunPod's RUNPOD_WEBHOOK_GET_JOB and RUNPOD_AI_API_KEY")
            throw ExitCode(2)
        }
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPQueueClient.httpClientConfiguration())
        let swarmHTTP = SwarmUIClientBackend.makeHTTPClient(configuration)
        let application = WorkerApplication(
            configuration: configuration,
            swarm: SwarmUIClientBackend(configuration: configuration, httpClient: swarmHTTP, logger: logger),
            queue: HTTPQueueClient(endpoints: endpoints, httpClient: httpClient, logger: logger),
            httpClient: httpClient,
            logger: logger
        )
        logger.info(
            "swarm-worker starting",
            metadata: [
                "worker.id": "\(endpoints.workerID)", "queue": "\(endpoints.jobTakeTemplate)", "swarmui": "\(configuration.swarmUIURL)",
                "mode": "\(configuration.swarmUIMode == .attach ? "attach" : "launch")", "volume": "\(configuration.volumePath)",
            ]
        )
        let outcome: (any Error)?
        do {
            try await application.run()
            outcome = nil
        } catch {
            outcome = error
        }
        try? await httpClient.shutdown()
        try? await swarmHTTP.shutdown()
        if let outcome {
            logger.critical("swarm-worker stopped: \(outcome)")
            throw ExitCode(outcome is ReadinessError || outcome is SupervisorError || outcome is VolumePreparationError ? 3 : 1)
        }
        logger.info("swarm-worker stopped")
    }

    /// A configuration mistake fails every restart alike: the queue is told, as a permanent ERROR, for SWARM_ERROR_HOLD.
    static func report(_ error: WorkerConfigurationError, to endpoints: QueueEndpoints) async {
        let logger = SwarmLogging.bootstrap(level: .info, label: "swarm-worker")
        logger.critical("invalid configuration; reporting it to the queue for \(Int(error.errorHold.seconds)) s (SWARM_ERROR_HOLD) before exiting")
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPQueueClient.httpClientConfiguration())
        await WorkerApplication.holdReporting(
            WorkerFailure(reason: error.description, kind: .permanent),
            to: HTTPQueueClient(endpoints: endpoints, httpClient: httpClient, logger: logger),
            interval: endpoints.pingInterval,
            for: error.errorHold,
            logger: logger
        )
        try? await httpClient.shutdown()
    }

    /// Multipart uploads allocate and free an 8 MiB part buffer per part. glibc raises its mmap threshold to the size
    /// of each freed mmapped block, so from the second part on those buffers come from the heap arenas (one per
    /// thread), which keep the freed memory: peak RSS grew by about 60 MiB over a 1 GiB upload. A fixed threshold keeps
    /// large buffers mmapped, returned to the system when freed (benchmarks/output-upload.sh measures it).
    static func boundMallocHeap() {
        _ = swarm_fix_mmap_threshold(1 << 20)
    }
}
