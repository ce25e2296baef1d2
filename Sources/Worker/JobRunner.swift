import AsyncHTTPClient
import Crypto
import JobProtocol
import Logging
import NIOCore
import NIOHTTP1
import Storage
import SwarmCore
import SwarmUI
import Synchronization

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

/// Runs one job against SwarmUI and builds its result. Never throws: every failure becomes a reported error.
public actor JobRunner {
    private let swarm: any SwarmUIBackend
    private let parser: JobInputParser
    private let queue: any QueueClient
    private let httpClient: HTTPClient
    private let inlineMaxBytes: Int64
    private let outputs: OutputStore
    /// Outputs a failed upload left for a retry; nil when the worker keeps none (no volume).
    private let kept: KeptOutputs?
    private let logger: Logger
    private var interrupts: [String: InterruptReason] = [:]
    private var running: (id: String, task: Task<JobOutcome, Never>)?
    private let clock = ContinuousClock()
    /// Whether SwarmUI's saved files of a job go once its outputs are delivered: on a worker that runs jobs in bulk
    /// they would otherwise fill the volume (a Wan 2.2 video is tens of MB, and SwarmUI never deletes one).
    private let deletesDeliveredOutputs: Bool
    /// SwarmUI's files of jobs whose outputs were delivered, until the job loop has the result safe.
    private var delivered: [String: [String]] = [:]
    /// How long one generation may run (GENERATION_TIMEOUT).
    private let generationTimeout: Duration

    public init(
        swarm: any SwarmUIBackend, parser: JobInputParser, queue: any QueueClient, httpClient: HTTPClient,
        inlineMaxBytes: Int64, uploadsViaQueue: Bool = false, bucket: S3Configuration? = nil, keptOutputsPath: String? = nil,
        deletesDeliveredOutputs: Bool = false, generationTimeout: Duration = .seconds(600), logger: Logger
    ) {
        self.deletesDeliveredOutputs = deletesDeliveredOutputs
        self.generationTimeout = generationTimeout
        self.swarm = swarm
        self.parser = parser
        self.queue = queue
        self.httpClient = httpClient
        self.inlineMaxBytes = inlineMaxBytes
        self.outputs = OutputStore(
            queue: queue, uploadsViaQueue: uploadsViaQueue, bucket: bucket, httpClient: httpClient,
            uploader: OutputUploader(httpClient: httpClient, logger: logger), inlineMaxBytes: inlineMaxBytes)
        self.kept = keptOutputsPath.map { KeptOutputs(directory: $0) }
        self.logger = logger
    }

    public func run(_ job: QueueJob) async -> JobOutcome {
        // Detached: the job must not see the job loop's graceful-shutdown signal, which would close SwarmUI's
        // WebSocket (WSClient honours it) and end the job at once; the loop decides when a job is interrupted.
        let task = Task.detached { await self.execute(job) }
        running = (job.id, task)
        let outcome = await task.value
        running = nil
        interrupts.removeValue(forKey: job.id)
        return outcome
    }

    /// Stops the job if it is the one running: InterruptAll in SwarmUI (closing a socket cancels nothing there), then
    /// cancellation of whatever the job waits on.
    public func interrupt(jobID: String, reason: InterruptReason) async {
        guard let running, running.id == jobID else { return }
        interrupts[jobID] = reason
        logger.warning("interrupting job", metadata: ["job.id": "\(jobID)", "reason": "\(reason)"])
        do { try await swarm.interruptAll() } catch { logger.warning("InterruptAll failed: \(error)") }
        running.task.cancel()
    }

    public var runningJobID: String? { running?.id }

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
                logger.warning("could not delete \(reference) from SwarmUI's output folder; it stays on the volume: \(error)", metadata: ["job.id": "\(jobID)"])
            }
        }
        logger.debug("deleted SwarmUI's copies of the delivered outputs", metadata: ["job.id": "\(jobID)", "files": "\(references.count - failures)"])
    }

    // MARK: Execution

    private func execute(_ job: QueueJob) async -> JobOutcome {
        let logger = logger.with(jobID: job.id)
        let request: JobRequest
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
        switch interrupts[jobID] {
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
                    return .report(.failure("SwarmUI's backend failed during the job (\(trouble); \(failure.message)); it can run again", retryable: true))
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

    private func perform(_ request: JobRequest, job: QueueJob, logger: Logger) async throws -> JSONValue {
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
        let destination = try outputs.destination(for: job)
        // Outputs an earlier attempt generated but could not store: stored now, with no generation (nor init image).
        let reused = destination == nil ? nil : kept?.load(jobID: jobID)
        let start = clock.now
        var parameters = request.parameters
        if let url = request.initImageURL, reused == nil {
            parameters["initimage"] = .string(try await fetchInitImage(url))
        }
        parameters["images"] = .int(request.images)
        // A predictable output path lets an operator find a job's files on the volume (dots are stripped by SwarmUI).
        if parameters["overrideoutpathformat"] == nil {
            parameters["overrideoutpathformat"] = .string("swarm-jobs/\(jobID.filter { $0.isLetter || $0.isNumber || $0 == "-" })-[batch_id]")
        }
        let firstActivity = FirstActivity()
        let progress = ProgressThrottle(queue: queue, jobID: jobID)
        logger.info("generating", metadata: ["mode": "\(request.mode.rawValue)", "model": "\(parameters["model"]?.stringValue ?? "")"])
        let outputs: [GeneratedOutput]
        if let reused {
            logger.notice("storing \(reused.count) output(s) kept from an earlier attempt instead of generating again")
            outputs = reused
        } else {
            let swarm = swarm, parameters = parameters
            outputs = try await bounded(by: generationTimeout) {
                try await swarm.generate(parameters: parameters) { event in
                    switch event {
                    case .status(let live, _):
                        if live { await firstActivity.mark() }
                    case .progress(let fraction):
                        await firstActivity.mark()
                        await progress.report(fraction, stage: "generating")
                    case .keepAlive:
                        break
                    }
                }
            }
        }
        let generated = clock.now
        let started = await firstActivity.at ?? generated
        guard !outputs.isEmpty else {
            throw JobFailure(message: "SwarmUI finished without any output (was the generation interrupted or filtered?)", retryable: false)
        }
        var files: [JSONValue] = []
        do {
            for output in outputs.sorted(by: { $0.batchIndex < $1.batchIndex }) {
                if let destination {
                    files.append(try await upload(output, to: destination, jobID: jobID, index: files.count))
                } else {
                    files.append(try await inline(output, source: try await swarm.openOutput(output.reference), index: files.count))
                }
            }
        } catch {
            if let failure = error as? JobFailure, failure.storageFailure { throw keep(outputs, jobID: jobID, after: failure) }
            // Kept outputs that cannot be read any more (SwarmUI's files deleted): the next attempt generates again.
            if reused != nil { kept?.remove(jobID: jobID) }
            throw error
        }
        if destination != nil { kept?.remove(jobID: jobID) }
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

    /// Runs a generation for at most `timeout`. Past it SwarmUI is told to stop (InterruptAll; closing the socket
    /// cancels nothing there) and the job fails as retryable: a hung generation must not hold the worker until the
    /// queue's execution timeout, and another attempt may well succeed.
    private func bounded(
        by timeout: Duration, _ generation: @escaping @Sendable () async throws -> [GeneratedOutput]
    ) async throws -> [GeneratedOutput] {
        let swarm = swarm
        return try await withThrowingTaskGroup(of: [GeneratedOutput]?.self) { group in
            group.addTask { try await generation() }
            // Cancelled with the job (an interrupt), this throws, and the job's interrupt reason decides its outcome.
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            if let finished = try await group.next(), let outputs = finished { return outputs }
            logger.warning("generation still running after GENERATION_TIMEOUT (\(Int(timeout.seconds)) s); interrupting it")
            do { try await swarm.interruptAll() } catch { logger.warning("InterruptAll failed: \(error)") }
            throw JobFailure(
                message: "the generation ran longer than GENERATION_TIMEOUT (\(Int(timeout.seconds)) s) and was interrupted; "
                    + "it can run again (raise GENERATION_TIMEOUT for longer videos)",
                retryable: true)
        }
    }

    /// Streams one output from SwarmUI to storage, hashing it on the way; a retry fetches it from SwarmUI again.
    private func upload(_ output: GeneratedOutput, to destination: OutputStore.Destination, jobID: String, index: Int) async throws -> JSONValue {
        let swarm = self.swarm
        let reference = output.reference
        let first = try await swarm.openOutput(reference)
        let size: Int64
        if let length = first.length {
            size = length
        } else {
            // The upload must announce its size: a source without one is read through once to count it.
            var counted: Int64 = 0
            do {
                for try await chunk in first.body { counted += Int64(chunk.readableBytes) }
            } catch {
                throw SwarmUIBackendError(.unavailable, "fetching output \(reference) failed: \(error)")
            }
            size = counted
        }
        // The first attempt reads the response already open (when it was not counted); retries open a new one.
        let unread = TakeOnce(first.length == nil ? nil : first)
        let open = { @Sendable () async throws -> AnyByteSequence in
            if let source = unread.take() { return AnyByteSequence(source.body) }
            return AnyByteSequence(try await swarm.openOutput(reference).body)
        }
        let name = Self.fileName(of: reference, index: index, contentType: first.contentType)
        let stored: OutputStore.Stored
        do {
            stored = try await outputs.store(destination, jobID: jobID, name: name, size: size, contentType: first.contentType, open: open)
        } catch is OutputStore.UploadsNotOffered {
            logger.notice("the queue stores no outputs or cannot be reached; returning \(name) inline")
            let source: OutputSource
            if let unopened = unread.take() { source = unopened } else { source = try await swarm.openOutput(reference) }
            return try await inline(output, source: source, index: index)
        }
        return OutputFile(name: name, contentType: first.contentType, bytes: stored.bytes, sha256: stored.sha256, url: stored.url).jsonValue
    }

    /// Collects one output in memory, hashing it on the way, and inlines it as a data URL. The result carries the
    /// whole file as base64 anyway, and no more than `inlineMaxBytes` is read, so staging it on disk would only add time.
    private func inline(_ output: GeneratedOutput, source: OutputSource, index: Int) async throws -> JSONValue {
        if let length = source.length, length > inlineMaxBytes {
            throw Self.tooLarge(bytes: length, limit: inlineMaxBytes)
        }
        var hasher = SHA256()
        var bytes = Data()
        bytes.reserveCapacity(Int(source.length ?? 0))
        do {
            for try await chunk in source.body {
                let size = Int64(bytes.count + chunk.readableBytes)
                if size > inlineMaxBytes { throw Self.tooLarge(bytes: size, limit: inlineMaxBytes) }
                chunk.withUnsafeReadableBytes { buffer in
                    hasher.update(bufferPointer: buffer)
                    bytes.append(contentsOf: buffer)
                }
            }
        } catch let error as JobFailure {
            throw error
        } catch {
            throw SwarmUIBackendError(.unavailable, "fetching output \(output.reference) failed: \(error)")
        }
        let digest = hasher.finalize().hexString
        let name = Self.fileName(of: output.reference, index: index, contentType: source.contentType)
        return OutputFile(
            name: name, contentType: source.contentType, bytes: Int64(bytes.count), sha256: digest,
            url: "data:\(source.contentType);base64,\(bytes.base64EncodedString())"
        ).jsonValue
    }

    /// A storage failure that leaves the outputs on the volume, recorded for a retry, and says where they are.
    private func keep(_ outputs: [GeneratedOutput], jobID: String, after failure: JobFailure) -> JobFailure {
        guard let kept, kept.save(jobID: jobID, outputs: outputs, logger: logger) else { return failure }
        let places = outputs.map { KeptOutputs.location(of: $0.reference) }.joined(separator: ", ")
        var failure = failure
        failure.message += " The output stays on the volume where SwarmUI saved it (\(places) in SwarmUI's folder;"
            + " recorded in \(kept.path(jobID: jobID))): a retry of this job on this worker stores it without generating again."
        return failure
    }

    private static func tooLarge(bytes: Int64, limit: Int64) -> JobFailure {
        JobFailure(
            message: "output is \(formatBytes(bytes)), above the \(formatBytes(limit)) that can be returned inline; configure output storage (a swarmctl control plane, BUCKET_* on RunPod, or the job's s3Config) or raise SWARM_INLINE_MAX_BYTES",
            retryable: false)
    }

    static func fileName(of reference: String, index: Int, contentType: String) -> String {
        if !reference.hasPrefix("data:"), let last = reference.split(separator: "/").last, !last.isEmpty {
            return String(last)
        }
        let ext = contentType.split(separator: "/").last.map(String.init) ?? "bin"
        return "output-\(index).\(ext)"
    }

    static func seed(fromMetadata metadata: String?) -> Int? {
        guard let metadata, let value = JSONValue.parse(Data(metadata.utf8)) else { return nil }
        return value["sui_image_params"]?["seed"]?.intValue
    }

    /// Downloads an https init image, capped in size and time, as a data URL for SwarmUI.
    private func fetchInitImage(_ url: String) async throws -> String {
        let cap = 32 << 20
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        do {
            let response = try await httpClient.execute(request, timeout: .seconds(60))
            guard response.status.code == 200 else {
                throw JobFailure(message: "input.init_image: fetching \(url) answered HTTP \(response.status.code)", retryable: false)
            }
            let type = response.headers.first(name: "content-type")?.split(separator: ";").first.map(String.init) ?? "image/png"
            guard type.hasPrefix("image/") else {
                throw JobFailure(message: "input.init_image: \(url) is \(type), not an image", retryable: false)
            }
            let body = try await response.body.collect(upTo: cap)
            return "data:\(type);base64,\(Data(body.readableBytesView).base64EncodedString())"
        } catch let error as JobFailure {
            throw error
        } catch let error as NIOTooManyBytesError {
            _ = error
            throw JobFailure(message: "input.init_image: \(url) is larger than \(formatBytes(Int64(cap)))", retryable: false)
        } catch {
            throw JobFailure(message: "input.init_image: cannot fetch \(url): \(error)", retryable: false)
        }
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

/// A value handed out once: the SwarmUI response already open, for the first upload attempt only.
private final class TakeOnce<Value: Sendable>: Sendable {
    private let value: Mutex<Value?>

    init(_ value: Value?) { self.value = Mutex(value) }

    func take() -> Value? {
        value.withLock { value in
            defer { value = nil }
            return value
        }
    }
}

/// The moment SwarmUI started working on the job (after queueing and model loading).
private actor FirstActivity {
    private(set) var at: ContinuousClock.Instant?
    func mark() { if at == nil { at = ContinuousClock.now } }
}

/// Progress updates to the queue, at most one a second and only when the value moved.
actor ProgressThrottle {
    private let queue: any QueueClient
    private let jobID: String
    private var lastSent: ContinuousClock.Instant?
    private var lastValue = -1.0

    init(queue: any QueueClient, jobID: String) {
        self.queue = queue
        self.jobID = jobID
    }

    func report(_ fraction: Double, stage: String) async {
        let now = ContinuousClock.now
        guard fraction != lastValue, lastSent.map({ now - $0 >= .seconds(1) }) ?? true else { return }
        lastSent = now
        lastValue = fraction
        let percent = (fraction * 1000).rounded() / 10
        // Progress is best effort: a lost update is replaced by the next one.
        try? await queue.postProgress(jobID: jobID, output: ["stage": .string(stage), "percent": .double(percent)])
    }
}
