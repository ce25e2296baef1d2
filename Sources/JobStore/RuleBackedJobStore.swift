import JobProtocol
import SwarmCore

import Foundation
import Synchronization

/// Several jobs a backend reads and locks together, in the order given.
enum JobSelection: Sendable, Hashable {
    /// The endpoint's queued jobs whose ttl has not run out: normal priority first, then oldest first.
    case takeable(endpoint: String, limit: Int, now: Date)
    /// Running and queued jobs whose lease, execution timeout or ttl has run out at `now`.
    case dueForExpiry(now: Date)
}

extension JobSelection {
    /// The values the selection's SQL binds, numbered from 1 in this order: fixed SQL with bound values lets SQLite
    /// reuse one prepared statement for every take instead of compiling a new one each time.
    var parameters: [ColumnValue] {
        switch self {
        case .takeable(let endpoint, _, let now): [.text(endpoint), .integer(now.epochMilliseconds)]
        case .dueForExpiry(let now): [.integer(now.epochMilliseconds)]
        }
    }

    /// The SELECT of the selected jobs' rows (`JobRow.columns`), with condition, order and limit, in SQL that SQLite
    /// and PostgreSQL both read, so the time rules of selection are written once. `placeholder` writes parameter n
    /// (`?n` or `$n`) of `parameters`. Limits are numbers made here and statuses our own constants, so they are literals.
    func sql(placeholder: (Int) -> String) -> String {
        "SELECT \(JobRow.columns) FROM jobs WHERE " + condition(placeholder: placeholder)
    }

    private func condition(placeholder: (Int) -> String) -> String {
        switch self {
        case .takeable(_, let limit, _):
            // A queued job whose ttl ran out is not handed out, even before `expire` marks it.
            "endpoint = \(placeholder(1)) AND status = '\(JobStatus.inQueue.rawValue)' AND created_at + ttl_ms > \(placeholder(2)) "
                + "ORDER BY low_priority, seq LIMIT \(limit)"
        case .dueForExpiry:
            // One branch per partial index (`jobs_running`, `jobs_queued_ttl`), each naming its index's status, so
            // SQLite reads the running jobs (a few per worker) and the queued jobs past their ttl instead of every
            // row; `+seq` keeps it from walking the whole table in `seq` order to avoid sorting the few rows found.
            "(status = '\(JobStatus.inProgress.rawValue)' AND (lease_expires_at <= \(placeholder(1)) OR started_at + execution_timeout_ms <= \(placeholder(1)))) "
                + "OR (status = '\(JobStatus.inQueue.rawValue)' AND created_at + ttl_ms <= \(placeholder(1))) ORDER BY +seq"
        }
    }
}

/// Migration 2 in both databases (same SQL): partial indexes so that `expire` and `pendingWebhooks` read only the
/// jobs they may act on, however long the queue or the history is. Their expressions match the queries' text, which
/// is how both planners pick them.
let expiryIndexStatements = [
    "CREATE INDEX jobs_queued_ttl ON jobs ((created_at + ttl_ms)) WHERE status = '\(JobStatus.inQueue.rawValue)'",
    "CREATE INDEX jobs_running_timeout ON jobs ((started_at + execution_timeout_ms)) WHERE status = '\(JobStatus.inProgress.rawValue)'",
    "CREATE INDEX jobs_webhook_pending ON jobs (finished_at) WHERE webhook IS NOT NULL AND NOT webhook_delivered AND NOT webhook_gave_up",
]

/// Migration 4 in both databases (same SQL). Migration 1's `(status, lease_expires_at)` and `(status, finished_at)`
/// indexes changed on every take and every result, yet only `expire` reads leases, and only of running jobs, and
/// only retention reads finish times; partial indexes on those rows alone cost a take or a result one index write
/// instead of four.
let partialStatusIndexStatements = [
    "DROP INDEX jobs_status_lease",
    "DROP INDEX jobs_status_finished",
    "CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE status = '\(JobStatus.inProgress.rawValue)'",
    "CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL",
]

/// Migration 5 in both databases (same SQL). Migration 4's lease index moved on every ping and, with migration 2's
/// timeout index, cost every take and every result two index writes. `expire` can as well read all running jobs,
/// which are few (those the workers hold), through one index whose entries change only when a job starts or ends:
/// a take or a result then writes one index entry and a ping none.
let runningIndexStatements = [
    "DROP INDEX jobs_running_lease",
    "DROP INDEX jobs_running_timeout",
    "CREATE INDEX jobs_running ON jobs (status) WHERE status = '\(JobStatus.inProgress.rawValue)'",
]

