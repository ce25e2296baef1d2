import SwarmCore

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
