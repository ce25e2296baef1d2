import Foundation
import SwarmCore

/// One attempt at a job on one worker, as the cost report reads it: who ran it, from when to when, on which rented
/// instance at what price. Written when a worker takes the job and when it reports; a worker that dies mid-job
/// leaves `endedAt` nil and the report ends the attempt where the instance or the lease ended.
public struct JobAttemptRecord: Sendable, Hashable {
    public var jobID: String
    /// 1 for the first take, 2 for the second…
    public var attempt: Int
    public var endpoint: String
    public var workerID: String
    /// The fleet instance whose label is the worker id, when the worker runs on one; its price and GPU then.
    public var instanceID: Int?
    public var dollarsPerHour: Double?
    public var gpu: String?
    public var startedAt: Date
    public var endedAt: Date?
    /// The job's status after this attempt: COMPLETED, FAILED, IN_QUEUE (requeued)…; nil while running.
    public var outcome: String?
    /// The output's size for fal.ai's list price, when the job makes a video.
    public var videoFrames: Int?
    public var videoResolution: String?

    public init(
        jobID: String,
        attempt: Int,
        endpoint: String,
        workerID: String,
        instanceID: Int? = nil,
        dollarsPerHour: Double? = nil,
        gpu: String? = nil,
        startedAt: Date,
        endedAt: Date? = nil,
        outcome: String? = nil,
        videoFrames: Int? = nil,
        videoResolution: String? = nil
    ) {
        self.jobID = jobID
        self.attempt = attempt
        self.endpoint = endpoint
        self.workerID = workerID
        self.instanceID = instanceID
        self.dollarsPerHour = dollarsPerHour
        self.gpu = gpu
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.outcome = outcome
        self.videoFrames = videoFrames
        self.videoResolution = videoResolution
    }
}

/// A rented instance's life as the cost report reads it: billed from `createdAt` to `endedAt` (destroy requested,
/// or removed), booting until `readyAt` (its worker's first READY ping), at `storageDollarsPerHour` instead of
/// `dollarsPerHour` during its warm stops.
public struct InstanceCostRecord: Sendable, Hashable {
    public var id: Int
    public var label: String
    public var gpu: String?
    public var dollarsPerHour: Double
    public var createdAt: Date
    public var readyAt: Date?
    public var endedAt: Date?
    /// Its disk's storage price, $/h, billed while stopped; nil: unknown (a rental before migration 9), 0.
    public var storageDollarsPerHour: Double?
    public var stops: [InstanceBilling.Stop]

    public init(
        id: Int,
        label: String,
        gpu: String? = nil,
        dollarsPerHour: Double,
        createdAt: Date,
        readyAt: Date? = nil,
        endedAt: Date? = nil,
        storageDollarsPerHour: Double? = nil,
        stops: [InstanceBilling.Stop] = []
    ) {
        self.id = id
        self.label = label
        self.gpu = gpu
        self.dollarsPerHour = dollarsPerHour
        self.createdAt = createdAt
        self.readyAt = readyAt
        self.endedAt = endedAt
        self.storageDollarsPerHour = storageDollarsPerHour
        self.stops = stops
    }
}

/// The durable records the cost report is computed from. Everything is in the database, so a restarted `serve`
/// reports the same figures.
public protocol CostRecordStore: Sendable {
    /// Records the start of each taken job's attempt, with the instance (matched by label) and its price now.
    func recordAttemptsStarted(_ attempts: [JobAttemptRecord]) async throws(JobStoreError)
    /// Ends an attempt; an attempt already ended keeps its first end.
    func recordAttemptEnded(jobID: String, attempt: Int, at time: Date, outcome: String) async throws(JobStoreError)
    /// The first READY ping of the worker `label`; later ones are ignored.
    func recordWorkerReady(label: String, at time: Date) async throws(JobStoreError)
    /// The GPU model of a fleet instance, when vast names it.
    func recordFleetInstanceGPU(id: Int, gpu: String) async throws(JobStoreError)
    /// Attempts of `endpoint` that started before `end` and did not end before `start` (or never ended).
    func jobAttempts(endpoint: String, overlapping start: Date, _ end: Date) async throws(JobStoreError) -> [JobAttemptRecord]
    /// Priced instances billed at some time between `start` and `end`.
    func instanceCosts(overlapping start: Date, _ end: Date) async throws(JobStoreError) -> [InstanceCostRecord]
    /// Jobs of `endpoint` that another provider (fal.ai) ran and that finished in `[start, end)`, with what it charged.
    func forwardedJobs(endpoint: String, finishedIn start: Date, _ end: Date) async throws(JobStoreError) -> [ForwardedJobRecord]
}

