import Foundation
import Hummingbird
import JobProtocol
import JobStore
import Logging
import SwarmCore

/// The worker API under `/v2/{endpoint}`, following runpod.md §1.13: long-polled takes, deduplicated results,
/// pings that extend leases, and job-stop to deliver cancels and timeouts.
struct WorkerRoutes {
    let core: ControlPlaneCore
    private var configuration: ControlPlaneConfiguration { core.configuration }
    private var store: any ControlPlaneStore { core.store }
    let costs = CostRecording()

    func register(on group: RouterGroup<ControlPlaneRequestContext>) {
        group.get("job-take/:worker") { request, context in try await take(request, context, batch: false) }
        group.get("job-take-batch/:worker") { request, context in try await take(request, context, batch: true) }
        group.post("job-done/:worker/:job") { request, context in try await done(request, context) }
        group.post("job-stream/:worker/:job") { request, context in try await streamChunk(request, context) }
        group.get("ping/:worker") { request, context in try await ping(request, context) }
        group.post("ping/:worker") { request, context in try await ping(request, context) }
        group.get("job-stop/:worker") { request, context in try await jobStop(request, context) }
    }

    // MARK: Taking

    /// Holds the request until a job can be leased or `longPollTimeout` passes (then 204, never a fast empty answer,
    /// which would make the SDK hot-loop). Woken by the store's `workAvailable()` through `core.work`.
    private func take(_ request: Request, _ context: ControlPlaneRequestContext, batch: Bool) async throws -> Response {
        let endpoint = try context.endpoint(in: configuration)
        let worker = try context.pathID("worker")
        let limit = batch ? try request.integerQuery("batch_size", in: 1...1_000) ?? 1 : 1
        let deadline = ContinuousClock.now + configuration.longPollTimeout
        while true {
            let seen = core.work.generation
            let now = Date()
            let jobs = try await store.take(
                endpoint: endpoint,
                workerID: worker,
                limit: limit,
                leaseUntil: now.addingTimeInterval(configuration.leaseTimeout.seconds),
                now: now
            )
            if !jobs.isEmpty {
                core.metrics.dispatched(jobs, now: now)
                await CostRecording.taken(jobs, worker: worker, store: store, logger: context.logger)
                context.logger.debug("jobs taken", metadata: ["worker": "\(worker)", "jobs": "\(jobs.map(\.id))"])
                let queued = jobs.map { JobView.queued($0).jsonValue }
                return .json(batch ? .array(queued) : queued[0])
            }
            let remaining = deadline - .now
            if remaining <= .zero || Task.isCancelled { return Response(status: .noContent) }
            // Wake-ups are hints that can be lost while a PostgreSQL connection is re-established; look again now and then.
            guard await core.work.wait(for: endpoint, after: seen, timeout: min(remaining, .seconds(5))) else { return Response(status: .noContent) }
        }
    }

    // MARK: Reporting

    /// The final result, an error, or a progress update (`status: IN_PROGRESS`) on the same route. The first final
    /// result wins; a repeated post (the SDK retries on 5xx) still gets 200 so that the worker moves on.
    private func done(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        _ = try context.endpoint(in: configuration)
        let worker = try context.pathID("worker")
        let id = try context.pathID("job")
        var request = request
        let body = try Self.doneBody(try await request.readJSON(limit: configuration.limits.resultBody))
        let now = Date()
        if body.isProgress {
            let recorded = try await store.recordProgress(id: id, workerID: worker, output: body.output ?? .null, now: now)
            return .json(["recorded": .bool(recorded)])
        }
        if body.stopPod == true {
            // Nothing here can restart a worker process; its supervisor (or the platform) must act on it.
            context.logger.notice("worker asked to be recycled (stopPod)", metadata: ["worker": "\(worker)", "job": "\(id)"])
        }
        let result: JobResult =
            if let error = body.error {
                .failed(error: error, output: body.output, retryable: body.retryable ?? false)
            } else {
                .completed(output: body.output)
            }
        switch try await store.finish(id: id, workerID: worker, result: result, maxAttempts: configuration.maxAttempts, now: now) {
        case .accepted(let job):
            core.jobEnded(job)
            await CostRecording.finished(job, store: store, logger: context.logger)
            return .json(["status": .string(job.status.rawValue)])
        case .requeued(let job):
            await CostRecording.requeued(job, store: store, now: now, logger: context.logger)
            return .json(["status": .string(job.status.rawValue)])
        case .duplicate(let job):
            return .json(["status": .string(job.status.rawValue), "duplicate": true])
        case .notHolder:
            throw APIError(
                .conflict,
                "job \(id) is no longer leased to worker \(worker) (its lease expired and it was handed out again); drop this result"
            )
        case .unknownJob:
            throw APIError.notFound("no job '\(id)'; it was never submitted or has been removed")
        }
    }

