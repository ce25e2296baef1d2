import SwarmCore

import Foundation

/// Where a worker takes jobs and reports them: RunPod's URL templates (runpod.md §1.2), either as RunPod injects
/// them (`RUNPOD_WEBHOOK_*`) or derived from one queue URL (`SWARM_QUEUE_URL=http://host:port/v2/<endpoint>`).
public struct QueueEndpoints: Sendable, Hashable {
    /// `.../job-take/$ID?...`: `$ID` is the worker id.
    public var jobTakeTemplate: String
    /// `.../job-done/$RUNPOD_POD_ID/$ID?...`: `$ID` is the job id.
    public var jobDoneTemplate: String
    /// `.../job-stream/$RUNPOD_POD_ID/$ID?...`, when the queue accepts stream chunks.
    public var jobStreamTemplate: String?
    /// `.../ping/$RUNPOD_POD_ID?...`; nil disables pings (as the SDK does without a pod id or key).
    public var pingTemplate: String?
    public var workerID: String
    public var apiKey: Secret?
    public var pingInterval: Duration
    /// Whether pings may carry a JSON report (swarmctl's queue does; RunPod's expects a bare GET).
    public var acceptsReports: Bool
    /// `.../job-upload/$RUNPOD_POD_ID/$ID?...`, when the queue stores outputs (swarmctl's does; RunPod's does not).
    public var jobUploadTemplate: String?

    /// Whether the queue hands out upload targets for outputs.
    public var acceptsUploads: Bool { jobUploadTemplate != nil }

    public init(
        jobTakeTemplate: String,
        jobDoneTemplate: String,
        jobStreamTemplate: String? = nil,
        pingTemplate: String?,
        workerID: String,
        apiKey: Secret?,
        pingInterval: Duration = .seconds(10),
        acceptsReports: Bool = false,
        jobUploadTemplate: String? = nil
    ) {
        self.jobTakeTemplate = jobTakeTemplate
        self.jobDoneTemplate = jobDoneTemplate
        self.jobStreamTemplate = jobStreamTemplate
        self.pingTemplate = pingTemplate
        self.workerID = workerID
        self.apiKey = apiKey
        self.pingInterval = pingInterval
        self.acceptsReports = acceptsReports
        self.jobUploadTemplate = jobUploadTemplate
    }

    /// The templates a queue at `queueURL` (`http://host:port/v2/<endpoint>`) serves, as swarmctl injects them.
    public init(queueURL: String, workerID: String, apiKey: Secret?, pingInterval: Duration = .seconds(10)) throws(QueueConfigurationError) {
        var base = queueURL
        while base.hasSuffix("/") { base.removeLast() }
        guard base.hasPrefix("http://") || base.hasPrefix("https://") else {
            throw QueueConfigurationError(
                variable: "SWARM_QUEUE_URL",
                problem: "'\(queueURL)' is not an http(s) URL; expected http://host:port/v2/<endpoint>"
            )
        }
        guard base.split(separator: "/").count >= 4, !base.contains("?") else {
            throw QueueConfigurationError(
                variable: "SWARM_QUEUE_URL",
                problem: "'\(queueURL)' has no endpoint path; expected http://host:port/v2/<endpoint>"
            )
        }
        // The query must already hold a `?`: the protocol appends parameters with `&` (runpod.md §1.2).
        let query = "?runtime=swarm-worker"
        self.init(
            jobTakeTemplate: "\(base)/job-take/$ID\(query)",
            jobDoneTemplate: "\(base)/job-done/$RUNPOD_POD_ID/$ID\(query)",
            jobStreamTemplate: "\(base)/job-stream/$RUNPOD_POD_ID/$ID\(query)",
            pingTemplate: "\(base)/ping/$RUNPOD_POD_ID\(query)",
            workerID: workerID,
            apiKey: apiKey,
            pingInterval: pingInterval,
            acceptsReports: true,
            jobUploadTemplate: "\(base)/job-upload/$RUNPOD_POD_ID/$ID\(query)"
        )
    }

