import JobProtocol
import SwarmCore

import Foundation

/// What the rules decided for one job. A backend writes it in the same transaction in which it read (and locked)
/// the job, so the decision is made on the state that is current.
struct JobChange: Sendable, Hashable {
    var job: JobRecord
    /// The worker that must abandon the job: it is told once, through job-stop.
    var stopWorker: String? = nil
    /// The job was submitted again (client retry): it goes to the back of the queue.
    var resubmitted = false
    /// Set when webhook delivery was given up on; nil leaves it as it was.
    var webhookGaveUp: Bool? = nil

    /// The endpoint's queue gained this job, so takers waiting for work should wake.
    var wakesTakers: Bool { job.status == .inQueue }
}

/// The job state machine, shared by every backend: each function looks at a job as stored and returns the change to
/// make (or none). Backends only read, lock and write.
enum JobRules {
    /// The provider recorded on a job that a worker of our fleet takes.
    static let fleetProvider = "vastai"

    // MARK: Clients

    static func validate(_ jobs: [NewJob]) throws(JobStoreError) {
        var seen = Set<String>()
        for job in jobs {
            guard !job.id.isEmpty else { throw JobStoreError(.invalid, operation: "enqueue", detail: "a job id is empty") }
            guard !job.endpoint.isEmpty else {
                throw JobStoreError(.invalid, operation: "enqueue", detail: "job \(job.id) has an empty endpoint")
            }
            guard seen.insert(job.id).inserted else {
                throw JobStoreError(.invalid, operation: "enqueue", detail: "job id \(job.id) appears twice in one request")
            }
        }
    }

    static func queued(_ new: NewJob, now: Date) -> JobRecord {
        JobRecord(
            id: new.id,
            endpoint: new.endpoint,
            status: .inQueue,
            input: new.input,
            webhook: new.webhook,
            policy: new.policy,
            s3Config: new.s3Config,
            output: nil,
            error: nil,
            workerID: nil,
            attempts: 0,
            createdAt: now,
            startedAt: nil,
            finishedAt: nil,
            leaseExpiresAt: nil,
            webhookAttempts: [],
            webhookDelivered: false
        )
    }

    /// A job that is not final ends at once; a running one is also marked for job-stop. A final job is left as it is.
    static func cancel(_ job: JobRecord, now: Date) -> JobChange? {
        guard !job.status.isFinal else { return nil }
        let stop = job.status == .inProgress ? job.workerID : nil
        return JobChange(job: ended(job, as: .cancelled, error: nil, now: now), stopWorker: stop)
    }

    /// Only FAILED and TIMED_OUT jobs run again: as a new submission under the same id, with the old outcome dropped.
    static func retry(_ job: JobRecord, now: Date) -> JobChange? {
        guard job.status == .failed || job.status == .timedOut else { return nil }
        var next = job
        next.status = .inQueue
        next.output = nil
        next.error = nil
        next.workerID = nil
        // Whoever runs it next records itself; fal.ai's charge of an earlier run stays, as it was spent.
        next.provider = nil
        next.falRequestID = nil
        next.attempts = 0
        // The ttl and the queue wait (`delayTime`) count from the new submission.
        next.createdAt = now
        next.startedAt = nil
        next.finishedAt = nil
        next.leaseExpiresAt = nil
        next.webhookAttempts = []
        next.webhookDelivered = false
        return JobChange(job: next, resubmitted: true, webhookGaveUp: false)
    }

    // MARK: Workers

    static func take(_ job: JobRecord, workerID: String, leaseUntil: Date, now: Date) -> JobChange {
        var next = job
        next.status = .inProgress
        next.workerID = workerID
        next.provider = JobRules.fleetProvider
        next.attempts += 1
        next.startedAt = now
        next.leaseExpiresAt = leaseUntil
        // Progress and errors of an earlier attempt say nothing about this one.
        next.output = nil
        next.error = nil
        return JobChange(job: next)
    }

    /// The first final result wins. A result from the worker that held the job last is still taken when the lease ran
    /// out but nobody took the job again: the work was done, so running it again would only waste a GPU.
    static func finish(_ job: JobRecord?, workerID: String, result: JobResult, now: Date, maxAttempts: Int) -> (FinishOutcome, JobChange?) {
        guard let job else { return (.unknownJob, nil) }
        if job.status.isFinal { return (.duplicate(job), nil) }
        guard job.workerID == workerID else { return (.notHolder(job), nil) }

        switch result {
        case .completed(let output):
            let change = JobChange(job: ended(job, as: .completed, output: output, error: nil, now: now))
            return (.accepted(change.job), change)
        case .failed(let error, let output, retryable: true):
            // Already back in the queue after a lapsed lease: nothing more to do.
            if job.status == .inQueue { return (.requeued(job), nil) }
            if job.attempts < maxAttempts {
                let change = requeued(job, error: error)
                return (.requeued(change.job), change)
            }
            let reason = "\(error) (gave up after \(job.attempts) attempts)"
            let change = JobChange(job: ended(job, as: .failed, output: output, error: reason, now: now))
            return (.accepted(change.job), change)
        case .failed(let error, let output, retryable: false):
            let change = JobChange(job: ended(job, as: .failed, output: output, error: error, now: now))
            return (.accepted(change.job), change)
        }
    }

    /// Progress and stream chunks are taken only from the worker that holds a running job.
    static func acceptsReports(_ job: JobRecord, from workerID: String) -> Bool {
        job.status == .inProgress && job.workerID == workerID
    }