    private func streamChunk(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        _ = try context.endpoint(in: configuration)
        let worker = try context.pathID("worker")
        let id = try context.pathID("job")
        var request = request
        let body = try Self.doneBody(try await request.readJSON(limit: configuration.limits.resultBody))
        let recorded = try await store.appendStreamChunk(id: id, workerID: worker, output: body.output ?? .null, now: Date())
        return .json(["recorded": .bool(recorded)])
    }

    /// Extends the leases of the jobs in `job_id` (one comma-separated value) and records the worker as alive, with
    /// the optional JSON report our worker sends (stage, download progress, log tail). The SDK's failed startup checks
    /// arrive here too, as `status=unhealthy&check=..&reason=..`.
    private func ping(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let endpoint = try context.endpoint(in: configuration)
        let worker = try context.pathID("worker")
        let query = request.uri.queryParameters
        let jobIDs = query.getAll("job_id").flatMap { $0.split(separator: ",") }
            .map { String($0.prefix { $0 != "&" }).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var request = request
        var report: WorkerReport?
        if let body = try await request.readJSON(limit: configuration.limits.pingBody, what: "report") {
            guard case .object(let fields) = body else {
                throw APIError.badRequest(field: "report", "expected a JSON object like {\"stage\": \"ready\"}, got \(body.typeName)")
            }
            report = WorkerReport(json: .object(fields))
        } else if query.get("status") == "unhealthy" {
            report = .unhealthy(check: query.get("check"), reason: query.get("reason"))
        }
        let now = Date()
        try await store.heartbeat(
            workerID: worker,
            endpoint: endpoint,
            jobIDs: jobIDs,
            leaseUntil: now.addingTimeInterval(configuration.leaseTimeout.seconds),
            report: report,
            now: now
        )
        await costs.pinged(worker: worker, report: report, store: store, now: now, logger: context.logger)
        return .json(["status": "pong"])
    }

    /// Long-polled like job-take: answers `{"jobsToStop": [...]}` as soon as one of the worker's jobs is cancelled or
    /// times out (each id once), or 204 after `longPollTimeout`.
    private func jobStop(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        _ = try context.endpoint(in: configuration)
        let worker = try context.pathID("worker")
        let deadline = ContinuousClock.now + configuration.longPollTimeout
        while true {
            let seen = core.stops.generation
            let ids = try await store.takeJobsToStop(workerID: worker)
            if !ids.isEmpty { return try .json(encoding: JobsToStop(jobsToStop: ids)) }
            let remaining = deadline - .now
            if remaining <= .zero || Task.isCancelled { return Response(status: .noContent) }
            guard await core.stops.wait(for: worker, after: seen, timeout: remaining) else { return Response(status: .noContent) }
        }
    }

    // MARK: Helpers

    /// Reads the job-done body leniently: `error` may be any JSON (kept as text), and an empty body is an empty result.
    static func doneBody(_ value: JSONValue?) throws -> JobDoneBody {
        guard let value else { return JobDoneBody() }
        guard case .object(let fields) = value else {
            throw APIError.badRequest(field: "body", "expected a JSON object like {\"output\": ...} or {\"error\": \"...\"}, got \(value.typeName)")
        }
        let error: String? =
            switch fields["error"] {
            case nil, .null?: nil
            // PostgreSQL's text cannot hold NUL, which a crashed process's message can: U+FFFD takes its place.
            case .string(let text)?: text.contains("\u{0}") ? text.replacingOccurrences(of: "\u{0}", with: "\u{FFFD}") : text
            case let other?: other.jsonString()
            }
        return JobDoneBody(
            output: fields["output"].flatMap { $0.isNull ? nil : $0 },
            error: error,
            status: fields["status"]?.stringValue,
            stopPod: fields["stopPod"]?.boolValue,
            retryable: fields["retryable"]?.boolValue
        )
    }
}
