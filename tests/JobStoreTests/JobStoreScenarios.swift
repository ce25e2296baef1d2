import Foundation
import JobProtocol
import SwarmCore
import GRDB
import Testing

@testable import JobStore

/// One scenario suite, run against every enabled backend.
@Suite struct JobStoreScenarios {
    @Test(.enabled(if: Backend.databaseURL != nil, "SWARM_TEST_DATABASE_URL is unset: the PostgreSQL variants are skipped"))
    func postgresConfigured() throws {
        #expect(Backend.enabled.contains(.postgres))
    }

    @Test(arguments: Backend.enabled)
    func enqueueIsAtomicAndKeepsOrder(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let stored = try await store.enqueue([newJob("a"), newJob("b"), newJob("c")], now: t0)
            #expect(stored.map(\.id) == ["a", "b", "c"])
            #expect(stored.allSatisfy { $0.status == .inQueue && $0.attempts == 0 && $0.createdAt == t0 })

            // One id already taken: nothing of the batch is stored.
            let error = await #expect(throws: JobStoreError.self) {
                try await store.enqueue([newJob("d"), newJob("b")], now: t0)
            }
            #expect(error?.code == .invalid)
            #expect(error?.description.contains("b") == true)
            #expect(try await store.job(id: "d") == nil)
            // A repeated id inside one batch.
            await #expect(throws: JobStoreError.self) { try await store.enqueue([newJob("e"), newJob("e")], now: t0) }

