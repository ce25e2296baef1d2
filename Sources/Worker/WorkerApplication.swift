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
    /// Scrubs every secret of the configuration from what the worker passes on (SwarmUI's lines, pings, `/health`).
    public var redactor: SecretRedactor { SecretRedactor(configuration.secrets) }

    public init(configuration: WorkerConfiguration, swarm: any SwarmUIBackend, queue: any QueueClient, httpClient: HTTPClient, logger: Logger) {
        self.configuration = configuration
        self.swarm = swarm
        self.queue = queue
        self.httpClient = httpClient
        self.logger = logger
    }

    /// The heartbeat, SwarmUI's supervisor (unless attached) and the job loop, in start order: the worker without its
    /// health server and without preparing the volume (embedding, benchmarks).
    public func services() throws(PresetsError) -> [any Service] {
        [heartbeat()] + (try jobServices())
    }

    /// Pings from the first second: stage, download progress or error, jobs, SwarmUI's last lines (secrets redacted).
    func heartbeat() -> Heartbeat {
        Heartbeat(
            queue: queue,
            state: state,
            interval: configuration.queue?.pingInterval ?? .seconds(10),
            logger: logger,
            report: { [state, monitor, redactor] in
                // Scrubbed whole: the error reason may quote SwarmUI's status message, the tail its lines.
                let report = await state.snapshot().report(swarmUIRestarts: await monitor.restarts, logTail: await monitor.lastLines.suffix(20))
                return WorkerReport(json: redactor.redact(report.jsonValue))
            }
        )
    }

    /// SwarmUI's supervisor (unless attached) and the job loop, which need the prepared volume.
    func jobServices() throws(PresetsError) -> [any Service] {
        let presets = try configuration.loadPresets()
        let runner = JobRunner(
            swarm: swarm,
            parser: JobInputParser(presets: presets),
            queue: queue,
            httpClient: httpClient,
            inlineMaxBytes: configuration.inlineMaxBytes,
            uploadsViaQueue: configuration.queue?.acceptsUploads ?? false,
            bucket: configuration.outputBucket,
            keptOutputsPath: configuration.keptOutputsPath,
            deletesDeliveredOutputs: !configuration.keepsSwarmUIOutputs,
            generationTimeout: configuration.generationTimeout,
            logger: logger
        )
        let outbox = ResultOutbox(directory: configuration.outboxPath, queue: queue, state: state, logger: logger)
        let monitor = monitor
        let readiness = ReadinessWait(
            swarm: swarm,
            requirements: BackendRequirements(presets: presets),
            timeout: configuration.startupTimeout,
            erroredGrace: configuration.erroredGrace,
            processFailure: { await monitor.failure },
            everReady: { [state] in await state.swarmUIEverReady },
            mark: { [state] in await state.markBoot($0) },
            logger: logger
        )
        let loop = JobLoop(
            queue: queue,
            runner: runner,
            outbox: outbox,
            state: state,
            readiness: readiness,
            shutdownGrace: configuration.shutdownGrace,
            logger: logger
        )
        var services: [any Service] = []
        if case .launch(let folder, let host, let port) = configuration.swarmUIMode {
            var supervisor = SwarmUISupervisor(
                folder: folder,
                host: host,
                port: port,
                monitor: monitor,
                state: state,
                environment: configuration.swarmUIEnvironment,
                redactor: redactor,
                logger: logger
            )
            supervisor.launchEnvironment = { [volume = configuration.volumePath, given = configuration.swarmUIEnvironment] in
                ComfyUISpeedups.launchEnvironment(volume: volume, given: given)
            }
            services.append(supervisor)
        }
        services.append(loop)
        return services
    }

    /// Runs until SIGTERM or SIGINT (graceful) or until a service fails; the error says why. The health server and
    /// the heartbeat run from the start, so `/health` and the control plane see PROVISIONING, DOWNLOADING and an
    /// ERROR of the preparation, which is reported for `errorHold` before the worker exits.
    public func run() async throws {
        let health = HealthServer(
            host: configuration.healthHost,
            port: configuration.healthPort,
            state: state,
            monitor: monitor,
            redactor: redactor,
            logger: logger
        )
        let worker = AfterVolumePrepared(
            prepare: { [configuration, state, logger] in
                try await WorkerBootstrap.prepareVolume(configuration: configuration, state: state, logger: logger)
            },
            services: { [self] in try jobServices() },
            state: state,
            errorHold: configuration.errorHold,
            logger: logger
        )
        // Shut down in reverse: the jobs finish while the heartbeat still keeps their leases.
        try await ServiceGroup(services: [health, heartbeat(), worker], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
    }
}

extension WorkerApplication {
    /// Reports `failure` as ERROR to the queue every `interval` for `hold` (or until SIGTERM/SIGINT), for a worker that
    /// cannot even start its services (an invalid configuration): exiting at once would have its supervisor start it
    /// again, fail the same way, and loop with no one told why.
    public static func holdReporting(
        _ failure: WorkerFailure,
        to queue: any QueueClient,
        interval: Duration,
        for hold: Duration,
        logger: Logger
    ) async {
        let state = WorkerState()
        await state.setStage(.error(failure))
        let heartbeat = Heartbeat(queue: queue, state: state, interval: interval, logger: logger) { WorkerReport(stage: .error(failure)) }
        try? await ServiceGroup(
            services: [heartbeat, ErrorHold(duration: hold)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ).run()
    }
}

/// Ends after `duration` or at graceful shutdown, which ends the group it is in.
private struct ErrorHold: Service {
    let duration: Duration

    func run() async throws {
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) }
    }
}

/// Seeds SwarmUI and downloads models, then runs the services that need them; SIGTERM during the downloads stops
/// them (partial files resume on the next start). A failure is reported as ERROR for `errorHold` before it ends the
/// worker: exiting at once would only have the supervisor start it again, fail again, and loop with no one told why.
struct AfterVolumePrepared: Service {
    let prepare: @Sendable () async throws -> Void
    let services: @Sendable () throws -> [any Service]
    let state: WorkerState
    let errorHold: Duration
    let logger: Logger

    func run() async throws {
        do {
            do {
                try await cancelWhenGracefulShutdown { try await prepare() }
            } catch is CancellationError where Task.isShuttingDownGracefully {
                return
            }
            let services: [any Service]
            do {
                services = try self.services()
            } catch let error as PresetsError {
                await state.setStage(.error(WorkerFailure(reason: error.description, kind: .permanent)))
                throw error
            }
            // Nested, so the parent's graceful shutdown reaches these too; any of them ending ends the worker.
            try await ServiceGroup(
                configuration: .init(
                    services: services.map {
                        .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
                    },
                    logger: logger
                )
            ).run()
        } catch {
            if await state.stage.failure == nil {
                await state.setStage(.error(WorkerFailure(reason: "\(error)", kind: .transient)))
            }
            let reported = await state.stage.failure
            logger.critical(
                "\(error)",
                metadata: [
                    "kind": "\(reported?.kind.rawValue ?? "transient")",
                    "exit_in": "\(Int(errorHold.seconds)) s (SWARM_ERROR_HOLD), reporting ERROR meanwhile",
                ]
            )
            // A SIGTERM meanwhile ends the wait: the worker is being stopped anyway.
            try? await ErrorHold(duration: errorHold).run()
            throw error
        }
    }
}
