import AsyncHTTPClient
import JobProtocol
import Logging
import NIOCore
import NIOHTTP1
import SwarmCore

import Foundation

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

    public init(
        endpoints: QueueEndpoints,
        httpClient: HTTPClient,
        logger: Logger,
        takeTimeout: Duration = .seconds(90),
        doneTimeout: Duration = .seconds(300)
    ) {
        self.endpoints = endpoints
        self.http = httpClient
        self.logger = logger
        self.takeTimeout = takeTimeout
        self.doneTimeout = doneTimeout
    }

    public func takeJob(jobInProgress: Bool) async throws(QueueError) -> TakeResult {
        let (status, headers, body) = try await send(
            .GET,
            endpoints.jobTakeURL(jobInProgress: jobInProgress),
            route: "job-take",
            timeout: takeTimeout
        )
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

    private func send(
        _ method: HTTPMethod,
        _ url: String,
        route: String,
        timeout: Duration,
        body: Data? = nil
    ) async throws(QueueError)
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
