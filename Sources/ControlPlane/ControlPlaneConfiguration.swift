import Foundation
import JobProtocol
import JobStore
import SwarmCore

/// Everything the control plane's routes and services need to know, resolved once from flags and environment
/// (`ServeConfiguration.controlPlane`); tests build it directly.
public struct ControlPlaneConfiguration: Sendable {
    /// The endpoint every server has.
    public static let defaultEndpoint = QueueEndpoints.defaultEndpoint

    /// Endpoint names served under `/v2/{endpoint}`; always holds `swarmui`.
    public var endpoints: Set<String>
    /// How long a taken job stays leased without a ping naming it.
    public var leaseTimeout: Duration
    /// Takes after which a job whose lease keeps expiring fails instead of going back to the queue.
    public var maxAttempts: Int
    /// How long final jobs are kept.
    public var retention: Duration
    /// How long job-take and job-stop hold a request open when there is nothing to hand out (the SDK gives up at 90 s).
    public var longPollTimeout: Duration
    /// How often lease, timeout, ttl and retention rules are applied.
    public var expiryInterval: Duration
    /// Keys from the environment (`SWARM_API_KEYS`, `SWARM_WORKER_KEYS`); stored keys are read from the store.
    public var clientKeys: [Secret]
    public var workerKeys: [Secret]
    /// Worker keys for workers running inside this process (`serve --local-worker`): accepted like `workerKeys`, but
    /// they do not count as keys that close an otherwise open server.
    public var inProcessWorkerKeys: [Secret]
    public var webhooks: WebhookSettings
    public var limits: Limits
    /// Where job outputs go; without it the job-upload routes answer 404 and workers inline their outputs.
    public var outputs: OutputStorageSettings?
    /// `https` when `serve` runs TLS: links built from a request's Host header use it.
    public var scheme = "http"
    /// This server as clients reach it (`--public-url`, `SWARM_PUBLIC_URL`), for the absolute URLs of fal's queue API;
    /// when nil, the request's Host header.
    public var publicURL: String?
    /// fal.ai, for jobs with `input.provider: "fal"` (`--fal-url`, `--fal-key-env`); nil: this server has no `fal` provider.
    public var fal: FalForwardSettings?

    public init(
        endpoints: Set<String> = [],
        leaseTimeout: Duration = .seconds(60),
        maxAttempts: Int = 3,
        retention: Duration = .seconds(7 * 86_400),
        longPollTimeout: Duration = .seconds(30),
        expiryInterval: Duration = .seconds(1),
        clientKeys: [Secret] = [],
        workerKeys: [Secret] = [],
        inProcessWorkerKeys: [Secret] = [],
        webhooks: WebhookSettings = WebhookSettings(),
        limits: Limits = Limits(),
        outputs: OutputStorageSettings? = nil
    ) {
        self.endpoints = endpoints.union([Self.defaultEndpoint])
        self.leaseTimeout = leaseTimeout
        self.maxAttempts = maxAttempts
        self.retention = retention
        self.longPollTimeout = longPollTimeout
        self.expiryInterval = expiryInterval
        self.clientKeys = clientKeys
        self.workerKeys = workerKeys
        self.inProcessWorkerKeys = inProcessWorkerKeys
        self.webhooks = webhooks
        self.limits = limits
        self.outputs = outputs
    }

    /// The scopes the environment has keys for; in-process worker keys do not count.
    public var environmentKeyScopes: Set<KeyScope> {
        var scopes: Set<KeyScope> = []
        if !clientKeys.isEmpty { scopes.insert(.client) }
        if !workerKeys.isEmpty { scopes.insert(.worker) }
        return scopes
    }

    public struct WebhookSettings: Sendable {
        /// Signs each delivery (`X-Swarm-Signature: sha256=<hex HMAC-SHA256 of the body>`); unsigned when nil.
        public var secret: Secret?
        /// Deliveries per job before giving up (RunPod: one call and at most 2 retries).
        public var maxTries: Int
        /// Wait before the first retry; later retries back off exponentially from it.
        public var retryDelay: Duration
        /// How long one delivery may take.
        public var timeout: Duration

        public init(secret: Secret? = nil, maxTries: Int = 3, retryDelay: Duration = .seconds(10), timeout: Duration = .seconds(10)) {
            self.secret = secret
            self.maxTries = maxTries
            self.retryDelay = retryDelay
            self.timeout = timeout
        }
    }

    /// Request size limits (RunPod: 10 MB for /run, 20 MB for /runsync; job-done must take at least 20 MB).
    public struct Limits: Sendable {
        public var runBody: Int
        public var runsyncBody: Int
        public var batchBody: Int
        public var batchJobs: Int
        public var resultBody: Int
        /// Worker reports on ping: stage, progress, a log tail.
        public var pingBody: Int

        public init(
            runBody: Int = 10_000_000,
            runsyncBody: Int = 20_000_000,
            batchBody: Int = 100_000_000,
            batchJobs: Int = 10_000,
            resultBody: Int = 64_000_000,
            pingBody: Int = 256_000
        ) {
            self.runBody = runBody
            self.runsyncBody = runsyncBody
            self.batchBody = batchBody
            self.batchJobs = batchJobs
            self.resultBody = resultBody
            self.pingBody = pingBody
        }
    }
}
