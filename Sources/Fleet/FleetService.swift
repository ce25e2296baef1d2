import Logging
import ServiceLifecycle
import SwarmCore
import VastAI

/// What `FleetService` reads from serve's fleet settings. `FleetSettings` (ControlPlane, which reads flags and
/// environment) conforms; the protocol keeps the service below the control plane.
public protocol FleetServiceSettings: Sendable {
    var vast: VastAIClient.Configuration { get }
    var policy: FleetPolicy { get }
    var filter: OfferFilter { get }
    var download: DownloadEstimate { get }
    /// What instances put in `SWARM_QUEUE_URL`.
    var queueURL: String { get }
    var roundInterval: Duration { get }
    /// The create body for the instance labeled `label`, whose worker key is `workerKey`.
    func createRequest(label: String, workerKey: Secret) -> CreateInstanceRequest
    /// The scaler's inputs, read from `store` each round.
    func scaling(store: DatabaseFleetStore, logger: Logger) -> FleetScaling
}

/// Runs the `FleetReconciler` beside the server, from the moment the server (and so the migrated store) is up until
/// graceful shutdown. Instances are left running on shutdown: the next `serve` adopts them.
public struct FleetService: Service {
    private let settings: any FleetServiceSettings
    private let store: DatabaseFleetStore
    private let serverRunning: AsyncStream<Void>
    private let logger: Logger

    public init(settings: any FleetServiceSettings, store: DatabaseFleetStore, serverRunning: AsyncStream<Void>, logger: Logger) {
        self.settings = settings
        self.store = store
        self.serverRunning = serverRunning
        self.logger = logger
    }

    public func run() async throws {
        var started = serverRunning.makeAsyncIterator()
        guard await started.next() != nil else { return }
        let settings = settings
        let store = store
        let reconciler = FleetReconciler(
            client: VastAIClient(configuration: settings.vast, logger: logger),
            store: store,
            planner: FleetPlanner(policy: settings.policy),
            filter: settings.filter,
            download: settings.download,
            logger: logger
        ) { label in
            // The worker reports as `label`, which is how its pings are matched to the instance.
            settings.createRequest(label: label, workerKey: try await store.mintWorkerKey(label: label))
        }
        await reconciler.enableScaling(settings.scaling(store: store, logger: logger))
        // `swarmctl instance up N|down` outranks --fleet-size until `instance up` hands the count back.
        let stored = try? await store.desiredSize()
        let wanted =
            stored.flatMap { $0 }.map {
                "\($0) (set with 'swarmctl instance up|down'; --fleet-size \(settings.policy.desiredSize) applies after 'swarmctl instance up')"
            }
            ?? "\(settings.policy.desiredSize)"
        logger.notice(
            "fleet on: keeping \(wanted) vast.ai instance(s) labeled \(settings.policy.labelStem)…",
            metadata: ["vast": "\(settings.vast.baseURL)", "queue": "\(settings.queueURL)"]
        )
        await cancelWhenGracefulShutdown {
            await reconciler.run(interval: settings.roundInterval)
        }
    }
}
