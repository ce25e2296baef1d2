import AsyncHTTPClient
import JobProtocol
import Logging
import NIOCore
import NIOHTTP1
import Storage
import SwarmCore
import SwarmUI

import Foundation

/// How a job ended, from the job loop's point of view.
public enum JobOutcome: Sendable, Hashable {
    /// Report this to the queue.
    case report(JobDoneBody)
    /// The queue asked the worker to stop the job (cancelled or timed out there): report nothing.
    case stopped
}

/// Why a running job is being interrupted.
public enum InterruptReason: Sendable, Hashable {
    /// The queue sent the job in `jobsToStop`.
    case stopRequested
    /// The worker is shutting down and the grace period ran out: the job may run again elsewhere.
    case shutdown
}

/// Runs one job against SwarmUI and builds its result. Never throws: every failure becomes a reported error. The
/// generation (`JobGeneration`) and the outputs' way to storage (`OutputDelivery`, injected) live apart; this actor
/// holds the job's lifecycle and decides how each failure is reported.
public actor JobRunner {
    /// The one job this runner holds, if any. Interrupting records why on the running job, so that the error the
    /// interruption causes is reported for what it is (a stop, a shutdown) rather than as SwarmUI's failure.
    private enum Lifecycle {
        case idle
        case running(jobID: String, task: Task<JobOutcome, Never>, interrupted: InterruptReason?)
    }

    private let swarm: any SwarmUIBackend
    private let parser: JobInputParser
    private let queue: any QueueClient
    private let httpClient: HTTPClient
    private let delivery: OutputDelivery
    private let logger: Logger
    private var lifecycle: Lifecycle = .idle
    private let clock = ContinuousClock()
    /// Whether SwarmUI's saved files of a job go once its outputs are delivered: on a worker that runs jobs in bulk
    /// they would otherwise fill the volume (a Wan 2.2 video is tens of MB, and SwarmUI never deletes one).
    private let deletesDeliveredOutputs: Bool
    /// SwarmUI's files of jobs whose outputs were delivered, until the job loop has the result safe.
    private var delivered: [String: [String]] = [:]
    /// How long one generation may run (GENERATION_TIMEOUT).
    private let generationTimeout: Duration

    public init(
        swarm: any SwarmUIBackend,
        parser: JobInputParser,
        queue: any QueueClient,
        httpClient: HTTPClient,
        delivery: OutputDelivery,
        deletesDeliveredOutputs: Bool = false,
        generationTimeout: Duration = .seconds(600),
        logger: Logger
    ) {
        self.swarm = swarm
        self.parser = parser
        self.queue = queue
        self.httpClient = httpClient
        self.delivery = delivery
        self.deletesDeliveredOutputs = deletesDeliveredOutputs
        self.generationTimeout = generationTimeout
        self.logger = logger
    }

    /// A runner whose outputs go where the arguments say (see `OutputDelivery`).
    public init(
        swarm: any SwarmUIBackend,
        parser: JobInputParser,
        queue: any QueueClient,
        httpClient: HTTPClient,
        inlineMaxBytes: Int64,
        uploadsViaQueue: Bool = false,
        bucket: S3Configuration? = nil,
        keptOutputsPath: String? = nil,
        deletesDeliveredOutputs: Bool = false,
        generationTimeout: Duration = .seconds(600),
        logger: Logger
    ) {
        let delivery = OutputDelivery(
            swarm: swarm,
            queue: queue,
            httpClient: httpClient,
            inlineMaxBytes: inlineMaxBytes,
            uploadsViaQueue: uploadsViaQueue,
            bucket: bucket,
            keptOutputsPath: keptOutputsPath,
            logger: logger
        )
        self.init(
            swarm: swarm,
            parser: parser,
            queue: queue,
            httpClient: httpClient,
            delivery: delivery,
            deletesDeliveredOutputs: deletesDeliveredOutputs,
            generationTimeout: generationTimeout,
            logger: logger
        )
    }

    public func run(_ job: QueueJob) async -> JobOutcome {
        // Detached: the job must not see the job loop's graceful-shutdown signal, which would close SwarmUI's
        // WebSocket (WSClient honours it) and end the job at once; the loop decides when a job is interrupted.
        let task = Task.detached { await self.execute(job) }
        lifecycle = .running(jobID: job.id, task: task, interrupted: nil)
        let outcome = await task.value
        lifecycle = .idle
        return outcome
    }

    /// Stops the job if it is the one running: InterruptAll in SwarmUI (closing a socket cancels nothing there), then
    /// cancellation of whatever the job waits on.
    public func interrupt(jobID: String, reason: InterruptReason) async {
        guard case .running(jobID, let task, _) = lifecycle else { return }
        lifecycle = .running(jobID: jobID, task: task, interrupted: reason)
        logger.warning("interrupting job", metadata: ["job.id": "\(jobID)", "reason": "\(reason)"])
        do { try await swarm.interruptAll() } catch { logger.warning("InterruptAll failed: \(error)") }
        task.cancel()
    }

    public var runningJobID: String? {
        guard case .running(let jobID, _, _) = lifecycle else { return nil }
        return jobID
    }

    /// Why the running job `jobID` was interrupted, if it was.
    private func interruption(of jobID: String) -> InterruptReason? {
        guard case .running(jobID, _, let reason) = lifecycle else { return nil }
        return reason
    }

    /// Deletes SwarmUI's files of a job whose outputs were delivered (stored, or inlined in the result), once the job
    /// loop holds the result; a file that cannot be deleted stays on the volume and is logged, the job is not affected.
    public func removeDeliveredOutputs(of jobID: String) async {
        guard let references = delivered.removeValue(forKey: jobID), !references.isEmpty else { return }
        var failures = 0
        for reference in references {
            do {
                try await swarm.deleteOutput(reference)
            } catch {
                failures += 1
                logger.warning(
                    "could not delete \(reference) from SwarmUI's output folder; it stays on the volume: \(error)",
                    metadata: ["job.id": "\(jobID)"]
                )
            }
        }
        logger.debug(
            "deleted SwarmUI's copies of the delivered outputs",
            metadata: ["job.id": "\(jobID)", "files": "\(references.count - failures)"]
        )
    }

    // MARK: Execution

    private func execute(_ job: QueueJob) async -> JobOutcome {
        let logger = logger.with(jobID: job.id)
        let request: JobAction
        do {
            request = try parser.parse(job.input)
        } catch {
            logger.info("rejected invalid input: \(error)")
            return .report(.failure(error.description))
        }
        do {
            let output = try await perform(request, job: job, logger: logger)
            return .report(.result(output))
        } catch {
            return await outcome(for: error, jobID: job.id, logger: logger)
        }
    }

    private func outcome(for error: any Error, jobID: String, logger: Logger) async -> JobOutcome {
        switch interruption(of: jobID) {
        case .stopRequested?:
            logger.info("job stopped at the queue's request")
            return .stopped
        case .shutdown?:
            return .report(.failure("the worker shut down before the job finished; it can run again", retryable: true))
        case nil:
            break
        }
        if let failure = error as? SwarmUIBackendError {
            switch failure.kind {
            case .rejected:
                // A ComfyUI that crashes under a job fails it with an ordinary error; the backend's state tells
                // that apart from a bad request, and SwarmUI restarts the backend for the job's next try.
                if let trouble = await backendTrouble() {
                    logger.warning("SwarmUI failed the job while its backend was \(trouble): \(failure.message)")
                    return .report(
                        .failure("SwarmUI's backend failed during the job (\(trouble); \(failure.message)); it can run again", retryable: true)
                    )
                }
                logger.info("SwarmUI rejected the job: \(failure.message)")
                return .report(.failure("SwarmUI: \(failure.message)"))
            case .unavailable, .interrupted:
                logger.warning("SwarmUI failed during the job: \(failure.message)")
                return .report(.failure("SwarmUI failed during the job (\(failure.message)); it can run again", retryable: true))
            }
        }
        if let failure = error as? JobFailure {
            logger.info("job failed: \(failure.message)")
            return .report(.failure(failure.message, retryable: failure.retryable))
        }
        logger.error("job failed unexpectedly: \(error)")
        return .report(.failure("worker error: \(error)", retryable: true))
    }

    /// Why SwarmUI's backend cannot run jobs right now (errored, restarting), or nil when it can.
    private func backendTrouble() async -> String? {
        do {
            switch try await swarm.readiness(requiring: .none) {
            case .ready: return nil
            case .starting(let detail), .failed(let detail), .lacking(let detail): return detail
            }
        } catch {
            return "not answering (\(error))"
        }
    }

    private func perform(_ request: JobAction, job: QueueJob, logger: Logger) async throws -> JSONValue {
        switch request {
        case .generate(let generate):
            return try await self.generate(generate, job: job, logger: logger)
        case .listModels(let path, let depth, let subtype):
            return try await swarm.listModels(path: path, depth: depth, subtype: subtype)
        case .describeModel(let name, let subtype):
            return try await swarm.describeModel(name: name, subtype: subtype)
        case .downloadModel(let url, let type, let name, let metadata):
            let progress = ProgressThrottle(queue: queue, jobID: job.id)
            try await swarm.downloadModel(url: url, type: type, name: name, metadata: metadata) { fraction in
                await progress.report(fraction, stage: "downloading")
            }
            return ["success": true, "model_name": .string(name), "model_type": .string(type)]
        case .editModelMetadata(let model, let subtype, let changes):
            try await swarm.editModelMetadata(model: model, subtype: subtype, changes: changes)
            return ["success": true, "model_name": .string(model)]
        case .keepAlive(let duration, let interval):
            return try await keepAlive(duration: duration, interval: interval)
        }
    }

    // MARK: Generate

    private func generate(_ request: GenerateRequest, job: QueueJob, logger: Logger) async throws -> JSONValue {
        let jobID = job.id
        let destination = try delivery.destination(for: job)
        // Outputs an earlier attempt generated but could not store: stored now, with no generation (nor init image).
        let reused = delivery.reusable(jobID: jobID, destination: destination)
        let start = clock.now
        let generation = JobGeneration(swarm: swarm, httpClient: httpClient, timeout: generationTimeout, logger: self.logger)
        let parameters = try await generation.parameters(for: request, jobID: jobID, fetchesInitImage: reused == nil)
        logger.info("generating", metadata: ["mode": "\(request.mode.rawValue)", "model": "\(parameters["model"]?.stringValue ?? "")"])
        let outputs: [GeneratedOutput]
        var firstActivity: ContinuousClock.Instant?
        if let reused {
            logger.notice("storing \(reused.count) output(s) kept from an earlier attempt instead of generating again")
            outputs = reused
        } else {
            (outputs, firstActivity) = try await generation.run(parameters, progress: ProgressThrottle(queue: queue, jobID: jobID))
        }
        let generated = clock.now
        let started = firstActivity ?? generated
        guard !outputs.isEmpty else {
            throw JobFailure(message: "SwarmUI finished without any output (was the generation interrupted or filtered?)", retryable: false)
        }
        let files = try await delivery.deliver(outputs, to: destination, jobID: jobID, reused: reused != nil)
        if deletesDeliveredOutputs { delivered[jobID] = outputs.map(\.reference).filter { !$0.hasPrefix("data:") } }
        let fetched = clock.now
        let seed = outputs.lazy.compactMap { Self.seed(fromMetadata: $0.metadata) }.first ?? request.seed
        return [
            "mode": .string(request.mode.rawValue),
            "files": .array(files),
            "seed": .int(seed),
            "timings_ms": [
                "waiting": .int(Int((started - start).milliseconds)),
                "generating": .int(Int((generated - started).milliseconds)),
                "fetching": .int(Int((fetched - generated).milliseconds)),
            ],
        ]
    }

    static func seed(fromMetadata metadata: String?) -> Int? {
        guard let metadata, let value = JSONValue.parse(Data(metadata.utf8)) else { return nil }
        return value["sui_image_params"]?["seed"]?.intValue
    }

    // MARK: Keep-alive

    private func keepAlive(duration: Duration, interval: Duration) async throws -> JSONValue {
        let deadline = clock.now + duration
        var pings = 0
        var failures = 0
        var lastError: String?
        while clock.now < deadline {
            do {
                try await swarm.ping()
                pings += 1
            } catch {
                failures += 1
                lastError = "\(error)"
            }
            try await Task.sleep(for: min(interval, deadline - clock.now))
        }
        var result: [String: JSONValue] = [
            "success": .bool(failures == 0), "pings": .int(pings), "failures": .int(failures),
            "duration": .int(Int(duration.seconds)), "interval": .int(Int(interval.seconds)),
        ]
        if let lastError { result["last_error"] = .string(lastError) }
        return .object(result)
    }
}

/// A job failure that is not SwarmUI's: bad input found late, an output too large, a full disk.
struct JobFailure: Error, Sendable {
    var message: String
    var retryable: Bool
    /// Output storage failed (not SwarmUI, not the input): the outputs exist and can be stored by a retry.
    var storageFailure = false
}

/// Progress updates to the queue, at most one a second and only when the value moved.
actor ProgressThrottle {
    private let queue: any QueueClient
    private let jobID: String
    /// At most one update a second, the first at once.
    private let throttle = Throttle(every: .seconds(1))
    private var lastValue = -1.0

    init(queue: any QueueClient, jobID: String) {
        self.queue = queue
        self.jobID = jobID
    }

    func report(_ fraction: Double, stage: String) async {
        guard fraction != lastValue, throttle.ready() else { return }
        lastValue = fraction
        let percent = (fraction * 1000).rounded() / 10
        // Progress is best effort: a lost update is replaced by the next one.
        try? await queue.postProgress(jobID: jobID, output: ["stage": .string(stage), "percent": .double(percent)])
    }
}