/// Retention's delete, in SQL both databases read (`finished_at <= ` matches `jobs_finished`); `placeholder` writes
/// the cutoff's parameter.
func expiredJobsDeletion(placeholder: String) -> String {
    "DELETE FROM jobs WHERE \(expiredJobsCondition(placeholder: placeholder))"
}

/// The attempts (cost records) of the jobs `expiredJobsDeletion` deletes, run before it in the same transaction, so
/// that `job_attempts` does not outgrow the jobs it describes.
func expiredAttemptsDeletion(placeholder: String) -> String {
    "DELETE FROM job_attempts WHERE job_id IN (SELECT id FROM jobs WHERE \(expiredJobsCondition(placeholder: placeholder)))"
}

private func expiredJobsCondition(placeholder: String) -> String {
    "status IN (\(finalStatusesSQL)) AND finished_at <= \(placeholder)"
}

/// The condition of `pendingWebhooks`, in SQL both databases read (and that matches `jobs_webhook_pending`).
let pendingWebhookCondition =
    "status IN (\(finalStatusesSQL)) AND webhook IS NOT NULL AND NOT webhook_delivered AND NOT webhook_gave_up"

/// SQL list of the final statuses, for conditions both databases read.
let finalStatusesSQL = JobStatus.allCases.filter(\.isFinal).map { "'\($0.rawValue)'" }.joined(separator: ", ")

/// What a backend provides so that the job state machine in `JobRules` is applied the same way everywhere: read and
/// lock, let the rules decide, write the decision, in one transaction. The operations built on that live in the
/// extension below, once for all backends.
protocol RuleBackedJobStore: JobStore {
    /// Reads the job (nil when unknown) under a lock, lets `decide` look at it and writes the change it returns (its
    /// record, a job-stop for `stopWorker`, a new queue position when resubmitted) in one transaction, waking takers
    /// when the job went back into the queue.
    func changeJob<T: Sendable>(
        _ operation: String,
        id: String,
        _ decide: @escaping @Sendable (JobRecord?) -> (T, JobChange?)
    ) async throws(JobStoreError) -> T

    /// The same for every selected job; returns the changes written, in selection order. Jobs another transaction holds
    /// are skipped rather than waited for, where the database can tell.
    func changeJobs(
        _ operation: String,
        _ selection: JobSelection,
        _ decide: @escaping @Sendable (JobRecord) -> JobChange?
    ) async throws(JobStoreError) -> [JobChange]

    /// Deletes final jobs finished at or before `cutoff` (with their stream chunks and pending stops) and workers last
    /// seen then; returns how many jobs went.
    func deleteExpired(cutoff: Date) async throws(JobStoreError) -> Int
}

extension RuleBackedJobStore {
    public func cancel(id: String, now: Date) async throws(JobStoreError) -> JobRecord? {
        try await changeJob("cancel", id: id) { job in
            guard let job else { return (nil, nil) }
            let change = JobRules.cancel(job, now: now)
            return (change?.job ?? job, change)
        }
    }

    public func retry(id: String, now: Date) async throws(JobStoreError) -> JobRecord? {
        try await changeJob("retry", id: id) { job in
            let change = job.flatMap { JobRules.retry($0, now: now) }
            return (change?.job, change)
        }
    }

    public func take(endpoint: String, workerID: String, limit: Int, leaseUntil: Date, now: Date) async throws(JobStoreError) -> [JobRecord] {
        guard limit > 0 else { return [] }
        let changes = try await changeJobs("take", .takeable(endpoint: endpoint, limit: limit, now: now)) { job in
            JobRules.take(job, workerID: workerID, leaseUntil: leaseUntil, now: now)
        }
        return changes.map(\.job)
    }

    public func finish(id: String, workerID: String, result: JobResult, maxAttempts: Int, now: Date) async throws(JobStoreError) -> FinishOutcome {
        try await changeJob("finish", id: id) { job in
            JobRules.finish(job, workerID: workerID, result: result, now: now, maxAttempts: maxAttempts)
        }
    }

    public func recordProgress(id: String, workerID: String, output: JSONValue, now: Date) async throws(JobStoreError) -> Bool {
        try await changeJob("record progress", id: id) { job in
            let change = job.flatMap { JobRules.progress($0, workerID: workerID, output: output) }
            return (change != nil, change)
        }
    }

