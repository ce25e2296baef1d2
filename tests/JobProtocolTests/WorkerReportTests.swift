import Foundation
import JobProtocol
import SwarmCore
import Testing

@Suite struct WorkerReportTests {
    static let reports: [WorkerReport] = [
        WorkerReport(stage: .initializing),
        WorkerReport(stage: .downloading(DownloadProgress(doneBytes: 12_100_000_000, totalBytes: 33_200_000_000)), logTail: ["fetching wan"]),
        WorkerReport(stage: .error(WorkerFailure(reason: "'wan' needs CIVITAI_API_TOKEN", kind: .permanent)), pendingResults: 0),
        WorkerReport(
            stage: .ready,
            currentJob: "j1",
            pendingResults: 2,
            jobsSucceeded: 5,
            jobsFailed: 1,
            swarmUIRestarts: 1,
            logTail: ["a", "b"],
            extra: ["gpu": "RTX 5090"]
        ),
    ]

    /// The worker sends `jsonValue`; the store writes and reads the `Codable` form; both must give the report back.
    @Test(arguments: reports)
    func aReportRoundTripsOnTheWireAndInTheStore(_ report: WorkerReport) throws {
        #expect(WorkerReport(json: report.jsonValue) == report)
        #expect(try JSONDecoder().decode(WorkerReport.self, from: JSONEncoder().encode(report)) == report)
    }

    @Test func theWireNamesAreTheContracts() {
        let downloading = WorkerReport(stage: .downloading(DownloadProgress(doneBytes: 1, totalBytes: 4))).jsonValue
        #expect(downloading == ["stage": "DOWNLOADING", "download": ["done_bytes": 1, "total_bytes": 4, "percent": 25.0]])
        let error = WorkerReport(stage: .error(WorkerFailure(reason: "disk too small", kind: .permanent))).jsonValue
        #expect(error == ["stage": "ERROR", "error": "disk too small", "error_kind": "permanent"])
        #expect(WorkerStage.Name.allCases.map(\.rawValue) == ["INITIALIZING", "PROVISIONING", "DOWNLOADING", "STARTING_APP", "READY", "ERROR"])
    }

    @Test func olderAndLooserReportsStillRead() throws {
        // A row stored before the report was typed: {"stage", "detail": <the ping's body>}.
        let stored = #"{"detail":{"download":{"done_bytes":5,"total_bytes":10},"log_tail":["x"],"stage":"DOWNLOADING"},"stage":"DOWNLOADING"}"#
        let old = try JSONDecoder().decode(WorkerReport.self, from: Data(stored.utf8))
        #expect(old.stage == .downloading(DownloadProgress(doneBytes: 5, totalBytes: 10)))
        #expect(old.logTail == ["x"])
        // The SDK's failed startup check as it was stored.
        let unhealthy = try JSONDecoder().decode(
            WorkerReport.self,
            from: Data(#"{"detail":{"check":"gpu","reason":"no CUDA"},"stage":"unhealthy"}"#.utf8)
        )
        #expect(unhealthy.stage == .error(WorkerFailure(reason: "startup check gpu failed: no CUDA", kind: .transient)))
        // An ERROR without a kind is transient; an unknown stage is kept, not lost.
        #expect(WorkerReport(json: ["stage": "error", "error": "boom"]).stage == .error(WorkerFailure(reason: "boom", kind: .transient)))
        let future = WorkerReport(json: ["stage": "WARMING_UP", "jobs": ["succeeded": 3.0, "failed": 0]])
        #expect(future.stage == nil && future.jobsSucceeded == 3)
        #expect(future.jsonValue["stage"] == "WARMING_UP" && future.stageName == "WARMING_UP")
        // A download with no total yet.
        #expect(WorkerReport(json: ["stage": "DOWNLOADING"]).stage?.name == .downloading)
    }
}