            let page = try await store.listJobs(endpoint: "ep", status: nil, limit: 10, cursor: nil)
            #expect(page.jobs.map(\.id) == ["c", "b", "a"])
            let job = try #require(try await store.job(id: "a"))
            #expect(job.input == ["n": 1])
        }
    }

    /// Concurrent writes may share a transaction (SQLite's group commit): one that fails must fail alone and undo only
    /// its own changes, and every other one must be stored.
    @Test(arguments: Backend.enabled)
    func concurrentWritesFailAlone(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            _ = try await store.enqueue((0..<10).map { newJob("taken-\($0)") }, now: t0)
            let outcomes = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                for n in 0..<60 {
                    group.addTask {
                        // Every third batch repeats a stored id after a fresh one, which must not be stored either.
                        let batch = n % 3 == 0 ? [newJob("fresh-\(n)"), newJob("taken-\(n % 10)")] : [newJob("fresh-\(n)")]
                        do {
                            _ = try await store.enqueue(batch, now: t0)
                            return (n, true)
                        } catch {
                            return (n, false)
                        }
                    }
                }
                return try await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
            }
            for n in 0..<60 {
                #expect(outcomes[n] == (n % 3 != 0), "batch \(n)")
                #expect((try await store.job(id: "fresh-\(n)") != nil) == (n % 3 != 0), "fresh-\(n)")
            }
            #expect(try await store.counts(endpoint: "ep")[.inQueue] == 10 + 40)
        }
    }

    @Test(arguments: Backend.enabled)
    func takeGivesNormalPriorityFirstThenOldest(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let low = JobPolicy(lowPriority: true)
            _ = try await store.enqueue([newJob("low1", policy: low), newJob("n1"), newJob("other", endpoint: "ep2")], now: t0)
            _ = try await store.enqueue([newJob("n2"), newJob("low2", policy: low)], now: at(1))

            let first = try await store.take(endpoint: "ep", workerID: "w", limit: 3, leaseUntil: at(60), now: at(2))
            #expect(first.map(\.id) == ["n1", "n2", "low1"])
            #expect(first.allSatisfy { $0.status == .inProgress && $0.workerID == "w" && $0.attempts == 1 && $0.startedAt == at(2) })
            #expect(first[0].delayTimeMs == 2000)
            let rest = try await store.take(endpoint: "ep", workerID: "w", limit: 3, leaseUntil: at(60), now: at(2))
            #expect(rest.map(\.id) == ["low2"])
            #expect(try await store.take(endpoint: "ep", workerID: "w", limit: 3, leaseUntil: at(60), now: at(2)).isEmpty)
        }
    }

    @Test(arguments: Backend.enabled)
    func concurrentTakersNeverShareAJob(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let ids = try await enqueue(store, 200)
            let taken = try await takeEverything([store], takers: 8, batch: 3)
            #expect(taken.count == 200)
            #expect(Set(taken) == Set(ids))
        }
    }

    @Test(arguments: Backend.enabled)
    func lapsedLeaseRequeuesThenFailsAfterMaxAttempts(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await enqueue(store, 1)
            _ = try await store.take(endpoint: "ep", workerID: "w1", limit: 1, leaseUntil: at(10), now: at(1))
            #expect(try await store.expire(now: at(9), maxAttempts: 2, retention: .seconds(3600)).requeued.isEmpty)

            let report = try await store.expire(now: at(10), maxAttempts: 2, retention: .seconds(3600))
            #expect(report.requeued == ["j0"])
            #expect(try await store.job(id: "j0")?.status == .inQueue)
            // The worker that lost it is told to stop, once.
            #expect(try await store.takeJobsToStop(workerID: "w1") == ["j0"])
            #expect(try await store.takeJobsToStop(workerID: "w1").isEmpty)

            let again = try await store.take(endpoint: "ep", workerID: "w2", limit: 1, leaseUntil: at(20), now: at(11))
            #expect(again.first?.attempts == 2)
            let final = try await store.expire(now: at(20), maxAttempts: 2, retention: .seconds(3600))
            #expect(final.failed == ["j0"])
            let job = try #require(try await store.job(id: "j0"))
            #expect(job.status == .failed)
            #expect(job.error?.contains("w2") == true)
            #expect(job.error?.contains("2 attempts") == true)
            #expect(try await store.takeJobsToStop(workerID: "w2") == ["j0"])
        }
    }

    @Test(arguments: Backend.enabled)
    func aLateResultCountsOnlyWhileNobodyElseTookTheJob(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await enqueue(store, 2)
            _ = try await store.take(endpoint: "ep", workerID: "slow", limit: 2, leaseUntil: at(10), now: at(1))
            #expect(try await store.expire(now: at(10), maxAttempts: 3, retention: .seconds(3600)).requeued == ["j0", "j1"])

            // j0 is back in the queue but nobody took it: the work the old holder did is kept.
            #expect(try await store.recordProgress(id: "j0", workerID: "slow", output: 1, now: at(11)) == false)
            let kept = try await store.finish(id: "j0", workerID: "slow", result: .completed(output: "done"), maxAttempts: 3, now: at(11))
            guard case .accepted(let job) = kept else { Issue.record("expected accepted, got \(kept)"); return }
            #expect(job.status == .completed)

            // j1 was taken again: the old holder's result is refused.
            #expect(try await store.take(endpoint: "ep", workerID: "fast", limit: 2, leaseUntil: at(60), now: at(12)).map(\.id) == ["j1"])
            let refused = try await store.finish(id: "j1", workerID: "slow", result: .completed(output: "late"), maxAttempts: 3, now: at(13))
            guard case .notHolder(let current) = refused else { Issue.record("expected notHolder, got \(refused)"); return }
            #expect(current.workerID == "fast")
            #expect(current.status == .inProgress)
        }
    }

    @Test(arguments: Backend.enabled)
    func heartbeatExtendsTheLeaseAndRecordsTheWorker(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await enqueue(store, 2)
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 2, leaseUntil: at(10), now: at(1))
            let report = WorkerReport(stage: .ready, jobsSucceeded: 2, jobsFailed: 0, extra: ["models": 3])
            try await store.heartbeat(workerID: "w", endpoint: "ep", jobIDs: ["j0", "unknown"], leaseUntil: at(30), report: report, now: at(5))
            // Only jobs it holds are extended, and a lease never shrinks.
            try await store.heartbeat(workerID: "other", endpoint: "ep", jobIDs: ["j1"], leaseUntil: at(30), report: nil, now: at(5))
            try await store.heartbeat(workerID: "w", endpoint: "ep", jobIDs: ["j0"], leaseUntil: at(20), report: nil, now: at(6))

            #expect(try await store.job(id: "j0")?.leaseExpiresAt == at(30))
            let report2 = try await store.expire(now: at(15), maxAttempts: 3, retention: .seconds(3600))
            #expect(report2.requeued == ["j1"])

            let workers = try await store.workers(endpoint: "ep")
            #expect(workers.map(\.id) == ["other", "w"])
            let w = try #require(workers.last)
            #expect(w.lastSeen == at(6))
            #expect(w.jobIDs == ["j0"])
            #expect(w.report == report, "a ping without a report keeps the last one")
            #expect(try await store.workers(endpoint: "elsewhere").isEmpty)
            #expect(try await store.workers(endpoint: nil).count == 2)
        }
    }

    @Test(arguments: Backend.enabled)
    func firstFinalResultWins(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await enqueue(store, 1)
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 1, leaseUntil: at(60), now: at(1))
            #expect(try await store.recordProgress(id: "j0", workerID: "w", output: ["pct": 50], now: at(2)))
            #expect(try await store.recordProgress(id: "j0", workerID: "intruder", output: ["pct": 99], now: at(2)) == false)
            #expect(try await store.job(id: "j0")?.output == ["pct": 50])

            let notHolder = try await store.finish(id: "j0", workerID: "intruder", result: .completed(output: 1), maxAttempts: 3, now: at(3))
            guard case .notHolder = notHolder else { Issue.record("expected notHolder, got \(notHolder)"); return }

            let outcome = try await store.finish(id: "j0", workerID: "w", result: .completed(output: ["image": "a.png"]), maxAttempts: 3, now: at(4))
            guard case .accepted(let job) = outcome else { Issue.record("expected accepted, got \(outcome)"); return }
            #expect(job.status == .completed)
            #expect(job.output == ["image": "a.png"])
            #expect(job.executionTimeMs == 3000)
            #expect(job.leaseExpiresAt == nil)

            let again = try await store.finish(
                id: "j0",
                workerID: "w",
                result: .failed(error: "late", output: nil, retryable: false),
                maxAttempts: 3,
                now: at(5)
            )
            guard case .duplicate(let kept) = again else { Issue.record("expected duplicate, got \(again)"); return }
            #expect(kept.status == .completed)
            #expect(try await store.recordProgress(id: "j0", workerID: "w", output: 1, now: at(6)) == false)
            #expect(try await store.finish(id: "nope", workerID: "w", result: .completed(output: nil), maxAttempts: 3, now: at(6)) == .unknownJob)
        }
    }

    /// Takes and results rewrite a job's row without its input (SQLite writes only changed columns; PostgreSQL leaves
    /// the input out): the input and s3Config read back after every change must still be the submitted ones.
    @Test(arguments: Backend.enabled)
    func inputAndS3ConfigOutliveEveryChange(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let input: JSONValue = ["prompt": "a fox", "image": .string(String(repeating: "iVBORw0KGgo", count: 20)), "steps": 20]
            let s3Config: JSONValue = ["bucketName": "out", "accessId": "id"]
            _ = try await store.enqueue([NewJob(id: "j", endpoint: "ep", input: input, s3Config: s3Config)], now: t0)
            let taken = try await store.take(endpoint: "ep", workerID: "w", limit: 1, leaseUntil: at(60), now: at(1))
            #expect(taken.map(\.input) == [input])
            _ = try await store.finish(
                id: "j",
                workerID: "w",
                result: .failed(error: "crashed", output: nil, retryable: true),
                maxAttempts: 3,
                now: at(2)
            )
            _ = try await store.take(endpoint: "ep", workerID: "w2", limit: 1, leaseUntil: at(60), now: at(3))
            _ = try await store.finish(id: "j", workerID: "w2", result: .completed(output: ["images": ["a.png"]]), maxAttempts: 3, now: at(4))
            let job = try #require(try await store.job(id: "j"))
            #expect(job.status == .completed)
            #expect(job.input == input)
            #expect(job.s3Config == s3Config)
            #expect(job.output == ["images": ["a.png"]])
        }
    }

    @Test(arguments: Backend.enabled)
    func retryableFailureRequeuesUntilMaxAttempts(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await enqueue(store, 1)
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 1, leaseUntil: at(60), now: at(1))
            let first = try await store.finish(
                id: "j0",
                workerID: "w",
                result: .failed(error: "SwarmUI crashed", output: nil, retryable: true),
                maxAttempts: 2,
                now: at(2)
            )
            guard case .requeued(let queued) = first else { Issue.record("expected requeued, got \(first)"); return }
            #expect(queued.status == .inQueue)

            _ = try await store.take(endpoint: "ep", workerID: "w2", limit: 1, leaseUntil: at(60), now: at(3))
            let second = try await store.finish(
                id: "j0",
                workerID: "w2",
                result: .failed(error: "SwarmUI crashed", output: nil, retryable: true),
                maxAttempts: 2,
                now: at(4)
            )
            guard case .accepted(let failed) = second else { Issue.record("expected accepted, got \(second)"); return }
            #expect(failed.status == .failed)
            #expect(failed.error?.contains("gave up after 2 attempts") == true)

            // A plain failure is final at once.
            try await enqueue(store, 1, prefix: "k")
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 1, leaseUntil: at(60), now: at(5))
            let plain = try await store.finish(
                id: "k0",
                workerID: "w",
                result: .failed(error: "bad input", output: ["partial": true], retryable: false),
                maxAttempts: 2,
                now: at(6)
            )
            guard case .accepted(let job) = plain else { Issue.record("expected accepted, got \(plain)"); return }
            #expect(job.error == "bad input")
            #expect(job.output == ["partial": true])
        }
    }

    @Test(arguments: Backend.enabled)
    func cancelEndsQueuedAndRunningJobsAndStopsTheWorkerOnce(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await enqueue(store, 2)
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 1, leaseUntil: at(60), now: at(1))

            let running = try #require(try await store.cancel(id: "j0", now: at(2)))
            #expect(running.status == .cancelled)
            #expect(running.finishedAt == at(2))
            let queued = try #require(try await store.cancel(id: "j1", now: at(2)))
            #expect(queued.status == .cancelled)
            #expect(try await store.cancel(id: "nope", now: at(2)) == nil)
            // Cancelling again changes nothing.
            #expect(try await store.cancel(id: "j0", now: at(3))?.finishedAt == at(2))

            #expect(try await store.takeJobsToStop(workerID: "w") == ["j0"])
            #expect(try await store.takeJobsToStop(workerID: "w").isEmpty)
            // The worker's late result is a duplicate.
            let late = try await store.finish(id: "j0", workerID: "w", result: .completed(output: 1), maxAttempts: 3, now: at(4))
            guard case .duplicate(let job) = late else { Issue.record("expected duplicate, got \(late)"); return }
            #expect(job.status == .cancelled)
            #expect(try await store.take(endpoint: "ep", workerID: "w", limit: 5, leaseUntil: at(60), now: at(5)).isEmpty)
        }
    }

    @Test(arguments: Backend.enabled)
    func retryRequeuesFailedAndTimedOutJobsOnly(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await enqueue(store, 3)
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 2, leaseUntil: at(60), now: at(1))
            _ = try await store.finish(
                id: "j0",
                workerID: "w",
                result: .failed(error: "boom", output: 1, retryable: false),
                maxAttempts: 3,
                now: at(2)
            )
            _ = try await store.finish(id: "j1", workerID: "w", result: .completed(output: 1), maxAttempts: 3, now: at(2))

            #expect(try await store.retry(id: "j1", now: at(3)) == nil, "a completed job cannot be retried")
            #expect(try await store.retry(id: "j2", now: at(3)) == nil, "a queued job cannot be retried")
            #expect(try await store.retry(id: "nope", now: at(3)) == nil)

            let retried = try #require(try await store.retry(id: "j0", now: at(3)))
            #expect(retried.status == .inQueue)
            #expect(retried.output == nil && retried.error == nil && retried.attempts == 0)
            // A new submission: behind the job that waited all along.
            let next = try await store.take(endpoint: "ep", workerID: "w", limit: 2, leaseUntil: at(60), now: at(4))
            #expect(next.map(\.id) == ["j2", "j0"])
            #expect(next.last?.delayTimeMs == 1000)
        }
    }

    @Test(arguments: Backend.enabled)
    func purgeRemovesOnlyQueuedJobsOfTheEndpoint(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await enqueue(store, 3)
            try await enqueue(store, 2, prefix: "x", endpoint: "ep2")
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 1, leaseUntil: at(60), now: at(1))
            #expect(try await store.purgeQueue(endpoint: "ep") == 2)
            #expect(try await store.job(id: "j1") == nil)
            #expect(try await store.job(id: "j0")?.status == .inProgress)
            #expect(try await store.counts(endpoint: "ep2")[.inQueue] == 2)
        }
    }

    @Test(arguments: Backend.enabled)
    func countsCoverEveryStatus(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await enqueue(store, 4)
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 2, leaseUntil: at(60), now: at(1))
            _ = try await store.finish(id: "j0", workerID: "w", result: .completed(output: nil), maxAttempts: 3, now: at(2))
            _ = try await store.cancel(id: "j3", now: at(2))
            let counts = try await store.counts(endpoint: "ep")
            #expect(counts == [.inQueue: 1, .inProgress: 1, .completed: 1, .failed: 0, .cancelled: 1, .timedOut: 0])
            #expect(try await store.counts(endpoint: "none").values.allSatisfy { $0 == 0 })
        }
    }

    @Test(arguments: Backend.enabled)
    func listJobsPagesNewestFirstWithAStatusFilter(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let secret: JSONValue = ["accessSecret": "s3cr3t"]
            _ = try await store.enqueue((0..<7).map { NewJob(id: "j\($0)", endpoint: "ep", input: ["n": .int($0)], s3Config: secret) }, now: t0)
            try await enqueue(store, 2, prefix: "x", endpoint: "ep2")
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 2, leaseUntil: at(60), now: at(1))

            var seen: [String] = []
            var cursor: String?
            repeat {
                let page = try await store.listJobs(endpoint: "ep", status: nil, limit: 3, cursor: cursor)
                #expect(page.jobs.count <= 3)
                #expect(page.jobs.allSatisfy { $0.s3Config == nil })
                seen += page.jobs.map(\.id)
                cursor = page.nextCursor
            } while cursor != nil
            #expect(seen == ["j6", "j5", "j4", "j3", "j2", "j1", "j0"])

            let running = try await store.listJobs(endpoint: "ep", status: .inProgress, limit: 1, cursor: nil)
            #expect(running.jobs.map(\.id) == ["j1"])
            let rest = try await store.listJobs(endpoint: "ep", status: .inProgress, limit: 1, cursor: running.nextCursor)
            #expect(rest.jobs.map(\.id) == ["j0"])
            #expect(rest.nextCursor == nil)
            // The worker still gets the s3Config.
            #expect(try await store.job(id: "j0")?.s3Config == secret)

            await #expect(throws: JobStoreError.self) { try await store.listJobs(endpoint: "ep", status: nil, limit: 3, cursor: "garbage") }
        }
    }

    @Test(arguments: Backend.enabled)
    func executionTimeoutAndTTLTimeJobsOut(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let short = JobPolicy(executionTimeoutMs: 5_000, ttlMs: 20_000)
            _ = try await store.enqueue([newJob("run", policy: short), newJob("wait", endpoint: "idle", policy: short)], now: t0)
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 1, leaseUntil: at(600), now: at(1))

            let first = try await store.expire(now: at(6), maxAttempts: 3, retention: .seconds(3600))
            #expect(first.timedOut == ["run"])
            let run = try #require(try await store.job(id: "run"))
            #expect(run.status == .timedOut)
            #expect(run.error?.contains("execution timeout of 5 s") == true)
            #expect(try await store.takeJobsToStop(workerID: "w") == ["run"])

            // Past its ttl a queued job is not handed out, even before expire runs.
            #expect(try await store.take(endpoint: "idle", workerID: "w", limit: 1, leaseUntil: at(600), now: at(20)).isEmpty)
            let second = try await store.expire(now: at(20), maxAttempts: 3, retention: .seconds(3600))
            #expect(second.timedOut == ["wait"])
            #expect(try await store.job(id: "wait")?.error?.contains("ttl") == true)

            // Retention deletes final jobs once they are old enough.
            #expect(try await store.expire(now: at(3000), maxAttempts: 3, retention: .seconds(3600)).deleted == 0)
            #expect(try await store.expire(now: at(3620), maxAttempts: 3, retention: .seconds(3600)).deleted == 2)
            #expect(try await store.job(id: "run") == nil)
        }
    }

    @Test(arguments: Backend.enabled)
    func streamChunksAreDeliveredOnce(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await enqueue(store, 1)
            #expect(try await store.appendStreamChunk(id: "j0", workerID: "w", output: 0, now: at(1)) == false, "not taken yet")
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 1, leaseUntil: at(60), now: at(1))
            for n in 0..<3 { #expect(try await store.appendStreamChunk(id: "j0", workerID: "w", output: ["tok": .int(n)], now: at(2))) }
            #expect(try await store.appendStreamChunk(id: "j0", workerID: "other", output: 9, now: at(2)) == false)
            #expect(try await store.takeStreamChunks(id: "j0") == [["tok": 0], ["tok": 1], ["tok": 2]])
            #expect(try await store.takeStreamChunks(id: "j0") == [])
            #expect(try await store.appendStreamChunk(id: "j0", workerID: "w", output: ["tok": 3], now: at(3)))
            #expect(try await store.takeStreamChunks(id: "j0") == [["tok": 3]])
        }
    }

    @Test(arguments: Backend.enabled)
    func webhooksArePendingUntilDeliveredOrGivenUp(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            _ = try await store.enqueue(
                [newJob("a", webhook: "http://127.0.0.1:9/hook"), newJob("b", webhook: "http://127.0.0.1:9/hook"), newJob("c")],
                now: t0
            )
            #expect(try await store.pendingWebhooks(limit: 10).isEmpty, "only final jobs have a webhook to send")
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 3, leaseUntil: at(60), now: at(1))
            for id in ["a", "b", "c"] { _ = try await store.finish(id: id, workerID: "w", result: .completed(output: 1), maxAttempts: 3, now: at(2)) }
            #expect(try await store.pendingWebhooks(limit: 10).map(\.id).sorted() == ["a", "b"])

            let failedAttempt = WebhookAttempt(at: at(3), status: 500, error: nil)
            try await store.recordWebhookAttempt(id: "a", attempt: failedAttempt, delivered: false, gaveUp: false)
            try await store.recordWebhookAttempt(
                id: "a",
                attempt: WebhookAttempt(at: at(13), status: 200, error: nil),
                delivered: true,
                gaveUp: false
            )
            try await store.recordWebhookAttempt(
                id: "b",
                attempt: WebhookAttempt(at: at(3), status: nil, error: "connection refused"),
                delivered: false,
                gaveUp: true
            )
            #expect(try await store.pendingWebhooks(limit: 10).isEmpty)
            let a = try #require(try await store.job(id: "a"))
            #expect(a.webhookAttempts == [failedAttempt, WebhookAttempt(at: at(13), status: 200, error: nil)])
            #expect(a.webhookDelivered)
            #expect(try await store.job(id: "b")?.webhookAttempts.first?.error == "connection refused")
        }
    }

    @Test(arguments: Backend.enabled)
    func keysAreInsertedLookedUpAndRevoked(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let client = StoredKey(id: "k1", scope: .client, hash: String(repeating: "a", count: 64), label: "ci", createdAt: t0)
            let worker = StoredKey(id: "k2", scope: .worker, hash: String(repeating: "b", count: 64), label: nil, createdAt: at(1))
            try await store.insertKey(client)
            try await store.insertKey(worker)
            let duplicate = await #expect(throws: JobStoreError.self) { try await store.insertKey(client) }
            #expect(duplicate?.code == .invalid)

            #expect(try await store.key(hash: client.hash) == client)
            #expect(try await store.key(hash: "unknown") == nil)
            #expect(try await store.revokeKey(id: "k1", now: at(5)))
            #expect(try await store.revokeKey(id: "k1", now: at(9)))
            #expect(try await store.revokeKey(id: "nope", now: at(5)) == false)
            #expect(try await store.key(hash: client.hash) == nil)

            let all = try await store.keys()
            #expect(all.map(\.id) == ["k1", "k2"])
            #expect(all.first?.revokedAt == at(5))
        }
    }

    @Test(arguments: Backend.enabled)
    func workAvailableWakesOnEnqueueRetryAndRequeue(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let onEnqueue = try await store.workAvailable()
            try await enqueue(store, 1, endpoint: "wake")
            #expect(await firstElement(of: onEnqueue, within: 10) == "wake")

            _ = try await store.take(endpoint: "wake", workerID: "w", limit: 1, leaseUntil: at(10), now: at(1))
            let onRequeue = try await store.workAvailable()
            _ = try await store.expire(now: at(10), maxAttempts: 3, retention: .seconds(3600))
            #expect(await firstElement(of: onRequeue, within: 10) == "wake")

            _ = try await store.take(endpoint: "wake", workerID: "w", limit: 1, leaseUntil: at(60), now: at(11))
            _ = try await store.finish(
                id: "j0",
                workerID: "w",
                result: .failed(error: "boom", output: nil, retryable: false),
                maxAttempts: 3,
                now: at(12)
            )
            let onRetry = try await store.workAvailable()
            _ = try await store.retry(id: "j0", now: at(13))
            #expect(await firstElement(of: onRetry, within: 10) == "wake")
        }
    }

    @Test(arguments: Backend.enabled)
    func migratingTwiceChangesNothing(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await enqueue(store, 1)
            try await store.migrate()
            #expect(try await store.job(id: "j0")?.status == .inQueue)
        }
    }
}