    public func expire(now: Date, maxAttempts: Int, retention: Duration) async throws(JobStoreError) -> ExpiryReport {
        let changes = try await changeJobs("expire", .dueForExpiry(now: now)) { job in
            JobRules.expire(job, now: now, maxAttempts: maxAttempts)
        }
        var report = ExpiryReport()
        for change in changes {
            switch change.job.status {
            case .inQueue: report.requeued.append(change.job.id)
            case .failed: report.failed.append(change.job.id)
            case .timedOut: report.timedOut.append(change.job.id)
            case .inProgress, .completed, .cancelled: break
            }
        }
        report.deleted = try await deleteExpired(cutoff: JobRules.retentionCutoff(now: now, retention: retention))
        return report
    }

    public func claimForFal(id: String, now: Date) async throws(JobStoreError) -> JobRecord? {
        try await changeJob("claim for fal.ai", id: id) { job in
            let change = job.flatMap { JobRules.claimForFal($0, now: now) }
            return (change?.job, change)
        }
    }

    public func recordFalRequest(id: String, requestID: String, costUSD: Double?, now: Date) async throws(JobStoreError) -> Bool {
        try await changeJob("record fal.ai request", id: id) { job in
            let change = job.flatMap { JobRules.falRequest($0, requestID: requestID, costUSD: costUSD) }
            return (change != nil, change)
        }
    }

    public func finishFal(id: String, result: JobResult, now: Date) async throws(JobStoreError) -> JobRecord? {
        try await changeJob("finish fal.ai job", id: id) { job in
            let change = job.flatMap { JobRules.finishFal($0, result: result, now: now) }
            return (change?.job, change)
        }
    }

    public func recordWebhookAttempt(id: String, attempt: WebhookAttempt, delivered: Bool, gaveUp: Bool) async throws(JobStoreError) {
        try await changeJob("record webhook attempt", id: id) { job in
            ((), job.map { JobRules.webhookAttempt($0, attempt: attempt, delivered: delivered, gaveUp: gaveUp) })
        }
    }
}

// MARK: - Rows

/// A value to bind, in the few types the job tables use; each backend turns it into its own binding.
enum ColumnValue: Sendable, Hashable {
    case text(String?)
    case integer(Int64?)
    case boolean(Bool)
    case real(Double?)
}

/// A job as both databases store it: JSON as text (kept as the client sent it; never queried into), times as
/// milliseconds since 1970, the status by its wire name. `Column` names the columns, in the order of every column list.
struct JobRow: Sendable, Hashable {
    var id: String
    var endpoint: String
    var status: String
    var input: String
    var webhook: String?
    var executionTimeoutMs: Int64
    var ttlMs: Int64
    var lowPriority: Bool
    var s3Config: String?
    var output: String?
    var error: String?
    var workerID: String?
    var attempts: Int64
    var createdAt: Int64
    var startedAt: Int64?
    var finishedAt: Int64?
    var leaseExpiresAt: Int64?
    var webhookAttempts: String
    var webhookDelivered: Bool
    var provider: String?
    var falRequestID: String?
    var falCostUSD: Double?

    enum Column: String, CaseIterable {
        case id, endpoint, status, input, webhook
        case executionTimeoutMs = "execution_timeout_ms"
        case ttlMs = "ttl_ms"
        case lowPriority = "low_priority"
        case s3Config = "s3_config"
        case output, error
        case workerID = "worker_id"
        case attempts
        case createdAt = "created_at"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case leaseExpiresAt = "lease_expires_at"
        case webhookAttempts = "webhook_attempts"
        case webhookDelivered = "webhook_delivered"
        case provider
        case falRequestID = "fal_request_id"
        case falCostUSD = "fal_cost_usd"
    }

    /// Column names in `Column` order (`allCases` builds a new array on every use).
    static let columnNames = Column.allCases.map(\.rawValue)
    /// The column list for SELECT and RETURNING.
    static let columns = columnNames.joined(separator: ", ")

    /// The row's values in `Column` order, for either database to bind.
    var columnValues: [ColumnValue] {
        [
            .text(id), .text(endpoint), .text(status), .text(input), .text(webhook), .integer(executionTimeoutMs), .integer(ttlMs),
            .boolean(lowPriority), .text(s3Config), .text(output), .text(error), .text(workerID), .integer(attempts),
            .integer(createdAt), .integer(startedAt), .integer(finishedAt), .integer(leaseExpiresAt), .text(webhookAttempts),
            .boolean(webhookDelivered), .text(provider), .text(falRequestID), .real(falCostUSD),
        ]
    }

