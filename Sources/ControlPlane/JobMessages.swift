import Foundation
import JobProtocol
import JobStore
import SwarmCore

/// Reads RunPod's submit body, `{"input": ..., "webhook": ..., "policy": {...}, "s3Config": {...}}`, into a job.
/// Every rejection names the field (prefixed for batches, e.g. `jobs[3].policy.ttl`) and says what to send instead.
enum JobRequest {
    static let executionTimeoutRange: ClosedRange<Int> = 5_000...604_800_000
    static let ttlRange: ClosedRange<Int> = 10_000...604_800_000
    /// Values of `input.provider`, which stays in the stored input as the job's record of where it was sent.
    static let providers = ["auto", "vastai"]

    static func parse(
        _ body: JSONValue?,
        prefix: String = "",
        id: String,
        endpoint: String,
        providers: [String] = providers
    ) throws(APIError) -> NewJob {
        let name = { (field: String) in prefix.isEmpty ? field : "\(prefix).\(field)" }
        guard let body else { throw .badRequest(field: prefix.isEmpty ? "body" : prefix, "missing; send {\"input\": {...}}") }
        guard case .object(let fields) = body else {
            throw .badRequest(field: prefix.isEmpty ? "body" : prefix, "expected a JSON object {\"input\": {...}}, got \(body.typeName)")
        }
        guard let input = fields["input"], !input.isNull else {
            throw .badRequest(field: name("input"), "required; put the job's parameters in \"input\"")
        }
        if let provider = input["provider"] {
            guard let chosen = provider.stringValue, providers.contains(chosen) else {
                throw .badRequest(
                    field: name("input.provider"),
                    "\(provider.jsonString().prefix(60)) is not a provider of this server; it has: \(providers.joined(separator: ", ")) (\"auto\" and \"vastai\" run on this server's fleet\(providers.contains("fal") ? "; \"fal\" forwards to fal.ai" : "; \"fal\" needs serve --fal-key-env"))"
                )
            }
            if chosen == "fal" { _ = try FalForwardMapping.request(for: input) }
        }
        var job = NewJob(id: id, endpoint: endpoint, input: input)
        switch fields["webhook"] {
        case nil, .null?: break
        case .string(let url)?:
            guard url.utf8.count <= 2048, let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""),
                parsed.host?.isEmpty == false
            else { throw .badRequest(field: name("webhook"), "'\(url.prefix(100))' is not an http(s) URL") }
            job.webhook = url
        case let other?: throw .badRequest(field: name("webhook"), "expected a URL string, got \(other.typeName)")
        }
        switch fields["policy"] {
        case nil, .null?: break
        case .object(let policy)?: job.policy = try parsePolicy(policy, name: name)
        case let other?: throw .badRequest(field: name("policy"), "expected an object like {\"executionTimeout\": 600000}, got \(other.typeName)")
        }
        switch fields["s3Config"] {
        case nil, .null?: break
        case .object?: job.s3Config = fields["s3Config"]
        case let other?: throw .badRequest(field: name("s3Config"), "expected an object, got \(other.typeName)")
        }
        return job
    }

    private static func parsePolicy(_ policy: [String: JSONValue], name: (String) -> String) throws(APIError) -> JobPolicy {
        var result = JobPolicy()
        if let value = policy["executionTimeout"], !value.isNull {
            result.executionTimeoutMs = Int64(try milliseconds(value, in: executionTimeoutRange, field: name("policy.executionTimeout")))
        }
        if let value = policy["ttl"], !value.isNull {
            result.ttlMs = Int64(try milliseconds(value, in: ttlRange, field: name("policy.ttl")))
        }
        switch policy["lowPriority"] {
        case nil, .null?: break
        case .bool(let flag)?: result.lowPriority = flag
        case let other?: throw .badRequest(field: name("policy.lowPriority"), "expected true or false, got \(other.typeName)")
        }
        return result
    }

    private static func milliseconds(_ value: JSONValue, in range: ClosedRange<Int>, field: String) throws(APIError) -> Int {
        guard let number = value.intValue, range.contains(number) else {
            throw .badRequest(
                field: field,
                "expected milliseconds from \(range.lowerBound) to \(range.upperBound), got \(value.jsonString().prefix(40))"
            )
        }
        return number
    }

    /// Time-ordered, so that each new id lands at the end of the stores' id index, on a page the same commit already
    /// writes, instead of on a random page of an index as long as the job history.
    static func newID(sync: Bool = false) -> String {
        (sync ? "sync-" : "") + timeOrderedUUIDString()
    }
}

