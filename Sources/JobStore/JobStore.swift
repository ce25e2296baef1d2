import JobProtocol
import SwarmCore

import Foundation

/// The control plane's durable state behind one protocol, with a SQLite (GRDB) and a PostgreSQL (postgres-nio)
/// implementation that pass the same test suite. Every method is atomic on its own; `now` is passed in so that
/// time-based rules are testable without sleeping.
public protocol JobStore: Sendable {
    /// Applies the versioned migrations not yet applied.
    func migrate() async throws(JobStoreError)

    // MARK: Clients

    /// Stores all jobs or none, in order; ids are assigned by the caller.
    func enqueue(_ jobs: [NewJob], now: Date) async throws(JobStoreError) -> [JobRecord]
    func job(id: String) async throws(JobStoreError) -> JobRecord?
    /// Newest first; `cursor` is the opaque value of the previous page's `nextCursor`. Listed jobs carry no s3Config.
    func listJobs(endpoint: String, status: JobStatus?, limit: Int, cursor: String?) async throws(JobStoreError) -> JobPage
    /// The endpoint's queued jobs, oldest first (creation order), at most `limit`; they carry no s3Config.
    func oldestQueuedJobs(endpoint: String, limit: Int) async throws(JobStoreError) -> [JobRecord]
    /// Cancels a job that is not final: a queued job ends at once; a running one ends and is marked for job-stop.
    func cancel(id: String, now: Date) async throws(JobStoreError) -> JobRecord?
    /// Puts a FAILED or TIMED_OUT job back in the queue under the same id; nil when that is not allowed.
    func retry(id: String, now: Date) async throws(JobStoreError) -> JobRecord?
    /// Removes (deletes) the endpoint's queued jobs, as RunPod does; returns how many.
    func purgeQueue(endpoint: String) async throws(JobStoreError) -> Int
    /// Every status, with 0 for those the endpoint has none of.
    func counts(endpoint: String) async throws(JobStoreError) -> [JobStatus: Int]
    /// Stream chunks not yet read by a client, each returned exactly once.
    func takeStreamChunks(id: String) async throws(JobStoreError) -> [JSONValue]

    // MARK: Workers

    /// Endpoint names whose queue may have gained work (enqueue, retry, requeue), as they happen, so that long-polling
    /// takers wake at once instead of sleep-polling. Each call is a new subscription. PostgreSQL delivers these with
    /// LISTEN/NOTIFY, so a job enqueued through one `serve` replica wakes takers held by another. A wake-up is a hint:
    /// one can be lost while a database connection is re-established, so takers still look at the queue now and then.
    func workAvailable() async throws(JobStoreError) -> AsyncStream<String>

    /// Atomically leases up to `limit` queued jobs of `endpoint` (normal priority first, then oldest first) to
    /// `workerID` until `leaseUntil`; each take counts as one attempt.
    func take(endpoint: String, workerID: String, limit: Int, leaseUntil: Date, now: Date) async throws(JobStoreError) -> [JobRecord]
    /// Records a worker's final result or error. The first final result wins; later ones report `.duplicate`.
    /// A retryable failure puts the job back in the queue while it has been taken fewer than `maxAttempts` times.
    func finish(id: String, workerID: String, result: JobResult, maxAttempts: Int, now: Date) async throws(JobStoreError) -> FinishOutcome
    /// Records the latest progress value of a running job (shown as `output` while IN_PROGRESS).
    func recordProgress(id: String, workerID: String, output: JSONValue, now: Date) async throws(JobStoreError) -> Bool
    func appendStreamChunk(id: String, workerID: String, output: JSONValue, now: Date) async throws(JobStoreError) -> Bool
    /// A ping: extends the leases of the listed jobs held by this worker and records that the worker is alive.
    func heartbeat(
        workerID: String,
        endpoint: String,
        jobIDs: [String],
        leaseUntil: Date,
        report: WorkerReport?,
        now: Date
    ) async throws(JobStoreError)
    /// Ids of this worker's jobs that were cancelled, timed out or taken away (lease lapsed) since it last asked; each
    /// returned once.
    func takeJobsToStop(workerID: String) async throws(JobStoreError) -> [String]
    func workers(endpoint: String?) async throws(JobStoreError) -> [WorkerRecord]

    // MARK: Forwarding to fal.ai