/// A job another provider ran: its input (for the list price of what it made) and that provider's charge.
public struct ForwardedJobRecord: Sendable, Hashable {
    public var jobID: String
    public var provider: String
    public var status: String
    public var finishedAt: Date
    public var costUSD: Double
    public var input: JSONValue

    public init(jobID: String, provider: String, status: String, finishedAt: Date, costUSD: Double, input: JSONValue) {
        self.jobID = jobID
        self.provider = provider
        self.status = status
        self.finishedAt = finishedAt
        self.costUSD = costUSD
        self.input = input
    }
}

/// Migration 7 in both databases (same SQL).
let costTableStatements = [
    """
    CREATE TABLE job_attempts (
        job_id TEXT NOT NULL, attempt BIGINT NOT NULL, endpoint TEXT NOT NULL, worker_id TEXT NOT NULL, instance_id BIGINT,
        dollars_per_hour DOUBLE PRECISION, gpu TEXT, started_at BIGINT NOT NULL, ended_at BIGINT, outcome TEXT,
        video_frames BIGINT, video_resolution TEXT, PRIMARY KEY (job_id, attempt)
    )
    """,
    "CREATE INDEX job_attempts_started ON job_attempts (endpoint, started_at)",
    "CREATE TABLE fleet_worker_ready (label TEXT PRIMARY KEY NOT NULL, ready_at BIGINT NOT NULL)",
    "ALTER TABLE fleet_instances ADD COLUMN gpu_name TEXT",
]

extension FleetTables {
    public func forwardedJobs(endpoint: String, finishedIn start: Date, _ end: Date) async throws(JobStoreError) -> [ForwardedJobRecord] {
        let rows = try await fleetQuery(
            "read forwarded jobs",
            "SELECT id, provider, status, finished_at, fal_cost_usd, input FROM jobs WHERE endpoint = $1 AND provider IS NOT NULL "
                + "AND provider <> 'vastai' AND finished_at >= $2 AND finished_at < $3 ORDER BY finished_at",
            [ColumnValue(endpoint), ColumnValue(start), ColumnValue(end)],
            columns: [.text, .text, .text, .integer, .real, .text]
        )
        return rows.compactMap { row in
            guard let id = row[0].string, let provider = row[1].string, let status = row[2].string, let finished = row[3].date else { return nil }
            return ForwardedJobRecord(
                jobID: id,
                provider: provider,
                status: status,
                finishedAt: finished,
                costUSD: row[4].double ?? 0,
                input: row[5].string.flatMap { JobRow.decode(JSONValue.self, $0) } ?? .null
            )
        }
    }

    public func recordAttemptsStarted(_ attempts: [JobAttemptRecord]) async throws(JobStoreError) {
        // One statement per chunk (a batch take is one write, not one per job); SQLite allows 500 compound SELECTs.
        for start in stride(from: 0, to: attempts.count, by: 200) {
            let chunk = attempts[start..<min(start + 200, attempts.count)]
            var values: [ColumnValue] = []
            let rows = chunk.map { attempt in
                let base = values.count
                values += [
                    ColumnValue(attempt.jobID), ColumnValue(attempt.attempt), ColumnValue(attempt.endpoint), ColumnValue(attempt.workerID),
                    ColumnValue(attempt.startedAt), ColumnValue(attempt.videoFrames), ColumnValue(attempt.videoResolution),
                ]
                return
                    "SELECT CAST($\(base + 1) AS TEXT) AS job_id, CAST($\(base + 2) AS BIGINT) AS attempt, CAST($\(base + 3) AS TEXT) AS endpoint, "
                    + "CAST($\(base + 4) AS TEXT) AS worker_id, CAST($\(base + 5) AS BIGINT) AS started_at, "
                    + "CAST($\(base + 6) AS BIGINT) AS video_frames, CAST($\(base + 7) AS TEXT) AS video_resolution"
            }
            // The instance's id, price and GPU are copied now: the price is the one paid while this job ran. SQLite
            // needs a WHERE before ON CONFLICT in INSERT … SELECT to parse it.
            try await fleetExecute(
                "record \(chunk.count) job attempts",
                "INSERT INTO job_attempts (job_id, attempt, endpoint, worker_id, instance_id, dollars_per_hour, gpu, started_at, "
                    + "video_frames, video_resolution) SELECT v.job_id, v.attempt, v.endpoint, v.worker_id, f.id, f.dph_total, f.gpu_name, "
                    + "v.started_at, v.video_frames, v.video_resolution FROM (\(rows.joined(separator: " UNION ALL "))) AS v "
                    + "LEFT JOIN fleet_instances f ON f.label = v.worker_id WHERE 1 = 1 ON CONFLICT (job_id, attempt) DO NOTHING",
                values
            )
        }
    }

