import AsyncHTTPClient
import Foundation
import Hummingbird
import JobProtocol
import JobStore
import NIOCore
import Storage
import SwarmCore
import Synchronization

/// fal.ai's queue protocol (falai.md), beside the RunPod API on the same port: the app's fal code reaches the fleet by
/// changing `FAL_QUEUE_RUN_HOST` and `FAL_KEY`. Jobs run on the default endpoint like any other; a fal request id is
/// the job id.
struct FalRoutes {
    let core: ControlPlaneCore
    /// Stores `data:` images as input files (S3 uploads go through it).
    let httpClient: HTTPClient
    /// The in-queue count of the default endpoint, read at most once a second: status polls come every 0.1 s per
    /// request, and each must cost no more than one job read.
    private let queued = QueuedCount()

    static let webhookMarker = "fal+"

    func register(on router: Router<ControlPlaneRequestContext>) {
        let group = router.group(RouterPath(FalApp.base))
            .add(middleware: FalErrorMiddleware())
            .add(middleware: AuthMiddleware(required: .client, keys: core.keys))
        for version in FalApp.versions {
            for app in FalApp.allCases {
                let path = "\(version)/\(app.rawValue)"
                group.post(RouterPath(path)) { request, context in try await submit(app, request, context) }
                registerRequests(on: group, under: path + "/requests")
            }
        }
        // Handles a client builds from an id drop the app's sub-path (falai.md §2).
        registerRequests(on: group, under: "requests")
    }

    private func registerRequests(on group: RouterGroup<ControlPlaneRequestContext>, under prefix: String) {
        group.get(RouterPath(prefix + "/:id/status")) { request, context in try await status(request, context) }
        group.get(RouterPath(prefix + "/:id/status/stream")) { request, context in try await stream(request, context) }
        group.get(RouterPath(prefix + "/:id")) { request, context in try await result(request, context) }
        group.put(RouterPath(prefix + "/:id/cancel")) { request, context in try await cancel(request, context) }
    }

    // MARK: Submit

    private func submit(_ app: FalApp, _ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let configuration = core.configuration
        var request = request
        let body = try await request.readJSON(limit: configuration.limits.runBody)
        let input: JSONValue
        do {
            input = try app.jobInput(body)
        } catch {
            throw FalError.validation(error)
        }
        var job = NewJob(
            id: JobRequest.newID(),
            endpoint: ControlPlaneConfiguration.defaultEndpoint,
            input: try await storeDataImage(input, request: request)
        )
        if let webhook = request.uri.queryParameters.get("fal_webhook"), !webhook.isEmpty {
            guard webhook.utf8.count <= 2048, let url = URL(string: webhook), ["http", "https"].contains(url.scheme?.lowercased() ?? ""),
                url.host?.isEmpty == false
            else { throw FalError(.unprocessableContent, "fal_webhook: '\(webhook.prefix(100))' is not an http(s) URL", type: "invalid_webhook") }
            // The marker tells the webhook sender to post fal's payload rather than RunPod's.
            job.webhook = Self.webhookMarker + webhook
        }
        guard let stored = try await core.store.enqueue([job], now: Date()).first else {
            throw FalError(.internalServerError, "the store accepted the request but returned no record", type: "internal_error")
        }
        core.metrics.submitted(endpoint: stored.endpoint, count: 1)
        let urls = try requestURLs(stored.id, request)
        var answer: [String: JSONValue] = [
            "request_id": .string(stored.id), "status": "IN_QUEUE", "queue_position": .int(try await position(of: stored)),
            "status_url": .string(urls.status), "response_url": .string(urls.response), "cancel_url": .string(urls.cancel),
        ]
        if job.webhook != nil { answer["gateway_request_id"] = .string(stored.id) }
        return .json(.object(answer))
    }

    private func requestURLs(_ id: String, _ request: Request) throws -> (status: String, response: String, cancel: String) {
        let response = "\(try baseURL(request))/\(FalApp.base)/requests/\(id)"
        return (response + "/status", response, response + "/cancel")
    }

    /// This server as the client reached it, or `--public-url`.
    private func baseURL(_ request: Request) throws -> String {
        if let url = core.configuration.publicURL { return url }
        guard let authority = request.head.authority, !authority.isEmpty else {
            throw FalError(.badRequest, "the request names no host to build its URLs with; set --public-url on the server", type: "missing_host")
        }
        return "\(core.configuration.scheme)://\(authority)"
    }

