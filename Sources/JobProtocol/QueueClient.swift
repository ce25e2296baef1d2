import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1
import Storage
import SwarmCore

import Foundation

/// What one `job-take` produced.
public enum TakeResult: Sendable, Hashable {
    case jobs([QueueJob])
    /// 204, 400, an empty or non-JSON 200: nothing to do right now.
    case noJob
    /// 429: the queue asks the worker to slow down.
    case backOff(Duration)
}

/// The worker's side of RunPod's worker protocol (runpod.md §1), behind a protocol so the job loop can be driven by
/// a mock in tests, as swift-aws-lambda-runtime drives its run loop.
public protocol QueueClient: Sendable {
    /// One long poll for work.
    func takeJob(jobInProgress: Bool) async throws(QueueError) -> TakeResult
    /// Posts a final result or error. Any 2xx counts as delivered.
    func postDone(jobID: String, body: JobDoneBody) async throws(QueueError)
    /// Posts a progress update on the job-done route (`status: IN_PROGRESS`).
    func postProgress(jobID: String, output: JSONValue) async throws(QueueError)
    /// A heartbeat naming the jobs in progress. `report` (stage, progress, log tail) travels as a JSON body to queues
    /// that take one (`QueueEndpoints.acceptsReports`); RunPod's GET ping carries only the stage.
    func ping(jobIDs: [String], report: WorkerReport?) async throws(QueueError)
    /// One long poll of `job-stop`; returns the ids to abandon (empty when nothing is to stop).
    func pollStop() async throws(QueueError) -> [String]
    /// Where to upload one output of a job this worker holds (queues with `QueueEndpoints.acceptsUploads`).
    func requestUpload(jobID: String, _ request: JobUpload.UploadRequest) async throws(QueueError) -> UploadTarget
    /// Reports an output uploaded (completing a multipart upload); answers its download link.
    func completeUpload(jobID: String, _ completion: JobUpload.UploadCompletion) async throws(QueueError) -> UploadedOutput
    /// Gives up an upload that failed for good, so that its parts do not stay in the bucket.
    func abortUpload(jobID: String, _ abort: JobUpload.UploadAbort) async throws(QueueError)
}

extension QueueClient {
    public func requestUpload(jobID: String, _ request: JobUpload.UploadRequest) async throws(QueueError) -> UploadTarget {
        throw QueueError(.rejected(status: 404), route: "job-upload", detail: "this queue stores no outputs")
    }

    public func completeUpload(jobID: String, _ completion: JobUpload.UploadCompletion) async throws(QueueError) -> UploadedOutput {
        throw QueueError(.rejected(status: 404), route: "job-upload", detail: "this queue stores no outputs")
    }

    public func abortUpload(jobID: String, _ abort: JobUpload.UploadAbort) async throws(QueueError) {
        throw QueueError(.rejected(status: 404), route: "job-upload", detail: "this queue stores no outputs")
    }
}

/// The control plane's answer to a completed upload.
public struct UploadedOutput: Sendable, Hashable, Codable {
    public var key: String
    public var bytes: Int64
    /// Presigned GET, signed control-plane link, or public URL.
    public var url: String

    public init(key: String, bytes: Int64, url: String) {
        self.key = key
        self.bytes = bytes
        self.url = url
    }
}

/// A queue request that failed, with what the worker should do about it.
public struct QueueError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// 401/403: the worker key is wrong or lacks the scope.
        case unauthorized(status: Int)
        /// Another 4xx: the queue refuses this request and will keep refusing it.
        case rejected(status: Int)
        /// 5xx, 408 or 429: the queue is unwell or busy; try again later.
        case unavailable(status: Int)
        /// No HTTP answer at all (refused, reset, timed out).
        case transport
        /// An answer that does not follow the protocol.
        case badResponse
    }

    public var code: Code
    public var route: String
    public var detail: String

    public init(_ code: Code, route: String, detail: String) {
        self.code = code
        self.route = route
        self.detail = detail
    }

    /// Worth retrying the same request later.
    public var isRetryable: Bool {
        switch code {
        case .unavailable, .transport, .unauthorized: true
        case .rejected, .badResponse: false
        }
    }

    public var description: String {
        switch code {
        case .unauthorized(let status):
            "queue \(route): HTTP \(status), the worker key was refused; check SWARM_WORKER_KEY (or RUNPOD_AI_API_KEY) is a worker-scope key"
        case .rejected(let status): "queue \(route): HTTP \(status) \(detail)"
        case .unavailable(let status): "queue \(route): HTTP \(status), queue unavailable; will retry \(detail)"
        case .transport: "queue \(route): cannot reach the queue (\(detail)); will retry"
        case .badResponse: "queue \(route): unexpected answer: \(detail)"
        }
    }
}

