import AsyncHTTPClient
import JobProtocol
import Logging
import ServiceLifecycle
import SwarmCore
import UnixSignals

/// The worker assembled: the health server, SwarmUI's supervisor (unless attached) and the job loop, as one
/// `ServiceGroup`. Shutdown runs in reverse: the job loop stops taking jobs and finishes (or interrupts) the
/// running one first, then SwarmUI gets SIGTERM, then the health server closes.
public struct WorkerApplication: Sendable {
    public var configuration: WorkerConfiguration
    public var swarm: any SwarmUIBackend
    public var queue: any QueueClient
    public var httpClient: HTTPClient
    public var logger: Logger
    public let state = WorkerState()
    public let monitor = SwarmUIProcessMonitor()

    public init(configuration: WorkerConfiguration, swarm: any SwarmUIBackend, queue: any QueueClient, httpClient: HTTPClient, logger: Logger) {
        self.configuration = configuration
        self.swarm = swarm
        self.queue = queue
        self.httpClient = httpClient
        self.logger = logger
    }

    /// SwarmUI's supervisor (unless attached) and the job loop, in start order: the worker without its health server
    /// and without preparing the volume (embedding, benchmarks).
    public func services() throws(PresetsError) -> [any Service] {
        let presets = try Presets.load(path: configuration.presetsFile)
        let runner = JobRunner(
            swarm: swarm, parser: JobInputParser(presets: presets), queue: queue, httpClient: httpClient,
            inlineMaxBytes: configuration.inlineMaxBytes,
            uploadsViaQueue: configuration.queue?.acceptsUploads ?? false, bucket: configuration.outputBucket,
            keptOutputsPath: configuration.keptOutputsPath, deletesDeliveredOutputs: !configuration.keepsSwarmUIOutputs, logger: logger)
        let outbox = ResultOutbox(directory: configuration.outboxPath, queue: queue, state: state, logger: logger)
        let monitor = monitor
        let readiness = ReadinessWait(
            swarm: swarm, timeout: configuration.startupTimeout, processFailure: { await monitor.failure },
            mark: { [state] in await state.markBoot($0) }, logger: logger)
        let loop = JobLoop(
            queue: queue, runner: runner, outbox: outbox, state: state, readiness: readiness,
            pingInterval: configuration.queue?.pingInterval ?? .seconds(10), shutdownGrace: configuration.shutdownGrace, logger: logger,
            report: { [state, secrets = configuration.secrets] in
                let tail = await monitor.lastLines.suffix(20).map { $0.redacting(secrets) }
                return await state.snapshot().report(swarmUIRestarts: await monitor.restarts, logTail: tail)
            })
        var services: [any Service] = []
        if case .launch(let folder, let host, let port) = configuration.swarmUIMode {
            var supervisor = SwarmUISupervisor(folder: folder, host: host, port: port, monitor: monitor, state: state, logger: logger)
            supervisor.launchEnvironment = { [volume = configuration.volumePath] in ComfyUISpeedups.launchEnvironment(volume: volume) }
            services.append(supervisor)
        }
        services.append(loop)
        return services
    }

    /// Runs until SIGTERM or SIGINT (graceful) or until a service fails; the error says why. The health server
    /// answers from the start, so `/health` shows PROVISIONING and DOWNLOADING while the volume is prepared.
    public func run() async throws {
        let health = HealthServer(
            host: configuration.healthHost, port: configuration.healthPort, state: state, monitor: monitor, logger: logger)
        let worker = AfterVolumePrepared(
            prepare: { [configuration, state, logger] in
                try await WorkerBootstrap.prepareVolume(configuration: configuration, state: state, logger: logger)
            },
            services: try services(), logger: logger)
        try await ServiceGroup(services: [health, worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
    }
}

/// Seeds SwarmUI and downloads models, then runs the services that need them; SIGTERM during the downloads stops
/// them (partial files resume on the next start).
struct AfterVolumePrepared: Service {
    let prepare: @Sendable () async throws -> Void
    let services: [any Service]
    let logger: Logger

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await prepare() }
        } catch is CancellationError where Task.isShuttingDownGracefully {
            return
        }
        // Nested, so the parent's graceful shutdown reaches these too; any of them ending ends the worker.
        try await ServiceGroup(
            configuration: .init(
                services: services.map {
                    .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
                },
                logger: logger)
        ).run()
    }
}