    /// `storedInput` is the input's text as read from the row being changed: an input never changes after submission,
    /// and can hold megabytes of image that encoding again would cost the one writer on every take and result.
    init(_ job: JobRecord, storedInput: String? = nil) {
        id = job.id
        endpoint = job.endpoint
        status = job.status.rawValue
        input = storedInput ?? job.input.jsonString()
        webhook = job.webhook
        executionTimeoutMs = job.policy.executionTimeoutMs
        ttlMs = job.policy.ttlMs
        lowPriority = job.policy.lowPriority
        s3Config = job.s3Config?.jsonString()
        output = job.output?.jsonString()
        error = job.error
        workerID = job.workerID
        attempts = Int64(job.attempts)
        createdAt = job.createdAt.epochMilliseconds
        startedAt = job.startedAt?.epochMilliseconds
        finishedAt = job.finishedAt?.epochMilliseconds
        leaseExpiresAt = job.leaseExpiresAt?.epochMilliseconds
        // Most jobs never call a webhook: spare them the encoder.
        webhookAttempts = job.webhookAttempts.isEmpty ? "[]" : Self.encode(job.webhookAttempts)
        webhookDelivered = job.webhookDelivered
        provider = job.provider
        falRequestID = job.falRequestID
        falCostUSD = job.falCostUSD
    }

    func record() throws(JobStoreError) -> JobRecord {
        guard let status = JobStatus(rawValue: status) else { throw corrupt("status \"\(status)\" is not a job status") }
        guard let attemptsList = webhookAttempts == "[]" ? [] : Self.decode([WebhookAttempt].self, webhookAttempts) else {
            throw corrupt("webhook attempts are not readable")
        }
        var record = JobRecord(
            id: id,
            endpoint: endpoint,
            status: status,
            input: try json(input, "input"),
            webhook: webhook,
            policy: JobPolicy(executionTimeoutMs: executionTimeoutMs, ttlMs: ttlMs, lowPriority: lowPriority),
            s3Config: try s3Config.map { text throws(JobStoreError) in try json(text, "s3Config") },
            output: try output.map { text throws(JobStoreError) in try json(text, "output") },
            error: error,
            workerID: workerID,
            attempts: Int(attempts),
            createdAt: Date(epochMilliseconds: createdAt),
            startedAt: startedAt.map(Date.init(epochMilliseconds:)),
            finishedAt: finishedAt.map(Date.init(epochMilliseconds:)),
            leaseExpiresAt: leaseExpiresAt.map(Date.init(epochMilliseconds:)),
            webhookAttempts: attemptsList,
            webhookDelivered: webhookDelivered
        )
        record.provider = provider
        record.falRequestID = falRequestID
        record.falCostUSD = falCostUSD
        return record
    }

    private func json(_ text: String, _ column: String) throws(JobStoreError) -> JSONValue {
        guard let value = JSONValue.parse(Data(text.utf8)) else { throw corrupt("its \(column) is not JSON") }
        return value
    }

    private func corrupt(_ detail: String) -> JobStoreError {
        JobStoreError(.database, operation: "read job", detail: "job \(id) is stored damaged: \(detail)")
    }

    /// JSON text of one of our own values (webhook attempts, worker reports, id lists), dates in milliseconds.
    static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        encoder.outputFormatting = .sortedKeys
        guard let data = try? encoder.encode(value) else { return "null" }
        return String(decoding: data, as: UTF8.self)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String) -> T? {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return try? decoder.decode(type, from: Data(text.utf8))
    }
}

/// A worker as both databases store it (see `JobRow`).
struct WorkerRow: Sendable, Hashable {
    var id: String
    var endpoint: String
    var lastSeen: Int64
    var jobIDs: String
    var report: String?

    static let columns = "id, endpoint, last_seen, job_ids, report"

    func record() -> WorkerRecord {
        WorkerRecord(
            id: id,
            endpoint: endpoint,
            lastSeen: Date(epochMilliseconds: lastSeen),
            jobIDs: JobRow.decode([String].self, jobIDs) ?? [],
            report: report.flatMap { JobRow.decode(WorkerReport.self, $0) }
        )
    }
}

