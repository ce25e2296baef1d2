import SwarmCore

import Foundation

/// Model downloads while a worker boots: bytes on disk so far and the (partly estimated) total.
public struct DownloadProgress: Sendable, Hashable {
    public var doneBytes: Int64
    public var totalBytes: Int64

    public init(doneBytes: Int64, totalBytes: Int64) {
        self.totalBytes = max(0, totalBytes)
        self.doneBytes = max(0, min(doneBytes, self.totalBytes))
    }

    /// `{"done_bytes": …, "total_bytes": …}`; nil without a positive total. Numbers may come as doubles.
    public init?(json: JSONValue?) {
        guard let done = json?["done_bytes"]?.doubleValue, let total = json?["total_bytes"]?.doubleValue, total > 0 else { return nil }
        self.init(doneBytes: Int64(done), totalBytes: Int64(total))
    }

    public var fraction: Double { totalBytes > 0 ? Double(doneBytes) / Double(totalBytes) : 0 }
    /// One decimal, 0 to 100.
    public var percent: Double { (fraction * 1000).rounded() / 10 }

    /// The one place this JSON is built: pings, `/health` and `swarmctl instance status --json` all send it.
    public var jsonValue: JSONValue {
        ["done_bytes": .int(Int(doneBytes)), "total_bytes": .int(Int(totalBytes)), "percent": .double(percent)]
    }

    /// "12.1 of 33.2 GB (36%)".
    public var summary: String {
        String(format: "%.1f of %.1f GB (%.0f%%)", Double(doneBytes) / 1e9, Double(totalBytes) / 1e9, fraction * 100)
    }

    /// `[#########-----------]` over `width` cells.
    public func bar(width: Int) -> String {
        let cells = max(1, width)
        let filled = min(cells, Int((fraction * Double(cells)).rounded(.down)))
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: cells - filled) + "]"
    }
}

/// Why a worker cannot serve, and whether another try can help: the fleet destroys and holds on a permanent failure
/// (renting again would fail the same way, and bill) and replaces the instance on a transient one.
public struct WorkerFailure: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// A missing or refused token, too small a disk, a bad configuration: only the operator can fix it.
        case permanent
        /// Anything else: a network failure, a crash; a restart or another machine may succeed.
        case transient
    }

    /// What happened and what to do, for the operator.
    public var reason: String
    public var kind: Kind

    public init(reason: String, kind: Kind) {
        self.reason = reason
        self.kind = kind
    }
}

/// The stage a worker reports from its first second, on `/health` and with every ping.
public enum WorkerStage: Sendable, Hashable {
    case initializing
    /// Copying SwarmUI's seed to the volume and checking which models are missing.
    case provisioning
    case downloading(DownloadProgress)
    case startingApp
    case ready
    case error(WorkerFailure)

    /// The stage's name on the wire.
    public enum Name: String, Sendable, Hashable, CaseIterable {
        case initializing = "INITIALIZING"
        case provisioning = "PROVISIONING"
        case downloading = "DOWNLOADING"
        case startingApp = "STARTING_APP"
        case ready = "READY"
        case error = "ERROR"
    }

    public var name: Name {
        switch self {
        case .initializing: .initializing
        case .provisioning: .provisioning
        case .downloading: .downloading
        case .startingApp: .startingApp
        case .ready: .ready
        case .error: .error
        }
    }

    /// The download's progress or the error's reason, for status lines; nil for the other stages.
    public var detail: String? {
        switch self {
        case .downloading(let progress): progress.totalBytes > 0 ? progress.summary : nil
        case .error(let failure): "\(failure.kind.rawValue): \(failure.reason)"
        default: nil
        }
    }

    public var failure: WorkerFailure? {
        if case .error(let failure) = self { failure } else { nil }
    }
}

/// What a worker says about itself with each ping: its stage (with the download's progress or the error), its jobs
/// and SwarmUI's newest log lines. The worker builds it, the control plane stores it and the fleet acts on it.
///
/// Read tolerantly: stage names in any case, numbers as doubles, keys this version does not know (kept in `extra`),
/// the RunPod SDK's failed startup check, and the `{"stage", "detail"}` rows stored by earlier versions.
public struct WorkerReport: Sendable, Hashable, Codable {
    /// Nil when the report names no stage this version knows.
    public var stage: WorkerStage?
    public var currentJob: String?
    /// Results finished on the worker and not yet acknowledged by the queue.
    public var pendingResults: Int?
    public var jobsSucceeded: Int?
    public var jobsFailed: Int?
    public var swarmUIRestarts: Int?
    /// SwarmUI's newest log lines, secrets redacted.
    public var logTail: [String]
    /// Keys this version does not read, as they came.
    public var extra: [String: JSONValue]