    // MARK: URLs

    public func jobTakeURL(jobInProgress: Bool) -> String {
        Self.appending(jobTakeTemplate.replacingOccurrences(of: "$ID", with: workerID), "job_in_progress=\(jobInProgress ? 1 : 0)")
    }

    public func jobTakeBatchURL(batchSize: Int, jobInProgress: Bool) -> String {
        let url = jobTakeTemplate.replacingOccurrences(of: "/job-take/", with: "/job-take-batch/")
            .replacingOccurrences(of: "$ID", with: workerID)
        return Self.appending(url, "batch_size=\(batchSize)&job_in_progress=\(jobInProgress ? 1 : 0)")
    }

    /// The job-stop long poll, derived from the take template as the SDK derives it.
    public var jobStopURL: String {
        jobTakeTemplate.replacingOccurrences(of: "/job-take/", with: "/job-stop/").replacingOccurrences(of: "$ID", with: workerID)
    }

    public func jobDoneURL(jobID: String, isStream: Bool = false) -> String {
        Self.appending(Self.fill(jobDoneTemplate, workerID: workerID, jobID: jobID), "isStream=\(isStream)")
    }

    public func jobStreamURL(jobID: String) -> String? {
        jobStreamTemplate.map { Self.appending(Self.fill($0, workerID: workerID, jobID: jobID), "isStream=false") }
    }

    /// Where to ask for an output's upload target (`complete: false`) or report it uploaded (`complete: true`).
    public func jobUploadURL(jobID: String, complete: Bool = false) -> String? {
        jobUploadURL(jobID: jobID, action: complete ? "complete" : nil)
    }

    /// The job-upload URL, followed by `/<action>` (`complete`, `abort`) when one is given.
    public func jobUploadURL(jobID: String, action: String?) -> String? {
        guard let jobUploadTemplate else { return nil }
        let url = Self.fill(jobUploadTemplate, workerID: workerID, jobID: jobID)
        guard let action else { return url }
        // The action goes at the end of the path, before the template's query.
        guard let query = url.firstIndex(of: "?") else { return url + "/" + action }
        return String(url[..<query]) + "/" + action + String(url[query...])
    }

    /// The heartbeat URL listing the jobs in progress (comma-separated, URL-encoded, left out when idle).
    public func pingURL(jobIDs: [String], extra: [(String, String)] = []) -> String? {
        guard let pingTemplate else { return nil }
        var url = pingTemplate.replacingOccurrences(of: "$RUNPOD_POD_ID", with: workerID)
        if !jobIDs.isEmpty { url = Self.appending(url, "job_id=\(Self.percentEncode(jobIDs.joined(separator: ",")))") }
        for (key, value) in extra { url = Self.appending(url, "\(key)=\(Self.percentEncode(value))") }
        return Self.appending(url, "runpod_version=\(Self.protocolVersion)")
    }

    /// The SDK version whose behaviour this client follows.
    public static let protocolVersion = "1.12.0"

    private static func fill(_ template: String, workerID: String, jobID: String) -> String {
        template.replacingOccurrences(of: "$RUNPOD_POD_ID", with: workerID).replacingOccurrences(of: "$ID", with: percentEncode(jobID))
    }

    /// Adds query parameters, tolerating a template that lacks the `?` the SDK assumes.
    private static func appending(_ url: String, _ parameters: String) -> String {
        url + (url.contains("?") ? "&" : "?") + parameters
    }

    static func percentEncode(_ value: String) -> String { value.percentEncodedForQuery }
}

/// A queue setting that is missing or malformed, named by its environment variable.
public struct QueueConfigurationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var variable: String
    public var problem: String

    public init(variable: String, problem: String) {
        self.variable = variable
        self.problem = problem
    }

    public var description: String { "\(variable): \(problem)" }
}

extension QueueEndpoints {
    /// The endpoint every control plane serves (`/v2/swarmui`), and the one the fleet's workers take from.
    public static let defaultEndpoint = "swarmui"
}
