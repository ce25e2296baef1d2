import Fleet
import Foundation
import Hummingbird
import JobProtocol
import JobStore
import SwarmCore
import VastAI

/// The client API under `/v2/{endpoint}` (runpod.md §2), plus `run-batch` and `jobs`.
struct ClientRoutes {
    let core: ControlPlaneCore
    /// Forwards jobs to fal.ai when this server has it.
    var fal: FalForwarder? = nil
    /// serve's fleet's download and boot, for a queued job's start estimate; nil without a fleet.
    var fleetStart: ColdStart? = nil
    private var configuration: ControlPlaneConfiguration { core.configuration }
    private var store: any ControlPlaneStore { core.store }

    func register(on group: RouterGroup<ControlPlaneRequestContext>) {
        group.post("run") { request, context in try await run(request, context, sync: false) }
        group.post("runsync") { request, context in try await run(request, context, sync: true) }
        group.post("run-batch") { request, context in try await runBatch(request, context) }
        group.get("status/:id") { request, context in try await status(request, context) }
        group.post("status/:id") { request, context in try await status(request, context) }
        group.get("stream/:id") { request, context in try await stream(request, context) }
        group.post("cancel/:id") { request, context in try await cancel(request, context) }
        group.post("retry/:id") { request, context in try await retry(request, context) }
        group.post("purge-queue") { request, context in try await purgeQueue(request, context) }
        group.get("health") { request, context in try await health(request, context) }
        group.get("jobs") { request, context in try await jobs(request, context) }
    }

    // MARK: Submitting

    private func run(_ request: Request, _ context: ControlPlaneRequestContext, sync: Bool) async throws -> Response {
        let endpoint = try context.endpoint(in: configuration)
        // RunPod holds /runsync 1 s to 5 min, 90 s by default; checked before the job is stored so a bad value stores nothing.
        let wait = sync ? try request.integerQuery("wait", in: 1_000...300_000) ?? 90_000 : 0
        var request = request
        let body = try await request.readJSON(limit: sync ? configuration.limits.runsyncBody : configuration.limits.runBody)
        let job = try JobRequest.parse(body, id: JobRequest.newID(sync: sync), endpoint: endpoint, providers: providers)
        guard let stored = try await store.enqueue([job], now: Date()).first else {
            throw APIError(.internalServerError, "the store accepted the job but returned no record")
        }
        core.metrics.submitted(endpoint: endpoint, count: 1)
        try await forwardIfAsked([stored])
        guard sync else { return .json(JobView.brief(stored)) }
        let latest = try await core.awaitFinal(id: stored.id, timeout: .milliseconds(wait)) ?? stored
        if latest.status.isFinal { return .json(JobView.status(latest)) }
        // Still queued at the end of the wait: say whether a worker is starting, and when it should be ready.
        let brief = try await availability(endpoint).annotate(JobView.brief(latest), job: latest)
        return .json(core.spillWaits.annotate(brief, id: latest.id))
    }

    /// `input.provider` values this server accepts: `fal` only with fal.ai configured.
    private var providers: [String] { JobRequest.providers + (fal == nil ? [] : [FalForwarder.provider]) }

    /// Jobs that asked for fal.ai are claimed for it at once (and checked first: what cannot be mapped gets a 400).
    private func forwardIfAsked(_ jobs: [JobRecord]) async throws {
        guard let fal else { return }
        for job in jobs where job.input["provider"]?.stringValue == FalForwarder.provider { try await fal.forward(id: job.id) }
    }

