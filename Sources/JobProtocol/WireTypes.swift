import SwarmCore

import Foundation

/// A job's state, spelled as RunPod spells it on the wire.
public enum JobStatus: String, Codable, Sendable, CaseIterable {
    case inQueue = "IN_QUEUE"
    case inProgress = "IN_PROGRESS"
    case completed = "COMPLETED"
    case failed = "FAILED"
    case cancelled = "CANCELLED"
    case timedOut = "TIMED_OUT"

    /// No further change will happen (the SDK's `is_completed` also counts CANCELLED).
    public var isFinal: Bool {
        switch self {
        case .inQueue, .inProgress: false
        case .completed, .failed, .cancelled, .timedOut: true
        }
    }
}

/// A job as `job-take` hands it to a worker: `{"id": ..., "input": {...}, "webhook": ...}` plus whatever else the
/// queue adds (RunPod's handler receives the whole object, unknown keys included).
public struct QueueJob: Sendable, Hashable, Codable {
    public var id: String
    public var input: JSONValue
    /// Every key of the job object besides `id` and `input` (`webhook`, `s3Config`, `policy`, ...), unchanged.
    public var extra: [String: JSONValue]

    public init(id: String, input: JSONValue, extra: [String: JSONValue] = [:]) {
        self.id = id
        self.input = input
        self.extra = extra
    }

    public init(from decoder: any Decoder) throws {
        let object = try JSONValue(from: decoder)
        guard case .object(var fields) = object else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "a job must be a JSON object"))
        }
        guard let id = fields.removeValue(forKey: "id")?.stringValue, !id.isEmpty,
            let input = fields.removeValue(forKey: "input")
        else {
            // The SDK's wording for the same failure.
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "Job has missing field(s): id or input."))
        }
        self.init(id: id, input: input, extra: fields)
    }

    /// The job object as the queue sends it.
    public var jsonValue: JSONValue {
        var fields = extra
        fields["id"] = .string(id)
        fields["input"] = input
        return .object(fields)
    }

    public func encode(to encoder: any Encoder) throws {
        try jsonValue.encode(to: encoder)
    }
}

/// The body a worker posts to `job-done` (and `job-stream`): the final result, an error, or a progress update.
public struct JobDoneBody: Sendable, Hashable, Codable {
    public var output: JSONValue?
    /// RunPod sends a string here; a JSON-encoded error object inside a string when the handler raised.
    public var error: String?
    /// `"IN_PROGRESS"` marks a progress update on the same route; nil for a final result.
    public var status: String?
    /// Ask the queue to recycle this worker after the job (RunPod's `refresh_worker`).
    public var stopPod: Bool?
    /// Our extension: the failure was not the job's fault (worker shutdown, SwarmUI crash) and the job may run again.
    public var retryable: Bool?

    public init(output: JSONValue? = nil, error: String? = nil, status: String? = nil, stopPod: Bool? = nil, retryable: Bool? = nil) {
        self.output = output
        self.error = error
        self.status = status
        self.stopPod = stopPod
        self.retryable = retryable
    }

    public static func result(_ output: JSONValue) -> JobDoneBody { JobDoneBody(output: output) }
    public static func failure(_ message: String, retryable: Bool = false) -> JobDoneBody {
        JobDoneBody(error: message, retryable: retryable ? true : nil)
    }
    public static func progress(_ value: JSONValue) -> JobDoneBody { JobDoneBody(output: value, status: JobStatus.inProgress.rawValue) }

    /// A progress update rather than a final result.
    public var isProgress: Bool { status == JobStatus.inProgress.rawValue }

    /// The body as JSON, with the same keys as its `Codable` form. A result can carry whole files as data URLs, and
    /// `JSONValue`'s own writer is much faster than going through `JSONEncoder`.
    public var jsonValue: JSONValue {
        var fields: [String: JSONValue] = [:]
        if let output { fields["output"] = output }
        if let error { fields["error"] = .string(error) }
        if let status { fields["status"] = .string(status) }
        if let stopPod { fields["stopPod"] = .bool(stopPod) }
        if let retryable { fields["retryable"] = .bool(retryable) }
        return .object(fields)
    }
}

/// `job-stop` answer: the ids of jobs the worker must abandon (cancelled or timed out by the queue).
public struct JobsToStop: Sendable, Hashable, Codable {
    public var jobsToStop: [String]
    public init(jobsToStop: [String]) { self.jobsToStop = jobsToStop }
}