/// An API key as both databases store it.
struct KeyRow: Sendable, Hashable {
    var id: String
    var scope: String
    var hash: String
    var label: String?
    var createdAt: Int64
    var revokedAt: Int64?

    static let columns = "id, scope, hash, label, created_at, revoked_at"
}

extension KeyRow {
    init(_ key: StoredKey) {
        self.init(
            id: key.id,
            scope: key.scope.rawValue,
            hash: key.hash,
            label: key.label,
            createdAt: key.createdAt.epochMilliseconds,
            revokedAt: key.revokedAt?.epochMilliseconds
        )
    }

    func record() throws(JobStoreError) -> StoredKey {
        guard let scope = KeyScope(rawValue: scope) else {
            throw JobStoreError(.database, operation: "read key", detail: "key \(id) has an unknown scope \"\(scope)\"")
        }
        return StoredKey(
            id: id,
            scope: scope,
            hash: hash,
            label: label,
            createdAt: Date(epochMilliseconds: createdAt),
            revokedAt: revokedAt.map(Date.init(epochMilliseconds:))
        )
    }
}

// MARK: - Paging

/// `listJobs` pages: newest first by queue position; the cursor is the position of the last job shown.
enum JobCursor {
    static func position(_ cursor: String?) throws(JobStoreError) -> Int64? {
        guard let cursor else { return nil }
        guard let position = Int64(cursor), position > 0 else {
            throw JobStoreError(.invalid, operation: "list jobs", detail: "cursor \"\(cursor)\" was not returned by a listing")
        }
        return position
    }

    /// `rows` holds up to `limit + 1` rows; the extra one only tells that another page exists. s3Config is dropped:
    /// a listing never needs it.
    static func page(_ rows: [(row: JobRow, position: Int64)], limit: Int) throws(JobStoreError) -> JobPage {
        var jobs: [JobRecord] = []
        for entry in rows.prefix(limit) {
            var job = try entry.row.record()
            job.s3Config = nil
            jobs.append(job)
        }
        let next = rows.count > limit ? rows[limit - 1].position : nil
        return JobPage(jobs: jobs, nextCursor: next.map(String.init))
    }

    static func checkLimit(_ limit: Int) throws(JobStoreError) {
        guard limit > 0 else { throw JobStoreError(.invalid, operation: "list jobs", detail: "limit must be at least 1, got \(limit)") }
    }
}

/// Counts of every status, zero included, so health shows all of them.
func statusCounts(_ pairs: [(String, Int64)]) -> [JobStatus: Int] {
    var counts = Dictionary(uniqueKeysWithValues: JobStatus.allCases.map { ($0, 0) })
    for (status, count) in pairs {
        if let status = JobStatus(rawValue: status) { counts[status] = Int(count) }
    }
    return counts
}

// MARK: - Wake-ups

/// Hands "this endpoint's queue gained work" to every current subscriber of one store instance.
final class WorkSignal: Sendable {
    private let subscribers = Mutex<[UUID: AsyncStream<String>.Continuation]>([:])

    func subscribe() -> AsyncStream<String> {
        // Only the latest few matter: a taker that wakes reads the queue, not the names.
        let (stream, continuation) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(64))
        let id = UUID()
        subscribers.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        return stream
    }

    func signal(_ endpoints: some Sequence<String>) {
        let continuations = subscribers.withLock { Array($0.values) }
        for endpoint in endpoints {
            for continuation in continuations { continuation.yield(endpoint) }
        }
    }

    func finishAll() {
        let continuations = subscribers.withLock { subscribers in
            defer { subscribers.removeAll() }
            return Array(subscribers.values)
        }
        for continuation in continuations { continuation.finish() }
    }
}

/// Migration 6: who ran each job (`vastai` or `fal`) and, for a job forwarded to fal.ai, its request id (to resume
/// following it after a restart) and what fal.ai charged. `real` is the database's name for a double.
func providerColumnStatements(real: String) -> [String] {
    [
        "ALTER TABLE jobs ADD COLUMN provider text",
        "ALTER TABLE jobs ADD COLUMN fal_request_id text",
        "ALTER TABLE jobs ADD COLUMN fal_cost_usd \(real)",
        // Dollars forwarded to fal.ai by spill-over per UTC day ("2026-12-06"), shared by every serve replica.
        "CREATE TABLE fal_spend (day text PRIMARY KEY, dollars \(real) NOT NULL)",
    ]
}