    static func progress(_ job: JobRecord, workerID: String, output: JSONValue) -> JobChange? {
        guard acceptsReports(job, from: workerID) else { return nil }
        var next = job
        next.output = output
        return JobChange(job: next)
    }

    // MARK: Forwarding to fal.ai

    /// The provider recorded on a job forwarded to fal.ai.
    static let falProvider = "fal"

    static func claimForFal(_ job: JobRecord, now: Date) -> JobChange? {
        guard job.status == .inQueue else { return nil }
        var next = job
        next.status = .inProgress
        next.provider = falProvider
        next.workerID = nil
        next.startedAt = now
        // No lease: no worker pings for it. `expire` leaves a running job without a lease alone until its timeout.
        next.leaseExpiresAt = nil
        next.output = nil
        next.error = nil
        return JobChange(job: next)
    }

    static func falRequest(_ job: JobRecord, requestID: String, costUSD: Double?) -> JobChange? {
        guard isOnFal(job) else { return nil }
        var next = job
        next.falRequestID = requestID
        next.falCostUSD = costUSD
        return JobChange(job: next)
    }

    static func finishFal(_ job: JobRecord, result: JobResult, now: Date) -> JobChange? {
        guard isOnFal(job) else { return nil }
        switch result {
        case .completed(let output): return JobChange(job: ended(job, as: .completed, output: output, error: nil, now: now))
        case .failed(let error, let output, _): return JobChange(job: ended(job, as: .failed, output: output, error: error, now: now))
        }
    }

    static func isOnFal(_ job: JobRecord) -> Bool {
        job.status == .inProgress && job.provider == falProvider && job.workerID == nil
    }

    // MARK: Time

    /// Running jobs past their `executionTimeout` time out (even when their lease lapsed too: they had their run);
    /// running jobs whose lease lapsed go back to the queue, or fail once `maxAttempts` takes were used; queued jobs
    /// past their ttl time out.
    static func expire(_ job: JobRecord, now: Date, maxAttempts: Int) -> JobChange? {
        switch job.status {
        case .inProgress:
            if let startedAt = job.startedAt, now >= startedAt.addingMilliseconds(job.policy.executionTimeoutMs) {
                let error = "execution timeout of \(describe(ms: job.policy.executionTimeoutMs)) exceeded"
                return JobChange(job: ended(job, as: .timedOut, error: error, now: now), stopWorker: job.workerID)
            }
            guard let lease = job.leaseExpiresAt, now >= lease else { return nil }
            let worker = job.workerID ?? "unknown"
            if job.attempts < maxAttempts {
                // The worker may still be running it after a network split: tell it to stop, so it runs only once.
                var change = requeued(job, error: "worker \(worker) stopped reporting (attempt \(job.attempts) of \(maxAttempts))")
                change.stopWorker = job.workerID
                return change
            }
            let error = "worker \(worker) stopped reporting; gave up after \(job.attempts) attempts"
            return JobChange(job: ended(job, as: .failed, error: error, now: now), stopWorker: job.workerID)
        case .inQueue:
            guard now >= ttlDeadline(job) else { return nil }
            let error = "ttl of \(describe(ms: job.policy.ttlMs)) ran out before a worker took the job"
            return JobChange(job: ended(job, as: .timedOut, error: error, now: now))
        case .completed, .failed, .cancelled, .timedOut:
            return nil
        }
    }

    /// Final jobs finished at or before this moment are deleted.
    static func retentionCutoff(now: Date, retention: Duration) -> Date {
        now.addingTimeInterval(-retention.seconds)
    }

    // MARK: Webhooks

    static func webhookAttempt(_ job: JobRecord, attempt: WebhookAttempt, delivered: Bool, gaveUp: Bool) -> JobChange {
        var next = job
        next.webhookAttempts.append(attempt)
        next.webhookDelivered = next.webhookDelivered || delivered
        return JobChange(job: next, webhookGaveUp: gaveUp)
    }

    // MARK: Helpers

    private static func ttlDeadline(_ job: JobRecord) -> Date {
        job.createdAt.addingMilliseconds(job.policy.ttlMs)
    }

    private static func ended(_ job: JobRecord, as status: JobStatus, output: JSONValue? = nil, error: String?, now: Date) -> JobRecord {
        var next = job
        next.status = status
        // A cancelled or timed-out job keeps its last progress value; a result replaces it.
        if status == .completed || status == .failed { next.output = output }
        next.error = error
        next.finishedAt = now
        next.leaseExpiresAt = nil
        return next
    }

    /// Back in the queue, keeping its place (its age) and its holder, so that a late result from that worker is taken.
    private static func requeued(_ job: JobRecord, error: String) -> JobChange {
        var next = job
        next.status = .inQueue
        next.output = nil
        next.error = error
        next.leaseExpiresAt = nil
        return JobChange(job: next)
    }

    private static func describe(ms: Int64) -> String {
        ms % 1000 == 0 ? "\(ms / 1000) s" : "\(ms) ms"
    }
}

extension Date {
    func addingMilliseconds(_ ms: Int64) -> Date { addingTimeInterval(Double(ms) / 1000) }

    /// Milliseconds since 1970, the unit both databases store times in.
    var epochMilliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }

    init(epochMilliseconds ms: Int64) { self.init(timeIntervalSince1970: Double(ms) / 1000) }
}

extension Duration {
    var seconds: TimeInterval {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