    public func recordAttemptEnded(jobID: String, attempt: Int, at time: Date, outcome: String) async throws(JobStoreError) {
        try await fleetExecute(
            "end attempt \(attempt) of job \(jobID)",
            "UPDATE job_attempts SET ended_at = $1, outcome = $2 WHERE job_id = $3 AND attempt = $4 AND ended_at IS NULL",
            [ColumnValue(time), ColumnValue(outcome), ColumnValue(jobID), ColumnValue(attempt)]
        )
    }

    public func recordWorkerReady(label: String, at time: Date) async throws(JobStoreError) {
        try await fleetExecute(
            "record worker \(label) ready",
            "INSERT INTO fleet_worker_ready (label, ready_at) VALUES ($1, $2) ON CONFLICT (label) DO NOTHING",
            [ColumnValue(label), ColumnValue(time)]
        )
    }

    public func recordFleetInstanceGPU(id: Int, gpu: String) async throws(JobStoreError) {
        try await fleetExecute(
            "record GPU of fleet instance \(id)",
            "UPDATE fleet_instances SET gpu_name = $1 WHERE id = $2 AND gpu_name IS NULL",
            [ColumnValue(gpu), ColumnValue(id)]
        )
    }

    public func jobAttempts(endpoint: String, overlapping start: Date, _ end: Date) async throws(JobStoreError) -> [JobAttemptRecord] {
        let rows = try await fleetQuery(
            "list job attempts",
            "SELECT job_id, attempt, endpoint, worker_id, instance_id, dollars_per_hour, gpu, started_at, ended_at, outcome, "
                + "video_frames, video_resolution FROM job_attempts WHERE endpoint = $1 AND started_at < $2 "
                + "AND (ended_at IS NULL OR ended_at >= $3) ORDER BY started_at, job_id, attempt",
            [ColumnValue(endpoint), ColumnValue(end), ColumnValue(start)],
            columns: [.text, .integer, .text, .text, .integer, .real, .text, .integer, .integer, .text, .integer, .text]
        )
        return rows.compactMap { row in
            guard let job = row[0].string, let attempt = row[1].int, let endpoint = row[2].string, let worker = row[3].string,
                let started = row[7].date
            else { return nil }
            return JobAttemptRecord(
                jobID: job,
                attempt: attempt,
                endpoint: endpoint,
                workerID: worker,
                instanceID: row[4].int,
                dollarsPerHour: row[5].double,
                gpu: row[6].string,
                startedAt: started,
                endedAt: row[8].date,
                outcome: row[9].string,
                videoFrames: row[10].int,
                videoResolution: row[11].string
            )
        }
    }

    public func instanceCosts(overlapping start: Date, _ end: Date) async throws(JobStoreError) -> [InstanceCostRecord] {
        // Billing stops when the destroy is sent (vast stops charging then), else when the instance was removed.
        let rows = try await fleetQuery(
            "list instance costs",
            "SELECT f.id, f.label, f.gpu_name, f.dph_total, f.created_at, r.ready_at, f.destroy_requested_at, f.removed_at, f.storage_dph "
                + "FROM fleet_instances f LEFT JOIN fleet_worker_ready r ON r.label = f.label "
                + "WHERE f.dph_total IS NOT NULL AND f.created_at < $1 AND (f.removed_at IS NULL OR f.removed_at >= $2) ORDER BY f.id",
            [ColumnValue(end), ColumnValue(start)],
            columns: [.integer, .text, .text, .real, .integer, .integer, .integer, .integer, .real]
        )
        let stops = try await fleetStops(overlapping: start, end)
        return rows.compactMap { row in
            guard let id = row[0].int, let label = row[1].string, let dph = row[3].double, let created = row[4].date else { return nil }
            return InstanceCostRecord(
                id: id,
                label: label,
                gpu: row[2].string,
                dollarsPerHour: dph,
                createdAt: created,
                readyAt: row[5].date,
                endedAt: row[6].date ?? row[7].date,
                storageDollarsPerHour: row[8].double,
                stops: stops[id] ?? []
            )
        }
    }
}

extension SQLiteJobStore: CostRecordStore {}
extension PostgresJobStore: CostRecordStore {}