    /// Claims a queued job for fal.ai: it becomes IN_PROGRESS with provider `fal` and no worker, so no worker takes
    /// it and no lease expires (its execution timeout still applies). nil when the job is not queued any more.
    func claimForFal(id: String, now: Date) async throws(JobStoreError) -> JobRecord?
    /// Records fal.ai's request id (and the price it will charge) of a claimed job, so that a restart resumes following
    /// it; false when the job is no longer running on fal.ai (cancelled or timed out meanwhile).
    func recordFalRequest(id: String, requestID: String, costUSD: Double?, now: Date) async throws(JobStoreError) -> Bool
    /// Ends a job running on fal.ai with fal's outcome (never retried: fal.ai already ran it); nil when it had ended.
    func finishFal(id: String, result: JobResult, now: Date) async throws(JobStoreError) -> JobRecord?
    /// Jobs running on fal.ai, for a restarted `serve` to follow again.
    func falJobs() async throws(JobStoreError) -> [JobRecord]
    /// Dollars spill-over spent on fal.ai on the UTC day `day` (yyyy-MM-dd).
    func falSpend(day: String) async throws(JobStoreError) -> Double
    /// Adds `dollars` to the day's spend only if the total stays within `budget`, atomically across replicas; false when
    /// it would not. A negative amount (a refund) is always applied.
    func reserveFalSpend(day: String, dollars: Double, budget: Double) async throws(JobStoreError) -> Bool

    // MARK: Time

    /// Applies every time rule at `now`: leases that expired go back to the queue (or FAIL after `maxAttempts`),
    /// running jobs past `executionTimeout` become TIMED_OUT (and are marked for job-stop), queued jobs past `ttl`
    /// become TIMED_OUT, and final jobs older than `retention` are deleted.
    func expire(now: Date, maxAttempts: Int, retention: Duration) async throws(JobStoreError) -> ExpiryReport

    // MARK: Webhooks

    /// Final jobs with a webhook not yet delivered and not given up on.
    func pendingWebhooks(limit: Int) async throws(JobStoreError) -> [JobRecord]
    func recordWebhookAttempt(id: String, attempt: WebhookAttempt, delivered: Bool, gaveUp: Bool) async throws(JobStoreError)

    // MARK: Keys

    func insertKey(_ key: StoredKey) async throws(JobStoreError)
    /// The key whose SHA-256 hash (hex) is `hash`, when not revoked.
    func key(hash: String) async throws(JobStoreError) -> StoredKey?
    /// False when there is no such key; revoking a revoked key keeps its first revocation time.
    func revokeKey(id: String, now: Date) async throws(JobStoreError) -> Bool
    func keys() async throws(JobStoreError) -> [StoredKey]
}

// MARK: - Values

/// How long a job may wait and run (RunPod's `policy`, in milliseconds on the wire).
public struct JobPolicy: Sendable, Hashable, Codable {
    public var executionTimeoutMs: Int64
    public var ttlMs: Int64
    public var lowPriority: Bool

    public static let defaultExecutionTimeoutMs: Int64 = 600_000
    public static let defaultTTLMs: Int64 = 86_400_000

    public init(executionTimeoutMs: Int64 = defaultExecutionTimeoutMs, ttlMs: Int64 = defaultTTLMs, lowPriority: Bool = false) {
        self.executionTimeoutMs = executionTimeoutMs
        self.ttlMs = ttlMs
        self.lowPriority = lowPriority
    }
}

public struct NewJob: Sendable, Hashable {
    public var id: String
    public var endpoint: String
    public var input: JSONValue
    public var webhook: String?
    public var policy: JobPolicy
    /// RunPod's `s3Config`, handed to the worker unchanged. A secret: never logged, never shown in job listings.
    public var s3Config: JSONValue?

    public init(id: String, endpoint: String, input: JSONValue, webhook: String? = nil, policy: JobPolicy = JobPolicy(), s3Config: JSONValue? = nil) {
        self.id = id
        self.endpoint = endpoint
        self.input = input
        self.webhook = webhook
        self.policy = policy
        self.s3Config = s3Config
    }
}

public struct JobRecord: Sendable, Hashable {
    public var id: String
    public var endpoint: String
    public var status: JobStatus
    public var input: JSONValue
    public var webhook: String?
    public var policy: JobPolicy
    public var s3Config: JSONValue?
    /// Final output, or the latest progress value while IN_PROGRESS.
    public var output: JSONValue?
    public var error: String?
    public var workerID: String?
    /// How many times a worker has taken the job.
    public var attempts: Int
    public var createdAt: Date
    /// When the current (or last) attempt was taken.
    public var startedAt: Date?
    public var finishedAt: Date?
    public var leaseExpiresAt: Date?
    public var webhookAttempts: [WebhookAttempt]
    public var webhookDelivered: Bool
    /// Who ran (or runs) the job: `vastai` once a worker of our fleet takes it, `fal` once it is forwarded to
    /// fal.ai; nil while it waits. Cost reports split spend by this.
    public var provider: String?
    /// fal.ai's request id of a forwarded job, kept so that a restarted `serve` resumes following it.
    public var falRequestID: String?
    /// What fal.ai charged for a forwarded job, in US dollars (its price list at the time it was forwarded).
    public var falCostUSD: Double?