    /// A `data:` image becomes an input file in storage, so that the stored job, which every status poll reads and the
    /// worker is handed, carries a link instead of the picture. Inline when the server stores no files.
    private func storeDataImage(_ input: JSONValue, request: Request) async throws -> JSONValue {
        guard let outputs = core.configuration.outputs, case .object(var fields) = input, let image = fields["init_image"]?.stringValue,
            image.hasPrefix("data:"), let comma = image.firstIndex(of: ",")
        else { return input }
        let header = image[image.index(image.startIndex, offsetBy: 5)..<comma]
        let type = header.split(separator: ";").first.map { $0.lowercased() } ?? ""
        guard let ext = OutputRoutes.inputTypes[type] else {
            throw FalError.validation(
                FalFieldError("image_url", "a data: image must be image/png, image/jpeg, image/webp or image/gif, got '\(type.prefix(40))'")
            )
        }
        guard let bytes = Data(base64Encoded: String(image[image.index(after: comma)...]), options: .ignoreUnknownCharacters), !bytes.isEmpty else {
            throw FalError.validation(FalFieldError("image_url", "the data: URI holds no base64 image"))
        }
        guard bytes.count <= OutputRoutes.inputLimit else {
            throw FalError.validation(
                FalFieldError(
                    "image_url",
                    "the image is \(formatBytes(Int64(bytes.count))), above the \(formatBytes(OutputRoutes.inputLimit)) a worker fetches"
                )
            )
        }
        let key = ObjectKey.input(endpoint: ControlPlaneConfiguration.defaultEndpoint, fileName: randomUUIDString() + "." + ext)
        do {
            let stored = try await OutputRoutes.storeInput(
                RequestBody(buffer: ByteBuffer(bytes: bytes)),
                key: key,
                size: Int64(bytes.count),
                contentType: type,
                storage: outputs.storage(httpClient: httpClient, baseURL: try baseURL(request)),
                httpClient: httpClient
            )
            fields["init_image"] = .string(stored.url)
        } catch let error as StorageError {
            throw FalError(.serviceUnavailable, "storing the data: image failed: \(error.message)", type: "storage_error")
        }
        return .object(fields)
    }

    // MARK: Read

    private func status(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let job = try await requireJob(context)
        return .json(try await statusObject(job, logs: wantsLogs(request)))
    }

    /// Server-sent events of the status object, one on each change, until the request completes (fal's JS client).
    private func stream(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let first = try await requireJob(context)
        let logs = try wantsLogs(request)
        let core = self.core
        let routes = self
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                var job = first
                var last: JSONValue?
                while true {
                    let seen = core.jobChanges.generation
                    let object = try await routes.statusObject(job, logs: logs)
                    if object != last {
                        try await writer.write(ByteBuffer(string: "data: \(object.jsonString())\n\n"))
                        last = object
                    }
                    if job.status.isFinal || Task.isCancelled { break }
                    // Woken at once by an end in this process; a start (IN_PROGRESS) is seen on the next read.
                    _ = await core.jobChanges.wait(for: job.id, after: seen, timeout: .milliseconds(250))
                    guard let next = try await core.store.job(id: job.id) else { break }
                    job = next
                }
                try await writer.finish(nil)
            }
        )
    }

    private func result(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let job = try await requireJob(context)
        switch job.status {
        case .completed:
            guard let output = FalApp.output(of: job) else {
                throw FalError(
                    .internalServerError,
                    "the job completed without a video file; its output: \(job.output?.jsonString().prefix(300) ?? "none")",
                    type: "internal_error"
                )
            }
            return .json(output)
        case .inQueue, .inProgress:
            throw FalError(.badRequest, "Request is still in progress; poll its status_url until COMPLETED", type: "request_in_progress")
        case .cancelled:
            throw FalError(.badRequest, "Request was cancelled", type: "request_cancelled")
        case .failed, .timedOut:
            throw FalError(
                .internalServerError,
                job.error ?? "the job \(job.status.rawValue.lowercased())",
                type: job.status == .timedOut ? "request_timeout" : "runner_error"
            )
        }
    }

    // MARK: Cancel

    private func cancel(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let job = try await requireJob(context)
        if job.status.isFinal { return .json(["status": "ALREADY_COMPLETED"], status: .badRequest) }
        guard let cancelled = try await core.store.cancel(id: job.id, now: Date()) else { throw notFound(job.id) }
        guard cancelled.status == .cancelled else { return .json(["status": "ALREADY_COMPLETED"], status: .badRequest) }
        core.jobEnded(cancelled)
        return .json(["status": "CANCELLATION_REQUESTED"], status: .accepted)
    }

    // MARK: Shapes

    /// fal's status object (falai.md §3); `logs` is always present (null unless asked for), as the Python client reads it.
    func statusObject(_ job: JobRecord, logs: Bool) async throws -> JSONValue {
        var fields: [String: JSONValue] = ["request_id": .string(job.id)]
        switch job.status {
        case .inQueue:
            fields["status"] = "IN_QUEUE"
            fields["queue_position"] = .int(try await position(of: job))
        case .inProgress:
            fields["status"] = "IN_PROGRESS"
            fields["logs"] = logs ? .array(Self.logs(job)) : .null
        case .completed, .failed, .cancelled, .timedOut:
            fields["status"] = "COMPLETED"
            fields["logs"] = logs ? .array(Self.logs(job)) : .null
            if let execution = job.executionTimeMs { fields["metrics"] = ["inference_time": .double(Double(execution) / 1000)] }
            if job.status != .completed {
                fields["error"] = .string(job.error ?? "the request ended \(job.status.rawValue)")
                fields["error_type"] = .string(
                    job.status == .cancelled ? "request_cancelled" : job.status == .timedOut ? "request_timeout" : "runner_error"
                )
            }
        }
        return .object(fields)
    }

    /// fal's webhook body (falai.md §5): `{request_id, gateway_request_id, status: "OK"|"ERROR", payload, error}`.
    static func webhook(_ job: JobRecord) -> JSONValue {
        let output = job.status == .completed ? FalApp.output(of: job) : nil
        var fields: [String: JSONValue] = [
            "request_id": .string(job.id), "gateway_request_id": .string(job.id), "status": output == nil ? "ERROR" : "OK",
            "payload": output ?? ["detail": .string(job.error ?? "the request ended \(job.status.rawValue)")],
            "error": .null,
        ]
        if output == nil { fields["error"] = .string(job.error ?? "the request ended \(job.status.rawValue)") }
        return .object(fields)
    }

    /// What the job record tells of its run, as fal's log entries.
    static func logs(_ job: JobRecord) -> [JSONValue] {
        var entries: [JSONValue] = []
        let entry = { (message: String, level: String, at: Date) -> JSONValue in
            ["message": .string(message), "level": .string(level), "source": "USER", "timestamp": .string(at.formatted(.iso8601))]
        }
        if let started = job.startedAt {
            entries.append(
                entry("running on worker \(job.workerID ?? "?")" + (job.attempts > 1 ? " (attempt \(job.attempts))" : ""), "INFO", started)
            )
            if job.status == .inProgress, let progress = job.output {
                entries.append(entry(progress.stringValue ?? progress.jsonString(), "INFO", Date()))
            }
        }
        if let finished = job.finishedAt {
            let failed = job.status != .completed
            entries.append(entry(failed ? "ended \(job.status.rawValue): \(job.error ?? "")" : "completed", failed ? "ERROR" : "INFO", finished))
        }
        return entries
    }

    private func wantsLogs(_ request: Request) throws -> Bool {
        switch request.uri.queryParameters.get("logs")?.lowercased() {
        case nil, "", "0", "false": return false
        case "1", "true": return true
        case let other?: throw FalError(.unprocessableContent, "logs: '\(other)' is not a boolean; send logs=1 or logs=0", type: "invalid_query")
        }
    }

    private func position(of job: JobRecord) async throws -> Int {
        // Jobs waiting besides this one, from a count at most a second old.
        max(0, try await queued.value(store: core.store, endpoint: job.endpoint) - 1)
    }

    private func requireJob(_ context: ControlPlaneRequestContext) async throws -> JobRecord {
        let id = try context.pathID("id")
        guard let job = try await core.store.job(id: id), job.endpoint == ControlPlaneConfiguration.defaultEndpoint else { throw notFound(id) }
        return job
    }

    private func notFound(_ id: String) -> FalError {
        FalError(.notFound, "Request \(id) not found (never submitted here, or removed after the retention period)", type: "NOT_FOUND")
    }
}