/// The JSON the API answers with, in RunPod's shapes (runpod.md §2.2–2.4).
enum JobView {
    /// `/status` and `/runsync`: `{"id", "status", "delayTime", "executionTime", "output", "error", "workerId"}`, each
    /// optional key present only when known.
    static func status(_ job: JobRecord) -> JSONValue {
        var fields: [String: JSONValue] = ["id": .string(job.id), "status": .string(job.status.rawValue)]
        if let delay = job.delayTimeMs { fields["delayTime"] = .int(Int(delay)) }
        if let execution = job.executionTimeMs { fields["executionTime"] = .int(Int(execution)) }
        if let output = job.output { fields["output"] = output }
        if let error = job.error { fields["error"] = .string(error) }
        if let worker = job.workerID { fields["workerId"] = .string(worker) }
        // Our additions to RunPod's shape, which clients ignore: who ran the job, and fal.ai's request and charge.
        if let provider = job.provider { fields["provider"] = .string(provider) }
        if let request = job.falRequestID { fields["falRequestId"] = .string(request) }
        if let cost = job.falCostUSD { fields["falCostUsd"] = .double(cost) }
        if job.attempts > 1 { fields["retries"] = .int(job.attempts - 1) }
        if job.webhook != nil {
            fields["webhookDelivered"] = .bool(job.webhookDelivered)
            fields["webhookAttempts"] = .array(job.webhookAttempts.map(attempt))
        }
        return .object(fields)
    }

    static func attempt(_ attempt: WebhookAttempt) -> JSONValue {
        var fields: [String: JSONValue] = ["at": .string(attempt.at.formatted(.iso8601))]
        if let status = attempt.status { fields["status"] = .int(status) }
        if let error = attempt.error { fields["error"] = .string(error) }
        return .object(fields)
    }

    /// `{"id", "status"}`: what `/run`, `/cancel` and `/retry` answer.
    static func brief(_ job: JobRecord) -> JSONValue {
        ["id": .string(job.id), "status": .string(job.status.rawValue)]
    }

    /// The webhook payload: the status object plus `input` and `webhook`, as RunPod's cloud sends it.
    static func webhook(_ job: JobRecord) -> JSONValue {
        guard case .object(var fields) = status(job) else { return status(job) }
        fields["webhookDelivered"] = nil
        fields["webhookAttempts"] = nil
        fields["input"] = job.input
        fields["webhook"] = job.webhook.map(JSONValue.string) ?? .null
        return .object(fields)
    }

    /// A job as job-take hands it to a worker: `{"id", "input", "webhook"?, "s3Config"?}`.
    static func queued(_ job: JobRecord) -> QueueJob {
        var extra: [String: JSONValue] = [:]
        if let webhook = job.webhook { extra["webhook"] = .string(webhook) }
        if let s3Config = job.s3Config { extra["s3Config"] = s3Config }
        return QueueJob(id: job.id, input: job.input, extra: extra)
    }

    /// One row of `GET /jobs`: no input, output or secrets, so that pages stay small.
    static func summary(_ job: JobRecord) -> JSONValue {
        var fields: [String: JSONValue] = [
            "id": .string(job.id), "status": .string(job.status.rawValue), "attempts": .int(job.attempts),
            "createdAt": .string(job.createdAt.formatted(.iso8601)),
        ]
        if let delay = job.delayTimeMs { fields["delayTime"] = .int(Int(delay)) }
        if let execution = job.executionTimeMs { fields["executionTime"] = .int(Int(execution)) }
        if let worker = job.workerID { fields["workerId"] = .string(worker) }
        if let provider = job.provider { fields["provider"] = .string(provider) }
        if let error = job.error { fields["error"] = .string(String(error.prefix(500))) }
        if job.webhook != nil { fields["webhookDelivered"] = .bool(job.webhookDelivered) }
        return .object(fields)
    }
}
