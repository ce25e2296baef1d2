import JobProtocol
import Logging
import Storage
import SwarmCore

import Foundation

/// Everything the worker reads from its environment and flags, read in this one place.
/// Names follow RunPod's and the SwarmUI worker's where those exist (`.env.example` documents each).
public struct WorkerConfiguration: Sendable {
    public enum SwarmUIMode: Sendable, Hashable {
        /// Launch `launch-linux.sh` from this SwarmUI folder and supervise it.
        case launch(folder: String, host: String, port: Int)
        /// Use a SwarmUI that something else runs.
        case attach
    }

    public var swarmUIMode: SwarmUIMode
    public var swarmUIURL: String
    public var swarmUIAuthorization: Secret?
    public var volumePath: String
    public var startupTimeout: Duration
    public var healthPort: Int
    public var healthHost: String
    /// Nil when no queue is configured (`swarm-worker check` says so; `run` refuses to start).
    public var queue: QueueEndpoints?
    public var presetsFile: String?
    /// The presets this worker serves (`SWARM_PRESETS`, a comma list); nil serves every preset in the file. Limits the
    /// models downloaded and the backend's requirements to what those presets need.
    public var presetNames: [String]?
    /// How long a job may keep running after SIGTERM before it is interrupted and reported retryable.
    public var shutdownGrace: Duration
    /// How long a worker that cannot serve (a failed preparation or start) keeps reporting ERROR before it exits.
    public var errorHold: Duration
    /// How long one generation may run before it is interrupted and failed as retryable.
    public var generationTimeout: Duration
    /// Outputs larger than this cannot be inlined as data URLs (storage comes with the Outputs issue).
    public var inlineMaxBytes: Int64
    /// On RunPod, the bucket the worker uploads outputs to with its own signatures (`BUCKET_ENDPOINT_URL`,
    /// `BUCKET_ACCESS_KEY_ID`, `BUCKET_SECRET_ACCESS_KEY`); a job's `s3Config` takes precedence.
    public var outputBucket: S3Configuration?
    public var logLevel: Logger.Level
    /// The prebuilt SwarmUI copied to `$VOLUME_PATH/SwarmUI` on first boot.
    public var swarmUISeed: String
    /// The models manifest (`builder/models.json`); nil when unset, and then nothing is downloaded.
    public var modelsFile: String?
    /// Download tokens by the variable a manifest entry names in `token_env`.
    public var modelTokens: [String: Secret]
    /// How many models download at once.
    public var modelDownloadConcurrency: Int
    /// Connections fetching ranges of one model at once (1: one stream per model).
    public var modelDownloadConnections: Int
    /// Connections open at once across all models downloading.
    public var modelDownloadConnectionsTotal: Int
    /// ComfyUI's `--use-sage-attention`: where the GPU check passes (auto), always (on) or never (off).
    public var sageAttention: ComfyUISpeedups.SageAttention
    /// The GPU check (`builder/gpu-check.py`) and the python (the image's venv) that runs it.
    public var gpuCheckScript: String
    public var gpuCheckPython: String
    /// Keep SwarmUI's own files of a job after its outputs are delivered (by default they are deleted).
    public var keepsSwarmUIOutputs: Bool
    /// The environment SwarmUI is launched with: the allow-list of `SwarmUIEnvironment` plus `SWARMUI_PASS_ENV`.
    public var swarmUIEnvironment: [String: String]
    /// How long SwarmUI's backend may stay errored after it was once ready (ComfyUI crashed and SwarmUI restarts it)
    /// before the worker gives up on it.
    public var erroredGrace: Duration

    /// The variables a manifest's `token_env` may name; only these are read.
    public static let modelTokenVariables = ["HUGGINGFACE_API_TOKEN", "CIVITAI_API_TOKEN"]

    /// Every credential the worker holds, to scrub from text it passes on (SwarmUI's log lines in pings).
    public var secrets: [Secret] {
        [swarmUIAuthorization, queue?.apiKey, outputBucket?.credentials.secretAccessKey].compactMap { $0 }
            + modelTokens.keys.sorted().compactMap { modelTokens[$0] }
    }

    /// Where undeliverable results wait for the queue, across restarts.
    public var outboxPath: String { volumePath + "/.swarm-worker/outbox" }
    /// Where outputs that could not be stored are recorded for the job's retry (SwarmUI's files stay on the volume).
    public var keptOutputsPath: String { volumePath + "/.swarm-worker/kept-outputs" }
    /// Where SwarmUI lives on the volume (copied from `swarmUISeed` on first boot).
    public var swarmUIFolder: String { volumePath + "/SwarmUI" }
    /// SwarmUI's model root, where the manifest's models go.
    public var modelsPath: String { swarmUIFolder + "/Models" }