    private func runBatch(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let endpoint = try context.endpoint(in: configuration)
        var request = request
        let limit = configuration.limits.batchJobs
        guard case .object(let body)? = try await request.readJSON(limit: configuration.limits.batchBody) else {
            throw APIError.badRequest(field: "body", "expected {\"jobs\": [{\"input\": {...}}, ...]}")
        }
        guard case .array(let items)? = body["jobs"] else {
            throw APIError.badRequest(field: "jobs", "required: an array of 1 to \(limit) jobs, each {\"input\": {...}}")
        }
        guard (1...limit).contains(items.count) else {
            throw APIError.badRequest(field: "jobs", "has \(items.count) jobs; send 1 to \(limit) per request and split larger batches")
        }
        var jobs: [NewJob] = []
        jobs.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            jobs.append(try JobRequest.parse(item, prefix: "jobs[\(index)]", id: JobRequest.newID(), endpoint: endpoint, providers: providers))
        }
        // One store call: all jobs or none.
        let stored = try await store.enqueue(jobs, now: Date())
        core.metrics.submitted(endpoint: endpoint, count: stored.count)
        try await forwardIfAsked(stored)
        return .json(["ids": .array(stored.map { .string($0.id) })])
    }

    // MARK: Reading

    private func status(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let wait = try request.integerQuery("wait", in: 0...300_000)
        var job = try await requireJob(context)
        if let wait, wait > 0, !job.status.isFinal {
            job = try await core.awaitFinal(id: job.id, timeout: .milliseconds(wait)) ?? job
        }
        guard job.status == .inQueue else { return .json(JobView.status(job)) }
        let status = try await availability(job.endpoint).annotate(JobView.status(job), job: job)
        return .json(core.spillWaits.annotate(status, id: job.id))
    }

    /// Each chunk is handed out once: the SDK's `stream()` yields everything it receives on every poll.
    private func stream(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let job = try await requireJob(context)
        let chunks = try await store.takeStreamChunks(id: job.id)
        return .json([
            "id": .string(job.id), "status": .string(job.status.rawValue),
            "stream": .array(chunks.map { ["output": $0] }),
        ])
    }

    private func jobs(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let endpoint = try context.endpoint(in: configuration)
        var status: JobStatus?
        if let text = request.uri.queryParameters.get("status"), !text.isEmpty {
            guard let parsed = JobStatus(rawValue: text.uppercased()) else {
                let valid = JobStatus.allCases.map(\.rawValue).joined(separator: ", ")
                throw APIError.badRequest(field: "status", "'\(text)' is not a status; use one of \(valid)")
            }
            status = parsed
        }
        let limit = try request.integerQuery("limit", in: 1...1_000) ?? 100
        let cursor = request.uri.queryParameters.get("cursor").flatMap { $0.isEmpty ? nil : $0 }
        let page: JobPage
        do {
            page = try await store.listJobs(endpoint: endpoint, status: status, limit: limit, cursor: cursor)
        } catch {
            guard error.code == .invalid else { throw error }
            throw APIError.badRequest(field: "cursor", "not a cursor this server issued; pass the previous page's nextCursor")
        }
        return .json([
            "jobs": .array(page.jobs.map(JobView.summary)),
            "nextCursor": page.nextCursor.map(JSONValue.string) ?? .null,
        ])
    }

    private func health(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let endpoint = try context.endpoint(in: configuration)
        let counts = try await store.counts(endpoint: endpoint)
        let count = { (status: JobStatus) in JSONValue.int(counts[status] ?? 0) }
        return .json([
            "jobs": [
                "completed": count(.completed), "failed": count(.failed), "inProgress": count(.inProgress),
                "inQueue": count(.inQueue), "cancelled": count(.cancelled), "timedOut": count(.timedOut), "retried": 0,
            ],
            // A worker in ERROR, or whose startup checks failed (runpod.md §1.9), says so on its ping: unhealthy.
            "workers": try await availability(endpoint).healthJSON,
        ])
    }

    private func availability(_ endpoint: String) async throws -> WorkerAvailability {
        try await WorkerAvailability.read(
            store: store,
            endpoint: endpoint,
            leaseTimeout: configuration.leaseTimeout,
            now: Date(),
            coldStart: fleetStart
        )
    }

    // MARK: Changing

    private func cancel(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let job = try await requireJob(context)
        guard let cancelled = try await store.cancel(id: job.id, now: Date()) else { throw notFound(job.id, context) }
        if !job.status.isFinal { core.jobEnded(cancelled) }
        if !job.status.isFinal, let fal { await fal.cancelled(cancelled) }
        return .json(JobView.brief(cancelled))
    }

    private func retry(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let job = try await requireJob(context)
        guard let requeued = try await store.retry(id: job.id, now: Date()) else {
            throw APIError(.badRequest, "job \(job.id) is \(job.status.rawValue); only FAILED or TIMED_OUT jobs can be retried", field: "id")
        }
        return .json(JobView.brief(requeued))
    }

    private func purgeQueue(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let endpoint = try context.endpoint(in: configuration)
        let removed = try await store.purgeQueue(endpoint: endpoint)
        return .json(["removed": .int(removed), "status": "completed"])
    }

    // MARK: Helpers

    private func requireJob(_ context: ControlPlaneRequestContext) async throws -> JobRecord {
        let endpoint = try context.endpoint(in: configuration)
        let id = try context.pathID("id")
        guard let job = try await store.job(id: id), job.endpoint == endpoint else { throw notFound(id, context) }
        return job
    }

    private func notFound(_ id: String, _ context: ControlPlaneRequestContext) -> APIError {
        .notFound("no job '\(id)' on this endpoint (never submitted, or removed after its ttl or the retention period)")
    }
}