/// The in-queue count of an endpoint, cached for a second.
final class QueuedCount: Sendable {
    private let cached = Mutex<(endpoint: String, count: Int, until: ContinuousClock.Instant)?>(nil)

    func value(store: any JobStore, endpoint: String) async throws -> Int {
        let now = ContinuousClock.now
        if let hit = cached.withLock({ $0 }), hit.endpoint == endpoint, hit.until > now { return hit.count }
        let count = try await store.counts(endpoint: endpoint)[.inQueue] ?? 0
        cached.withLock { $0 = (endpoint, count, now + .seconds(1)) }
        return count
    }
}

/// An error in fal's shape: `{"detail": "...", "error_type": "..."}`, or 422 `{"detail": [{loc, msg, type}]}`.
struct FalError: Error, Sendable {
    var status: HTTPResponse.Status
    var detail: JSONValue
    var type: String?

    init(_ status: HTTPResponse.Status, _ message: String, type: String?) {
        self.status = status
        self.detail = .string(message)
        self.type = type
    }

    static func validation(_ error: FalFieldError) -> FalError {
        var result = FalError(.unprocessableContent, "", type: nil)
        let location: [JSONValue] = ["body"] + error.field.split(separator: ".").map { Int($0).map(JSONValue.int) ?? .string(String($0)) }
        result.detail = [["loc": .array(location), "msg": .string(error.message), "type": .string(error.type)]]
        return result
    }

    var response: Response {
        var body: [String: JSONValue] = ["detail": detail]
        if let type { body["error_type"] = .string(type) }
        var response = Response.json(.object(body), status: status)
        if let type { response.headers[.init("x-fal-error-type")!] = type }
        return response
    }
}

/// Answers every error of the fal routes in fal's shape, so that `fal_client` raises with the message (its
/// `FalClientHTTPError` reads `detail`); the keys' own errors included.
struct FalErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as FalError {
            return error.response
        } catch let error as APIError {
            let type = error.status == .unauthorized ? "authentication_error" : error.field.map { _ in "invalid_request" }
            return FalError(error.status, error.message, type: type).response
        }
    }
}