    public init(environment env: [String: String], attach attachFlag: Bool = false) throws(WorkerConfigurationError) {
        var problems: [String] = []
        func int(_ name: String, _ fallback: Int) -> Int {
            guard let raw = env[name], !raw.isEmpty else { return fallback }
            guard let value = Int(raw.trimmingCharacters(in: .whitespaces)), value >= 0 else {
                problems.append("\(name)='\(raw)' is not a non-negative whole number")
                return fallback
            }
            return value
        }
        func flag(_ name: String) -> Bool {
            ["1", "true", "yes", "on"].contains((env[name] ?? "").lowercased())
        }

        // RunPod serverless mounts the network volume at /runpod-volume (its pods and vast.ai at /workspace).
        let onRunPodServerless = !(env["RUNPOD_WEBHOOK_GET_JOB"] ?? "").isEmpty
        volumePath = env["VOLUME_PATH"].flatMap { $0.isEmpty ? nil : $0 } ?? (onRunPodServerless ? "/runpod-volume" : "/workspace")
        let host = env["SWARMUI_HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        let port = int("SWARMUI_PORT", 7801)
        swarmUIURL = env["SWARMUI_API_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://\(host == "0.0.0.0" ? "127.0.0.1" : host):\(port)"
        while swarmUIURL.hasSuffix("/") { swarmUIURL.removeLast() }
        swarmUIMode = attachFlag || flag("SWARMUI_ATTACH") ? .attach : .launch(folder: volumePath + "/SwarmUI", host: host, port: port)
        swarmUIAuthorization = env["SWARMUI_AUTHORIZATION"].flatMap { $0.isEmpty ? nil : Secret($0) }
        startupTimeout = .seconds(int("STARTUP_TIMEOUT", 1800))
        // Not 8080: vast's Jupyter run type serves Jupyter there, and a health server that cannot bind restarts the worker.
        healthPort = int("WORKER_HEALTH_PORT", 18080)
        healthHost = env["WORKER_HEALTH_HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? "0.0.0.0"
        presetsFile = env["SWARM_PRESETS_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        let presetList = (env["SWARM_PRESETS"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        presetNames = presetList.isEmpty ? nil : presetList
        shutdownGrace = .seconds(int("SHUTDOWN_GRACE", 60))
        errorHold = .seconds(int("SWARM_ERROR_HOLD", 300))
        generationTimeout = .seconds(max(1, int("GENERATION_TIMEOUT", 600)))
        inlineMaxBytes = Int64(int("SWARM_INLINE_MAX_BYTES", 10_000_000))
        logLevel = (env["LOG_LEVEL"]?.lowercased()).flatMap(Logger.Level.init(rawValue:)) ?? .info
        swarmUISeed = env["SWARMUI_SEED"].flatMap { $0.isEmpty ? nil : $0 } ?? "/opt/swarmui-seed"
        modelsFile = env["SWARM_MODELS_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        // Spelled out rather than looped over modelTokenVariables: the .env.example test finds variables by their `env[...]` reads.
        let tokens = [
            "HUGGINGFACE_API_TOKEN": env["HUGGINGFACE_API_TOKEN"], "CIVITAI_API_TOKEN": env["CIVITAI_API_TOKEN"],
        ]
        modelTokens = tokens.compactMapValues { $0.flatMap { $0.isEmpty ? nil : Secret($0) } }
        modelDownloadConcurrency = max(1, int("SWARM_DOWNLOAD_CONCURRENCY", 3))
        modelDownloadConnections = max(1, int("SWARM_DOWNLOAD_CONNECTIONS", 32))
        modelDownloadConnectionsTotal = max(1, int("SWARM_DOWNLOAD_CONNECTIONS_TOTAL", 64))
        keepsSwarmUIOutputs = flag("SWARM_KEEP_SWARMUI_OUTPUTS")
        erroredGrace = .seconds(int("SWARMUI_ERRORED_GRACE", 60))
        let passed = (env["SWARMUI_PASS_ENV"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        swarmUIEnvironment = [:]
        let sage = (env["SWARM_SAGE_ATTENTION"] ?? "").lowercased()
        if sage.isEmpty {
            sageAttention = .auto
        } else if let mode = ComfyUISpeedups.SageAttention(rawValue: sage) {
            sageAttention = mode
        } else {
            sageAttention = .auto
            problems.append("SWARM_SAGE_ATTENTION='\(sage)' is not one of auto, on, off")
        }
        gpuCheckScript = env["SWARM_GPU_CHECK"].flatMap { $0.isEmpty ? nil : $0 } ?? "/opt/swarm/gpu-check.py"
        gpuCheckPython = env["SWARM_GPU_CHECK_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "/opt/venv/bin/python"

        // RunPod serverless injects its own templates; otherwise derive them from one queue URL.
        let pingMs = int("RUNPOD_PING_INTERVAL", 10_000)
        let pingInterval: Duration = .milliseconds(max(1000, pingMs))
        if let take = env["RUNPOD_WEBHOOK_GET_JOB"], !take.isEmpty {
            let workerID = env["RUNPOD_POD_ID"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.generatedWorkerID()
            guard let done = env["RUNPOD_WEBHOOK_POST_OUTPUT"], !done.isEmpty else {
                throw WorkerConfigurationError(problems: problems + ["RUNPOD_WEBHOOK_POST_OUTPUT is required with RUNPOD_WEBHOOK_GET_JOB"])
            }
            // Credentials only under RunPod's names: a worker of swarmctl's control plane never holds bucket credentials.
            let bucketVariables = ["BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY"]
            // The bucket's other settings may come from SWARM_S3_*: an endpoint outside AWS (R2, MinIO) names no bucket.
            let bucketSettings = ["SWARM_S3_BUCKET", "SWARM_S3_REGION", "SWARM_S3_FORCE_PATH_STYLE", "SWARM_S3_PUBLIC_BASE_URL"]
            if bucketVariables.contains(where: { !(env[$0] ?? "").isEmpty }) {
                do {
                    outputBucket = try S3Configuration(
                        environment: env.filter { bucketVariables.contains($0.key) || bucketSettings.contains($0.key) }
                    )
                } catch {
                    problems.append(error.message)
                }
            }
            queue = QueueEndpoints(
                jobTakeTemplate: take,
                jobDoneTemplate: done,
                jobStreamTemplate: env["RUNPOD_WEBHOOK_POST_STREAM"].flatMap { $0.isEmpty ? nil : $0 },
                pingTemplate: env["RUNPOD_WEBHOOK_PING"].flatMap { $0.isEmpty ? nil : $0 },
                workerID: workerID,
                apiKey: env["RUNPOD_AI_API_KEY"].flatMap { $0.isEmpty ? nil : Secret($0) },
                pingInterval: pingInterval
            )
        } else if let url = env["SWARM_QUEUE_URL"], !url.isEmpty {
            let workerID =
                env["SWARM_WORKER_ID"].flatMap { $0.isEmpty ? nil : $0 } ?? env["RUNPOD_POD_ID"].flatMap { $0.isEmpty ? nil : $0 }
                ?? Self.generatedWorkerID()
            do {
                queue = try QueueEndpoints(
                    queueURL: url,
                    workerID: workerID,
                    apiKey: env["SWARM_WORKER_KEY"].flatMap { $0.isEmpty ? nil : Secret($0) },
                    pingInterval: pingInterval
                )
            } catch {
                problems.append(error.description)
                queue = nil
            }
        } else {
            queue = nil
        }
        if let queue, !queue.workerID.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }) {
            problems.append("worker id '\(queue.workerID)' may hold only letters, digits, '-', '_' and '.' (SWARM_WORKER_ID / RUNPOD_POD_ID)")
        }
        if !problems.isEmpty { throw WorkerConfigurationError(problems: problems, queue: queue, errorHold: errorHold) }
        // Last: the filter drops every value that holds one of the secrets read above.
        swarmUIEnvironment = SwarmUIEnvironment.filtered(env, extra: Set(passed.filter { !$0.isEmpty }), secrets: secrets)
    }

    /// A stable-enough id for one worker process: the host name plus a random suffix.
    static func generatedWorkerID() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "worker"
        let safeHost = String(host.filter { $0.isLetter || $0.isNumber || $0 == "-" }.prefix(32))
        return "\(safeHost.isEmpty ? "worker" : safeHost)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

public struct WorkerConfigurationError: Error, Sendable, CustomStringConvertible {
    public var problems: [String]
    /// The queue, when it is configured well enough to be told of the problems (`swarm-worker run` reports them).
    public var queue: QueueEndpoints?
    /// SWARM_ERROR_HOLD, or its default when it is one of the problems.
    public var errorHold: Duration = .seconds(300)
    public var description: String {
        "invalid configuration:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}
