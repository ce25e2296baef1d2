import JobProtocol
import Logging
import ServiceLifecycle
import SwarmCore

/// The worker's pull loop, in the shape of swift-aws-lambda-runtime's run loop: it takes its collaborators, waits
/// until SwarmUI can generate, takes one job at a time, runs it and hands the result to the outbox. Beside it run
/// the job-stop poll and the outbox's redelivery (the `Heartbeat` runs apart, from the worker's first second). On
/// graceful shutdown it stops taking jobs and gives the running one `shutdownGrace` to finish before interrupting it.
public struct JobLoop: Service {
    public var queue: any QueueClient
    public var runner: JobRunner
    public var outbox: ResultOutbox
    public var state: WorkerState
    public var readiness: ReadinessWait
    public var shutdownGrace: Duration
    public var logger: Logger
    private let backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(30))

    public init(
        queue: any QueueClient,
        runner: JobRunner,
        outbox: ResultOutbox,
        state: WorkerState,
        readiness: ReadinessWait,
        shutdownGrace: Duration,
        logger: Logger
    ) {
        self.queue = queue
        self.runner = runner
        self.outbox = outbox
        self.state = state
        self.readiness = readiness
        self.shutdownGrace = shutdownGrace
        self.logger = logger
    }

    public func run() async throws {
        let shutdown = Latch()
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await outbox.deliverPending() }
                group.addTask { await pollStops() }
                defer { group.cancelAll() }
                try await takeJobs(until: shutdown)
            }
        } onGracefulShutdown: {
            shutdown.set()
        }
        logger.info("job loop stopped")
    }

    private func takeJobs(until shutdown: Latch) async throws {
        var failures = 0
        while !shutdown.isSet {
            if await !state.swarmUIReady {
                await state.swarmUILost()
                do {
                    try await readiness.wait()
                } catch {
                    await state.setStage(.error(WorkerFailure(reason: error.reason, kind: .transient)))
                    logger.critical("\(error)")
                    throw error
                }
                if await !state.swarmUIEverReady {
                    let timeline = await state.boot.summary
                    logger.info("READY \(timeline)")
                }
                await state.swarmUIBecameReady()
            }
            let started = ContinuousClock.now
            switch await takeUnlessShutdown(shutdown) {
            case nil:
                return
            case .success(.jobs(let jobs)):
                failures = 0
                for job in jobs { await process(job, shutdown: shutdown) }
            case .success(.noJob):
                failures = 0
                // A queue that answers "no job" at once instead of holding the poll would make this loop spin.
                if ContinuousClock.now - started < .milliseconds(200) { await shutdown.sleep(for: .milliseconds(250)) }
            case .success(.backOff(let delay)):
                await shutdown.sleep(for: delay)
            case .failure(let error):
                failures += 1
                let delay = backoff.delay(attempt: failures - 1)
                logger.warning("\(error) (retry in \(delay.milliseconds) ms)")
                await shutdown.sleep(for: delay)
            }
        }
    }

    private func process(_ job: QueueJob, shutdown: Latch) async {
        let logger = logger.with(jobID: job.id)
        logger.info("job taken")
        await state.jobStarted(job.id)
        let grace = shutdownGrace
        let outcome = await withTaskGroup(of: JobOutcome?.self) { group in
            group.addTask { await runner.run(job) }
            group.addTask {
                await shutdown.wait()
                guard !Task.isCancelled else { return nil }
                logger.info("shutting down: the running job has \(Int(grace.seconds)) s to finish")
                // Cancelled (the job finished first) ends this sleep with an error and nothing is interrupted.
                do { try await Task.sleep(for: grace) } catch { return nil }
                await runner.interrupt(jobID: job.id, reason: .shutdown)
                return nil
            }
            var result: JobOutcome = .stopped
            for await value in group {
                if let value {
                    result = value
                    group.cancelAll()
                }
            }
            return result
        }
        switch outcome {
        case .stopped:
            await state.jobFinished(job.id, succeeded: false)
        case .report(let body):
            await state.jobFinished(job.id, succeeded: body.error == nil)
            if body.retryable == true, !shutdown.isSet { await state.swarmUILost() }
            do {
                try await outbox.submit(jobID: job.id, body: body)
            } catch {
                logger.critical("cannot store the result on the volume, posting it directly: \(error)")
                try? await queue.postDone(jobID: job.id, body: body)
            }
        }
        await runner.removeDeliveredOutputs(of: job.id)
    }

    private func pollStops() async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let ids = try await queue.pollStop()
                failures = 0
                for id in ids { await runner.interrupt(jobID: id, reason: .stopRequested) }
                if ids.isEmpty { try? await Task.sleep(for: .seconds(1)) }
            } catch {
                failures += 1
                try? await Task.sleep(for: backoff.delay(attempt: failures - 1))
            }
        }
    }

    /// Takes jobs until the take finishes or the latch is set. A take cut short by shutdown may still have been
    /// answered with jobs (the queue counts them as leased): those are handed back at once as retryable failures, so
    /// the queue gives them to another worker instead of waiting for the lease to run out.
    private func takeUnlessShutdown(_ latch: Latch) async -> Result<TakeResult, QueueError>? {
        let take = Task { () async -> Result<TakeResult, QueueError> in
            do throws(QueueError) { return .success(try await queue.takeJob(jobInProgress: false)) } catch { return .failure(error) }
        }
        let shutdownFirst = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                _ = await take.value
                return false
            }
            group.addTask {
                await latch.wait()
                guard !Task.isCancelled else { return false }
                // The group waits for every child: the one awaiting the take ends only once the take is cancelled.
                take.cancel()
                return true
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        guard shutdownFirst else { return await take.value }
        if case .success(.jobs(let jobs)) = await take.value {
            for job in jobs {
                logger.with(jobID: job.id).info("shutting down: handing back a job taken as the shutdown began")
                try? await outbox.submit(
                    jobID: job.id,
                    body: .failure("the worker shut down before starting the job; it can run again", retryable: true)
                )
            }
        }
        return nil
    }
}

/// Pings the queue every `interval` from the worker's first second until it stops: the jobs to keep leased and the
/// report (stage, download progress, error, SwarmUI's last lines), so that a booting worker and one that failed to
/// boot are seen by the control plane, not only a serving one.
public struct Heartbeat: Service {
    public var queue: any QueueClient
    public var state: WorkerState
    public var interval: Duration
    public var logger: Logger
    public var report: @Sendable () async -> WorkerReport

    public init(queue: any QueueClient, state: WorkerState, interval: Duration, logger: Logger, report: @escaping @Sendable () async -> WorkerReport)
    {
        self.queue = queue
        self.state = state
        self.interval = interval
        self.logger = logger
        self.report = report
    }

    public func run() async throws {
        // Shut down after the services that hold jobs (it is started first), so leases stay alive while they finish.
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let ids = await state.jobsToReport
                do {
                    try await queue.ping(jobIDs: ids, report: await report())
                } catch {
                    logger.debug("ping failed: \(error)")
                }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