@Suite struct BackendSpecific {
    @Test func sqliteStoreSurvivesReopening() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobstore-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("jobs.sqlite").path

        do {
            let store = try SQLiteJobStore(path: path)
            try await store.migrate()
            try await enqueue(store, 2)
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 1, leaseUntil: at(60), now: at(1))
        }
        let reopened = try SQLiteJobStore(path: path)
        try await reopened.migrate()
        #expect(try await reopened.job(id: "j0")?.status == .inProgress)
        #expect(try await reopened.take(endpoint: "ep", workerID: "w", limit: 5, leaseUntil: at(60), now: at(2)).map(\.id) == ["j1"])
    }

    @Test func sqliteFileStoreGivesConcurrentTakersDistinctJobs() async throws {
        // The in-memory scenarios use a DatabaseQueue; a file store is a WAL DatabasePool, as `serve` runs it.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobstore-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteJobStore(path: directory.appendingPathComponent("jobs.sqlite").path)
        try await store.migrate()
        try await enqueue(store, 100)
        let taken = try await takeEverything([store], takers: 8, batch: 3)
        #expect(taken.count == 100)
        #expect(Set(taken).count == 100)
    }

    @Test func sqliteCheckpointsItsWriteAheadLog() async throws {
        // The store lengthens SQLite's checkpoint interval; the log must still be copied back and reused, or the -wal
        // file would grow with every write until the disk fills.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("jobstore-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("jobs.sqlite").path
        let store = try SQLiteJobStore(path: path)
        try await store.migrate()
        // One commit each, with a 4 KiB input: over 200 MiB of log pages if nothing were checkpointed.
        let padding = String(repeating: "x", count: 4096)
        for index in 0..<6_000 {
            _ = try await store.enqueue([newJob("j\(index)", input: ["pad": .string(padding)])], now: at(1))
        }
        let walBytes = try #require(try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int)
        let bound = (SQLiteJobStore.checkpointPages + 200) * 4096
        #expect(walBytes < bound, "the write-ahead log grew to \(walBytes) bytes")
        #expect(try await store.counts(endpoint: "ep")[.inQueue] == 6_000)
    }

    @Test func sqliteTakeExpiryAndRetentionReadIndexesNotTheTable() async throws {
        // Without statistics SQLite's planner is easily talked into walking every row in `seq` order; these run on
        // every take and every expiry tick, so that would cost time in proportion to the whole history.
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        let take = JobSelection.takeable(endpoint: "ep", limit: 5, now: t0)
        let expiry = JobSelection.dueForExpiry(now: t0)
        let plans = [
            "take": try await store.queryPlan(take.sql { "?\($0)" }, arguments: take.parameters),
            "expire": try await store.queryPlan(expiry.sql { "?\($0)" }, arguments: expiry.parameters),
            "retention": try await store.queryPlan(expiredJobsDeletion(placeholder: "?"), arguments: [.integer(0)]),
        ]
        for (query, plan) in plans {
            #expect(!plan.contains { $0.hasPrefix("SCAN") }, "\(query) scans the table: \(plan)")
        }
        let expiryIndexes = ["jobs_running", "jobs_queued_ttl"]
        #expect(expiryIndexes.allSatisfy { index in plans["expire"]!.contains { $0.contains(index) } }, "\(plans["expire"]!)")
        #expect(plans["retention"]!.contains { $0.contains("jobs_finished") }, "\(plans["retention"]!)")
    }

    @Test func sqliteKeepsTextWithNulCharactersAndEmptyText() async throws {
        // Texts are bound with their length in bytes: as C strings they would end at the first NUL, and an empty one
        // could bind NULL.
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        for (id, message) in [("nul", "CUDA error\u{0}at frame 3"), ("empty", "")] {
            _ = try await store.enqueue([newJob(id)], now: t0)
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 1, leaseUntil: at(60), now: at(1))
            _ = try await store.finish(
                id: id,
                workerID: "w",
                result: .failed(error: message, output: nil, retryable: false),
                maxAttempts: 3,
                now: at(2)
            )
            #expect(try await store.job(id: id)?.error == message)
        }
    }

    @Test func sqliteReportsADamagedRowAsAnErrorNamingTheColumn() async throws {
        // SQLite keeps whatever a column is given: a hand edit or another tool can leave text where a number belongs.
        // Reading it must fail that one request with a clear error, not trap the process or read a made-up value.
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        try await enqueue(store, 2)
        try await store.write("damage a row") { db in try db.execute(sql: "UPDATE jobs SET attempts = 'many' WHERE id = 'j0'") }
        for read in [
            { try await store.job(id: "j0") },
            { try await store.take(endpoint: "ep", workerID: "w", limit: 1, leaseUntil: at(60), now: at(1)).first },
        ] {
            let error = await #expect(throws: JobStoreError.self) { _ = try await read() }
            #expect(error?.code == .database)
            #expect(error?.description.contains("attempts") == true, "\(String(describing: error))")
        }
        #expect(try await store.job(id: "j1")?.status == .inQueue)
    }

    @Test func aWorkerReportStoredBeforeReportsWereTypedStillReads() async throws {
        // Earlier versions stored {"stage": <free text>, "detail": <the ping's body>}; a database upgraded in place
        // still holds such rows, and the fleet must keep reading their stage and download.
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        try await store.heartbeat(workerID: "w", endpoint: "ep", jobIDs: [], leaseUntil: at(10), report: nil, now: at(1))
        let old = #"{"detail":{"download":{"done_bytes":5,"total_bytes":10},"log_tail":["fetching"],"stage":"DOWNLOADING"},"stage":"DOWNLOADING"}"#
        try await store.write("store an old report") { db in try db.execute(sql: "UPDATE workers SET report = ? WHERE id = 'w'", arguments: [old]) }
        let report = try #require(try await store.workers(endpoint: "ep").first?.report)
        #expect(report.stage == .downloading(DownloadProgress(doneBytes: 5, totalBytes: 10)))
        #expect(report.logTail == ["fetching"])
    }

    @Test func sqliteReportsAnUnopenableFile() {
        let error = #expect(throws: JobStoreError.self) { try SQLiteJobStore(path: "/nonexistent-dir/x/jobs.sqlite") }
        #expect(error?.code == .unavailable)
        #expect(error?.description.contains("/nonexistent-dir/x/jobs.sqlite") == true)
    }

    @Test(.enabled(if: Backend.databaseURL != nil, "SWARM_TEST_DATABASE_URL is unset"))
    func postgresEnqueueOnOneInstanceWakesAWaiterOnAnother() async throws {
        try await withPostgresStores(count: 2) { stores in
            try await stores[1].migrate()
            let waiting = try await stores[1].workAvailable()
            _ = try await stores[0].enqueue([newJob("j", endpoint: "remote")], now: t0)
            #expect(await firstElement(of: waiting, within: 10) == "remote")
            #expect(try await stores[1].take(endpoint: "remote", workerID: "w", limit: 1, leaseUntil: at(60), now: at(1)).map(\.id) == ["j"])
        }
    }

    @Test(.enabled(if: Backend.databaseURL != nil, "SWARM_TEST_DATABASE_URL is unset"))
    func postgresConcurrentTakersOnTwoInstancesNeverShareAJob() async throws {
        try await withPostgresStores(count: 2) { stores in
            try await enqueue(stores[0], 120)
            let taken = try await takeEverything(stores, takers: 8, batch: 2)
            #expect(taken.count == 120)
            #expect(Set(taken).count == 120)
        }
    }

    @Test func postgresStoreThatIsNotRunningSaysSo() async throws {
        let store = try PostgresJobStore(
            configuration: .init(url: "postgres://swarm:swarm@127.0.0.1:1/x?sslmode=disable", operationTimeout: .milliseconds(200))
        )
        let error = await #expect(throws: JobStoreError.self) { try await store.job(id: "j") }
        #expect(error?.code == .unavailable)
        #expect(error?.description.contains("not running") == true)
    }

    @Test func postgresUnreachableServerIsUnavailableWithinTheTimeout() async throws {
        // Port 1 on loopback: nothing listens, the connection is refused.
        let store = try PostgresJobStore(
            configuration: .init(url: "postgres://swarm:hunter2@127.0.0.1:1/x?sslmode=disable", operationTimeout: .seconds(1))
        )
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await store.run() }
            let error = await #expect(throws: JobStoreError.self) { try await store.migrate() }
            #expect(error?.code == .unavailable)
            #expect(error?.description.contains("127.0.0.1:1") == true)
            #expect(error?.description.contains("hunter2") == false)
            group.cancelAll()
        }
    }

    @Test func postgresRejectsABadURLWithoutEchoingThePassword() {
        let error = #expect(throws: JobStoreError.self) {
            try PostgresJobStore(configuration: .init(url: "mysql://swarm:hunter2@127.0.0.1/db"))
        }
        #expect(error?.code == .invalid)
        #expect(error?.description.contains("hunter2") == false)
    }
}
