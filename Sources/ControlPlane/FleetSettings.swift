import Fleet
import Foundation
import JobStore
import Logging
import SwarmCore
import VastAI

/// The fleet `serve` keeps on vast.ai: on when `VAST_API_KEY` is set. Read with the rest of `serve`'s settings by
/// `ServeConfiguration.init(flags:environment:)`.
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
