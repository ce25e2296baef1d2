import Fleet
import Foundation
import JobStore
import Logging
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
    /// Names of serve's environment variables passed on to every instance, as secrets (`--instance-env`).
    public var instanceEnv: [String] = []
    /// `--workers-min`, `--workers-max`, `--idle-timeout`, `--scaler`, `--scaler-value`, `--keep-warm` as given.
    public var scaler = ScalerOverride()

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
    /// What every instance gets besides its label, queue URL and worker key: the model tokens serve holds and the
    /// `--instance-env` variables. Sent as secret env, never logged.
    public var instanceSecrets: [String: Secret]
    /// RunPod's scaler over the fleet (`--workers-min` …); the defaults keep `--fleet-size` instances.
    public var scaler: ScalerSettings

    /// Tokens the worker's model downloads need (the Civitai model cannot be fetched without its token); passed on
    /// whenever serve has them.
    public static let modelTokenVariables = ["CIVITAI_API_TOKEN", "HUGGINGFACE_API_TOKEN"]

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
        let gpus =
            options.gpus.isEmpty ? (env("SWARM_FLEET_GPU") ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } : options.gpus
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
            throw ServeError(
                "VAST_API_KEY is set, so the fleet is on: give --public-url (or SWARM_PUBLIC_URL), the http(s) URL instances reach this server at"
            )
        }
        var base = publicURL
        while base.hasSuffix("/") { base.removeLast() }
        queueURL = base + "/v2/swarmui"
        if let budget = options.budgetPerDay, budget <= 0 { throw ServeError("--budget-per-day: must be more than 0 dollars") }
        policy = FleetPolicy(
            desiredSize: size,
            labelPrefix: options.labelPrefix,
            heartbeatTimeout: options.heartbeatTimeout,
            startWarning: options.startWarning,
            startReplaceAfter: options.startReplaceAfter,
            rebootGrace: options.rebootGrace,
            budgetPerDay: options.budgetPerDay
        )
        scaler = try Self.scalerSettings(options.scaler, fleetSize: size, sizeGiven: options.size != nil || env("SWARM_FLEET_SIZE") != nil)
        download = DownloadEstimate(totalGB: options.downloadGB)
        roundInterval = options.roundInterval
        var secrets: [String: Secret] = [:]
        for name in Self.modelTokenVariables { if let value = env(name) { secrets[name] = Secret(value) } }
        for name in options.instanceEnv {
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }), !name.first!.isNumber else {
                throw ServeError("--instance-env: '\(name)' is not an environment variable name")
            }
            guard !["SWARM_WORKER_KEY", "SWARM_WORKER_ID", "SWARM_QUEUE_URL"].contains(name) else {
                throw ServeError("--instance-env: \(name) is set by the fleet itself for each instance")
            }
            guard let value = env(name) else { throw ServeError("--instance-env \(name): serve's environment has no \(name) to pass on") }
            secrets[name] = Secret(value)
        }
        instanceSecrets = secrets
    }

    /// The create body for the instance labeled `label`, whose worker key is `workerKey`.
    ///
    /// From an image, the request itself starts the worker: run type SSH with the image's on-start script (vast
    /// ignores the ENTRYPOINT then), and the worker's health port published. From a template, the template's run
    /// type and on-start script apply (`WorkerLaunch.problem` checked them when serve started).
    public func createRequest(label: String, workerKey: Secret) -> CreateInstanceRequest {
        var env = ["SWARM_WORKER_ID": label, "SWARM_QUEUE_URL": queueURL]
        var launch: (onstart: String?, runtype: String?) = (nil, nil)
        if case .image = source {
            env["-p \(WorkerLaunch.healthPort):\(WorkerLaunch.healthPort)"] = "1"
            launch = (WorkerLaunch.onstart, WorkerLaunch.runtype)
        }
        return CreateInstanceRequest(
            source: source,
            diskGB: diskGB,
            label: label,
            env: env,
            secretEnv: instanceSecrets.merging(["SWARM_WORKER_KEY": workerKey]) { _, key in key },
            onstart: launch.onstart,
            runtype: launch.runtype
        )
    }

    /// Refuses a `--template` that would not start the worker, reading it through vast's API.
    public func checkTemplate(logger: Logger) async throws(ServeError) {
        guard case .template(let hashID) = source else { return }
        let template: JSONValue?
        do {
            template = try await VastAIClient(configuration: vast, logger: logger).template(hashID: hashID)
        } catch {
            throw ServeError("--template \(hashID): cannot read it from vast.ai: \(error)")
        }
        guard let template else {
            throw ServeError(
                "--template \(hashID): vast.ai has no template with that hash (every edit makes a new one; copy it from the console again)"
            )
        }
        if let problem = WorkerLaunch.problem(withTemplate: template, hashID: hashID) { throw ServeError("--template: \(problem)") }
    }
}