    public init(
        stage: WorkerStage?,
        currentJob: String? = nil,
        pendingResults: Int? = nil,
        jobsSucceeded: Int? = nil,
        jobsFailed: Int? = nil,
        swarmUIRestarts: Int? = nil,
        logTail: [String] = [],
        extra: [String: JSONValue] = [:]
    ) {
        self.stage = stage
        self.currentJob = currentJob
        self.pendingResults = pendingResults
        self.jobsSucceeded = jobsSucceeded
        self.jobsFailed = jobsFailed
        self.swarmUIRestarts = swarmUIRestarts
        self.logTail = logTail
        self.extra = extra
    }

    /// The stage as sent: a known stage's name, or the text of one this version does not know (`CHECK`, a newer one).
    public var stageName: String? { stage?.name.rawValue ?? extra["stage"]?.stringValue }

    /// The RunPod SDK's failed startup check (`status=unhealthy&check=…&reason=…` on a GET ping): an ERROR.
    public static func unhealthy(check: String?, reason: String?) -> WorkerReport {
        let text = "startup check \(check ?? "unnamed") failed" + (reason.map { ": \($0)" } ?? "")
        return WorkerReport(stage: .error(WorkerFailure(reason: text, kind: .transient)))
    }

    private static let known: Set<String> = [
        "stage", "error", "error_kind", "download", "current_job", "pending_results", "jobs", "swarmui_restarts", "log_tail",
    ]

    public init(json: JSONValue) {
        var fields = json.objectValue ?? [:]
        // Rows stored before the report was typed: {"stage": …, "detail": <the ping's body>}.
        if case .object(var detail)? = fields["detail"], Set(fields.keys).isSubset(of: ["stage", "detail"]) {
            if detail["stage"] == nil, let stage = fields["stage"] { detail["stage"] = stage }
            fields = detail
        }
        let name = fields["stage"]?.stringValue?.uppercased()
        let stage: WorkerStage? =
            switch name.flatMap(WorkerStage.Name.init(rawValue:)) {
            case .initializing?: .initializing
            case .provisioning?: .provisioning
            case .downloading?: .downloading(DownloadProgress(json: fields["download"]) ?? DownloadProgress(doneBytes: 0, totalBytes: 0))
            case .startingApp?: .startingApp
            case .ready?: .ready
            case .error?:
                .error(
                    WorkerFailure(
                        reason: fields["error"]?.stringValue ?? "the worker gave no reason",
                        kind: fields["error_kind"]?.stringValue.flatMap(WorkerFailure.Kind.init(rawValue:)) ?? .transient
                    )
                )
            case nil: nil
            }
        if name == "UNHEALTHY" {
            self = .unhealthy(check: fields["check"]?.stringValue, reason: fields["reason"]?.stringValue)
            return
        }
        self.init(
            stage: stage,
            currentJob: fields["current_job"]?.stringValue,
            pendingResults: fields["pending_results"]?.intValue,
            jobsSucceeded: fields["jobs"]?["succeeded"]?.intValue,
            jobsFailed: fields["jobs"]?["failed"]?.intValue,
            swarmUIRestarts: fields["swarmui_restarts"]?.intValue,
            logTail: fields["log_tail"]?.arrayValue?.compactMap(\.stringValue) ?? [],
            extra: fields.filter { !Self.known.contains($0.key) || ($0.key == "stage" && stage == nil) }
        )
    }

    /// The report as the worker sends it and the store keeps it.
    public var jsonValue: JSONValue {
        var fields = extra
        if let stage {
            fields["stage"] = .string(stage.name.rawValue)
            switch stage {
            case .downloading(let progress): fields["download"] = progress.jsonValue
            case .error(let failure):
                fields["error"] = .string(failure.reason)
                fields["error_kind"] = .string(failure.kind.rawValue)
            default: break
            }
        }
        if let currentJob { fields["current_job"] = .string(currentJob) }
        if let pendingResults { fields["pending_results"] = .int(pendingResults) }
        if jobsSucceeded != nil || jobsFailed != nil {
            fields["jobs"] = ["succeeded": .int(jobsSucceeded ?? 0), "failed": .int(jobsFailed ?? 0)]
        }
        if let swarmUIRestarts { fields["swarmui_restarts"] = .int(swarmUIRestarts) }
        if !logTail.isEmpty { fields["log_tail"] = .array(logTail.map(JSONValue.string)) }
        return .object(fields)
    }

    public init(from decoder: any Decoder) throws {
        self.init(json: try JSONValue(from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        try jsonValue.encode(to: encoder)
    }
}