    public init(
        id: String,
        endpoint: String,
        status: JobStatus,
        input: JSONValue,
        webhook: String?,
        policy: JobPolicy,
        s3Config: JSONValue?,
        output: JSONValue?,
        error: String?,
        workerID: String?,
        attempts: Int,
        createdAt: Date,
        startedAt: Date?,
        finishedAt: Date?,
        leaseExpiresAt: Date?,
        webhookAttempts: [WebhookAttempt],
        webhookDelivered: Bool
    ) {
        self.id = id
        self.endpoint = endpoint
        self.status = status
        self.input = input
        self.webhook = webhook
        self.policy = policy
        self.s3Config = s3Config
        self.output = output
        self.error = error
        self.workerID = workerID
        self.attempts = attempts
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.leaseExpiresAt = leaseExpiresAt
        self.webhookAttempts = webhookAttempts
        self.webhookDelivered = webhookDelivered
    }

    /// Queue wait in ms (RunPod's `delayTime`).
    public var delayTimeMs: Int64? { startedAt.map { Int64(($0.timeIntervalSince(createdAt) * 1000).rounded()) } }
    /// Run time in ms (RunPod's `executionTime`).
    public var executionTimeMs: Int64? {
        guard let startedAt, let finishedAt else { return nil }
        return Int64((finishedAt.timeIntervalSince(startedAt) * 1000).rounded())
    }
}

public struct JobPage: Sendable, Hashable {
    public var jobs: [JobRecord]
    public var nextCursor: String?
    public init(jobs: [JobRecord], nextCursor: String?) {
        self.jobs = jobs
        self.nextCursor = nextCursor
    }
}

/// A worker's final report on a job.
public enum JobResult: Sendable, Hashable {
    case completed(output: JSONValue?)
    /// `retryable`: not the job's fault (worker shutdown, SwarmUI crash): requeue while attempts remain.
    case failed(error: String, output: JSONValue?, retryable: Bool)
}

public enum FinishOutcome: Sendable, Hashable {
    case accepted(JobRecord)
    /// Requeued after a retryable failure.
    case requeued(JobRecord)
    /// The job already had a final state (a repeated post, or it was cancelled or timed out meanwhile).
    case duplicate(JobRecord)
    /// The job is held by another worker now (its lease expired and it was taken again).
    case notHolder(JobRecord)
    case unknownJob
}

public struct ExpiryReport: Sendable, Hashable {
    public var requeued: [String] = []
    public var failed: [String] = []
    public var timedOut: [String] = []
    public var deleted: Int = 0
    public init() {}
}

public struct WorkerRecord: Sendable, Hashable {
    public var id: String
    public var endpoint: String
    public var lastSeen: Date
    public var jobIDs: [String]
    public var report: WorkerReport?
    public init(id: String, endpoint: String, lastSeen: Date, jobIDs: [String], report: WorkerReport?) {
        self.id = id
        self.endpoint = endpoint
        self.lastSeen = lastSeen
        self.jobIDs = jobIDs
        self.report = report
    }
}

public struct WebhookAttempt: Sendable, Hashable, Codable {
    public var at: Date
    /// HTTP status, nil when no answer came.
    public var status: Int?
    public var error: String?
    public init(at: Date, status: Int?, error: String?) {
        self.at = at
        self.status = status
        self.error = error
    }
}

public enum KeyScope: String, Sendable, Hashable, Codable, CaseIterable {
    /// Submits and reads jobs; cannot take them.
    case client
    /// Takes and reports jobs; cannot submit or read.
    case worker
}

public struct StoredKey: Sendable, Hashable {
    public var id: String
    public var scope: KeyScope
    /// Hex SHA-256 of the key; the key itself is shown once and never stored.
    public var hash: String
    public var label: String?
    public var createdAt: Date
    public var revokedAt: Date?
    public init(id: String, scope: KeyScope, hash: String, label: String?, createdAt: Date, revokedAt: Date? = nil) {
        self.id = id
        self.scope = scope
        self.hash = hash
        self.label = label
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}

/// A store operation that failed, with the backend and the operation named.
public struct JobStoreError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// The database cannot be reached or opened.
        case unavailable
        /// The call's arguments break a rule (duplicate id, too many jobs).
        case invalid
        /// Anything else the database reported.
        case database
    }

    public var code: Code
    public var operation: String
    public var detail: String

    public init(_ code: Code, operation: String, detail: String) {
        self.code = code
        self.operation = operation
        self.detail = detail
    }

    public var description: String { "job store \(operation): \(detail)" }
}