/// `QueueClient` over HTTP with AsyncHTTPClient.
public struct HTTPQueueClient: QueueClient {
    public var endpoints: QueueEndpoints
    public var takeTimeout: Duration
    public var doneTimeout: Duration
    private let http: HTTPClient
    private let logger: Logger

    /// An `HTTPClient` configuration for talking to a queue over the internet: a queue that is down fails the call
    /// at once ("connection refused") instead of AHC retrying the connection until the request's deadline.
    public static func httpClientConfiguration(connectTimeout: Duration = .seconds(10)) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .milliseconds(connectTimeout.milliseconds)
        configuration.connectionPool.retryConnectionEstablishment = false
        return configuration
    }

    public init(endpoints: QueueEndpoints, httpClient: HTTPClient, logger: Logger, takeTimeout: Duration = .seconds(90), doneTimeout: Duration = .seconds(300)) {
        self.endpoints = endpoints
        self.http = httpClient
        self.logger = logger
        self.takeTimeout = takeTimeout
        self.doneTimeout = doneTimeout
    }

    public func takeJob(jobInProgress: Bool) async throws(QueueError) -> TakeResult {
        let (status, headers, body) = try await send(.GET, endpoints.jobTakeURL(jobInProgress: jobInProgress), route: "job-take", timeout: takeTimeout)
        return try Self.interpretTake(status: status, contentType: headers.first(name: "content-type"), body: body)
    }

    /// How the SDK reads a job-take answer (runpod.md §1.4), except that unexpected statuses are errors the caller
    /// backs off on rather than retrying at once.
    static func interpretTake(status: Int, contentType: String?, body: ByteBuffer) throws(QueueError) -> TakeResult {
        switch status {
        case 200:
            guard contentType?.lowercased().contains("json") == true, body.readableBytes > 0 else { return .noJob }
            guard let value = JSONValue.parse(Data(body.readableBytesView)) else {
                throw QueueError(.badResponse, route: "job-take", detail: "200 with a body that is not JSON")
            }
            let decoder = JSONDecoder()
            do {
                switch value {
                case .array(let items):
                    return .jobs(try items.map { try decoder.decode(QueueJob.self, from: Data($0.jsonString().utf8)) })
                case .object:
                    return .jobs([try decoder.decode(QueueJob.self, from: Data(body.readableBytesView))])
                default:
                    throw QueueError(.badResponse, route: "job-take", detail: "a job must be an object, got \(value.typeName)")
                }
            } catch let error as QueueError {
                throw error
            } catch {
                throw QueueError(.badResponse, route: "job-take", detail: "Job has missing field(s): id or input.")
            }
        case 204, 400: return .noJob
        case 429: return .backOff(.seconds(5))
        default: throw Self.error(status: status, route: "job-take", body: body)
        }
    }

    public func postDone(jobID: String, body: JobDoneBody) async throws(QueueError) {
        try await postJSON(endpoints.jobDoneURL(jobID: jobID), body: body, route: "job-done")
    }

    public func postProgress(jobID: String, output: JSONValue) async throws(QueueError) {
        try await postJSON(endpoints.jobDoneURL(jobID: jobID), body: .progress(output), route: "job-done (progress)")
    }

    public func ping(jobIDs: [String], report: WorkerReport?) async throws(QueueError) {
        let stage = report?.stageName.map { [("stage", $0)] } ?? []
        guard let url = endpoints.pingURL(jobIDs: jobIDs, extra: stage) else { return }
        let timeout = endpoints.pingInterval * 2
        let (status, _, body) =
            if let report, endpoints.acceptsReports {
                try await send(.POST, url, route: "ping", timeout: timeout, body: Data(report.jsonValue.jsonString().utf8))
            } else {
                try await send(.GET, url, route: "ping", timeout: timeout)
            }
        guard (200..<300).contains(status) else { throw Self.error(status: status, route: "ping", body: body) }
    }

    public func pollStop() async throws(QueueError) -> [String] {
        let (status, headers, body) = try await send(.GET, endpoints.jobStopURL, route: "job-stop", timeout: takeTimeout)
        switch status {
        case 200:
            guard headers.first(name: "content-type")?.lowercased().contains("json") == true,
                let stop = try? JSONDecoder().decode(JobsToStop.self, from: Data(body.readableBytesView))
            else { return [] }
            return stop.jobsToStop
        case 204, 404: return []
        default: throw Self.error(status: status, route: "job-stop", body: body)
        }
    }

    public func requestUpload(jobID: String, _ request: JobUpload.UploadRequest) async throws(QueueError) -> UploadTarget {
        try await exchange(endpoints.jobUploadURL(jobID: jobID), request, route: "job-upload")
    }

    public func completeUpload(jobID: String, _ completion: JobUpload.UploadCompletion) async throws(QueueError) -> UploadedOutput {
        try await exchange(endpoints.jobUploadURL(jobID: jobID, complete: true), completion, route: "job-upload (complete)")
    }

    public func abortUpload(jobID: String, _ abort: JobUpload.UploadAbort) async throws(QueueError) {
        let _: UploadAborted = try await exchange(endpoints.jobUploadURL(jobID: jobID, action: "abort"), abort, route: "job-upload (abort)")
    }

    /// The control plane's answer to an abort: `{"key", "aborted": true}`.
    private struct UploadAborted: Decodable {
        var key: String
    }

    // MARK: Transport

    /// POSTs `body` as JSON and decodes a 2xx answer as `Answer`.
    private func exchange<Answer: Decodable>(_ url: String?, _ body: some Encodable, route: String) async throws(QueueError) -> Answer {
        guard let url else { throw QueueError(.rejected(status: 404), route: route, detail: "this queue stores no outputs") }
        let data: Data
        do { data = try JSONEncoder().encode(body) } catch {
            throw QueueError(.badResponse, route: route, detail: "request is not encodable: \(error)")
        }
        let (status, _, response) = try await send(.POST, url, route: route, timeout: .seconds(60), body: data)
        guard (200..<300).contains(status) else { throw Self.error(status: status, route: route, body: response) }
        do {
            return try JSONDecoder().decode(Answer.self, from: Data(response.readableBytesView))
        } catch {
            throw QueueError(.badResponse, route: route, detail: "\(Answer.self) expected: \(error)")
        }
    }

    private func postJSON(_ url: String, body: JobDoneBody, route: String) async throws(QueueError) {
        let data = Data(body.jsonValue.jsonString().utf8)
        let (status, _, response) = try await send(.POST, url, route: route, timeout: doneTimeout, body: data)
        guard (200..<300).contains(status) else { throw Self.error(status: status, route: route, body: response) }
    }

    private func send(_ method: HTTPMethod, _ url: String, route: String, timeout: Duration, body: Data? = nil) async throws(QueueError)
        -> (Int, HTTPHeaders, ByteBuffer)
    {
        var request = HTTPClientRequest(url: url)
        request.method = method
        // The SDK sends the key raw, without `Bearer`; RunPod and swarmctl accept that form.
        if let key = endpoints.apiKey { request.headers.add(name: "Authorization", value: key.value) }
        request.headers.add(name: "User-Agent", value: "swarm-worker (RunPod protocol \(QueueEndpoints.protocolVersion))")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        do {
            let response = try await http.execute(request, timeout: .milliseconds(timeout.milliseconds))
            let buffer = try await response.body.collect(upTo: 64 << 20)
            return (Int(response.status.code), response.headers, buffer)
        } catch let error as CancellationError {
            _ = error
            throw QueueError(.transport, route: route, detail: "cancelled")
        } catch {
            throw QueueError(.transport, route: route, detail: String(describing: error))
        }
    }

    private static func error(status: Int, route: String, body: ByteBuffer) -> QueueError {
        let text = String(decoding: body.readableBytesView.prefix(300), as: UTF8.self)
        switch status {
        case 401, 403: return QueueError(.unauthorized(status: status), route: route, detail: text)
        case 408, 429, 500...: return QueueError(.unavailable(status: status), route: route, detail: text)
        default: return QueueError(.rejected(status: status), route: route, detail: text)
        }
    }
}
