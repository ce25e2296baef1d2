import Foundation
import JobStore
import Logging
import ServiceLifecycle
import SwarmCore
import VastAI

/// `swarmctl serve`'s fleet flags, as parsed; nil fields fall back to the environment, then to the defaults.
public struct FleetOptions: Sendable {
    public var size: Int?
    public var gpus: [String] = []
    public var maxDPH: Double?
    public var image: String?
    public var template: String?
    public var diskGB: Double?
    public var labelPrefix = "swarm"
    public var budgetPerDay: Double?
    public var heartbeatTimeout: Duration = .seconds(300)
    public var startWarning: Duration = .seconds(20 * 60)
    /// nil: a slow start is never replaced.
    public var startReplaceAfter: Duration?
    /// The server's URL as instances reach it.
    public var publicURL: String?
    /// What a new instance pulls (image and models), for ranking offers by their first 10 minutes.
    public var downloadGB: Double = 48
    public var roundInterval: Duration = .seconds(15)
    public var rebootGrace: Duration = .seconds(300)

    public init() {}
}

/// The fleet `serve` keeps on vast.ai: on when `VAST_API_KEY` is set.
///
/// Environment: `VAST_API_KEY`, `VAST_API_URL`, `SWARM_FLEET_SIZE`, `SWARM_FLEET_GPU` (comma-separated),
/// `SWARM_FLEET_MAX_DPH`, `SWARM_FLEET_DISK_GB`, `SWARM_PUBLIC_URL`.
public struct FleetSettings: Sendable {
    public var vast: VastAIClient.Configuration
    public var policy: FleetPolicy
    public var filter: OfferFilter
    public var source: CreateInstanceRequest.Source
    public var diskGB: Double
    /// What instances put in `SWARM_QUEUE_URL`: `<public URL>/v2/swarmui`.
    public var queueURL: String
    public var download: DownloadEstimate
    public var roundInterval: Duration

    /// nil when `VAST_API_KEY` is unset: no fleet.
    public init?(options: FleetOptions, environment: [String: String]) throws(ServeError) {
        guard environment["VAST_API_KEY"].map({ !$0.trimmingCharacters(in: .whitespaces).isEmpty }) == true else { return nil }
        do {
            vast = try VastAIClient.Configuration(environment: environment)
        } catch {
            throw ServeError("VAST_API_KEY: \(error)")
        }
        let env = { (name: String) in environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        func number<T: LosslessStringConvertible>(_ flag: String, _ variable: String, _ value: T?) throws(ServeError) -> T? {
            if let value { return value }
            guard let text = env(variable) else { return nil }
            guard let parsed = T(text) else { throw ServeError("\(variable): '\(text)' is not a number (\(flag))") }
            return parsed
        }
        let size = try number("--fleet-size", "SWARM_FLEET_SIZE", options.size) ?? 1
        guard size >= 0 else { throw ServeError("--fleet-size: must be 0 or more") }
        diskGB = try number("--disk", "SWARM_FLEET_DISK_GB", options.diskGB) ?? 100
        guard diskGB > 0 else { throw ServeError("--disk: must be more than 0 GB") }
        let gpus = options.gpus.isEmpty ? (env("SWARM_FLEET_GPU") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } : options.gpus
        filter = OfferFilter(gpuNames: gpus, diskGB: diskGB, maxDPH: try number("--max-dph", "SWARM_FLEET_MAX_DPH", options.maxDPH))

        switch (options.image, options.template) {
        case (let image?, nil): source = .image(image)
        case (nil, let template?): source = .template(hashID: template)
        case (nil, nil): throw ServeError("VAST_API_KEY is set, so the fleet is on: give the worker's --image or a --template hash")
        case (.some, .some): throw ServeError("--image and --template: give one, not both")
        }
        guard !options.labelPrefix.isEmpty, options.labelPrefix.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        else { throw ServeError("--fleet-label: '\(options.labelPrefix)' must be letters, digits, '-' or '_'") }
        guard let publicURL = options.publicURL ?? env("SWARM_PUBLIC_URL"), let url = URL(string: publicURL),
            url.scheme == "http" || url.scheme == "https", url.host != nil
        else {
            throw ServeError("VAST_API_KEY is set, so the fleet is on: give --public-url (or SWARM_PUBLIC_URL), the http(s) URL instances reach this server at")
        }
        var base = publicURL
        while base.hasSuffix("/") { base.removeLast() }
        queueURL = base + "/v2/swarmui"
        if let budget = options.budgetPerDay, budget <= 0 { throw ServeError("--budget-per-day: must be more than 0 dollars") }
        policy = FleetPolicy(
            desiredSize: size, labelPrefix: options.labelPrefix, heartbeatTimeout: options.heartbeatTimeout, startWarning: options.startWarning,
            startReplaceAfter: options.startReplaceAfter, rebootGrace: options.rebootGrace, budgetPerDay: options.budgetPerDay)
        download = DownloadEstimate(totalGB: options.downloadGB)
        roundInterval = options.roundInterval
    }
}

/// Runs the `FleetReconciler` beside the server, from the moment the server (and so the migrated store) is up until
/// graceful shutdown. Instances are left running on shutdown: the next `serve` adopts them.
public struct FleetService: Service {
    private let settings: FleetSettings
    private let store: DatabaseFleetStore
    private let serverRunning: AsyncStream<Void>
    private let logger: Logger

    public init(settings: FleetSettings, store: DatabaseFleetStore, serverRunning: AsyncStream<Void>, logger: Logger) {
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
            client: VastAIClient(configuration: settings.vast, logger: logger), store: store, planner: FleetPlanner(policy: settings.policy),
            filter: settings.filter, download: settings.download, logger: logger
        ) { label in
            // The worker reports as `label`, which is how its pings are matched to the instance.
            CreateInstanceRequest(
                source: settings.source, diskGB: settings.diskGB, label: label,
                env: ["SWARM_WORKER_ID": label, "SWARM_QUEUE_URL": settings.queueURL],
                secretEnv: ["SWARM_WORKER_KEY": try await store.mintWorkerKey(label: label)])
        }
        // `swarmctl instance up N|down` outranks --fleet-size until `instance up` hands the count back.
        let stored = try? await store.desiredSize()
        let wanted = stored.flatMap { $0 }.map { "\($0) (set with 'swarmctl instance up|down'; --fleet-size \(settings.policy.desiredSize) applies after 'swarmctl instance up')" }
            ?? "\(settings.policy.desiredSize)"
        logger.notice(
            "fleet on: keeping \(wanted) vast.ai instance(s) labeled \(settings.policy.labelStem)…",
            metadata: ["vast": "\(settings.vast.baseURL)", "queue": "\(settings.queueURL)"])
        await cancelWhenGracefulShutdown {
            await reconciler.run(interval: settings.roundInterval)
        }
    }
}
