import Foundation
import Synchronization
import JobProtocol
import JobStore
import Logging
import SwarmCore

/// `CostReporting` on the job store: reads the attempt and instance records (`CostRecordStore`) and hands them to
/// `CostArithmetic`.
public struct StoreCostReporter: CostReporting {
    let store: any ControlPlaneStore

    public init(store: any ControlPlaneStore) {
        self.store = store
    }

    public func costReport(endpoint: String, from: Date, to: Date, group: CostReport.Grouping, now: Date) async throws -> CostReport {
        let start = CostArithmetic.floorDay(from)
        let last = CostArithmetic.floorDay(to)
        let end = last.addingTimeInterval(CostArithmetic.day)
        // A day earlier too: the first attempts of a job retried across midnight are part of its cost.
        var attempts = try await store.jobAttempts(endpoint: endpoint, overlapping: start.addingTimeInterval(-CostArithmetic.day), end)
        // An attempt still open may belong to a job that ended without this worker's report (cancelled, timed out,
        // failed by lease expiry): the job's record says when and how.
        let lastAttempt = Dictionary(attempts.map { ($0.jobID, $0.attempt) }, uniquingKeysWith: max)
        for index in attempts.indices where attempts[index].endedAt == nil && lastAttempt[attempts[index].jobID] == attempts[index].attempt {
            guard let job = try await store.job(id: attempts[index].jobID) else {
                // Deleted by retention without a recorded end: nothing says how long it ran.
                attempts[index].endedAt = attempts[index].startedAt
                attempts[index].outcome = "FAILED"
                continue
            }
            if job.status.isFinal, job.attempts == attempts[index].attempt {
                attempts[index].endedAt = job.finishedAt ?? now
                attempts[index].outcome = job.status.rawValue
            }
        }
        let instances = try await store.instanceCosts(overlapping: start, end)
        return CostArithmetic.report(
            from: start,
            to: last,
            group: group,
            now: now,
            instances: instances,
            attempts: attempts,
            external: try await forwardedJobs(endpoint: endpoint, start: start, end: end)
        )
    }

    /// Jobs forwarded to another provider (fal.ai), with what it charged and the list price of what it made.
    func forwardedJobs(endpoint: String, start: Date, end: Date) async throws -> [ExternalJobCost] {
        try await store.forwardedJobs(endpoint: endpoint, finishedIn: start, end).map { job in
            let video = CostVideo.size(of: job.input)
            return ExternalJobCost(
                jobID: job.jobID,
                provider: job.provider,
                status: job.status,
                finishedAt: job.finishedAt,
                costUSD: job.costUSD,
                videoFrames: video?.frames,
                videoResolution: video?.resolution
            )
        }
    }
}

/// What the control plane writes for the cost report as workers take, finish and become ready. A failed write is
/// logged and the request goes on: a job must not wait for its accounting.
final class CostRecording: Sendable {
    /// Workers whose READY was recorded by this process: later pings (every few seconds) skip the write.
    private let readyRecorded = Mutex<Set<String>>([])

    static func taken(_ jobs: [JobRecord], worker: String, store: any CostRecordStore, logger: Logger) async {
        guard !jobs.isEmpty else { return }
        let attempts = jobs.map { job in
            let video = CostVideo.size(of: job.input)
            return JobAttemptRecord(
                jobID: job.id,
                attempt: job.attempts,
                endpoint: job.endpoint,
                workerID: worker,
                startedAt: job.startedAt ?? Date(),
                videoFrames: video?.frames,
                videoResolution: video?.resolution
            )
        }
        do {
            try await store.recordAttemptsStarted(attempts)
        } catch {
            logger.warning("cost records: \(error)")
        }
    }

    static func finished(_ job: JobRecord, store: any CostRecordStore, logger: Logger) async {
        do {
            try await store.recordAttemptEnded(jobID: job.id, attempt: job.attempts, at: job.finishedAt ?? Date(), outcome: job.status.rawValue)
        } catch {
            logger.warning("cost records: \(error)")
        }
    }

    /// A requeued job's attempt ended now, not for good.
    static func requeued(_ job: JobRecord, store: any CostRecordStore, now: Date, logger: Logger) async {
        do {
            try await store.recordAttemptEnded(jobID: job.id, attempt: job.attempts, at: now, outcome: JobStatus.inQueue.rawValue)
        } catch {
            logger.warning("cost records: \(error)")
        }
    }

    func pinged(worker: String, report: WorkerReport?, store: any CostRecordStore, now: Date, logger: Logger) async {
        guard report?.stage == .ready else { return }
        guard readyRecorded.withLock({ $0.insert(worker).inserted }) else { return }
        do {
            try await store.recordWorkerReady(label: worker, at: now)
        } catch {
            logger.warning("cost records: \(error)")
        }
    }
}

/// The size of a job's video for fal.ai's list price, from its input: fal-style `num_frames`/`resolution`, or our
/// input (`video.frames`, `width`×`height`) as the Wan presets and `FalWan` write it. Nil for an image job.
enum CostVideo {
    /// The Wan presets' output when the input does not say: 81 frames at 832×480.
    static let presetFrames = 81

    static func size(of input: JSONValue) -> (frames: Int, resolution: String)? {
        if input["num_frames"] != nil || input["resolution"]?.stringValue.map(FalPriceList.dollarsPerVideoSecond.keys.contains) == true {
            return (input["num_frames"]?.intValue ?? presetFrames, input["resolution"]?.stringValue ?? "720p")
        }
        let preset = input["preset"]?.stringValue?.lowercased() ?? ""
        guard input["video"]?.objectValue != nil || preset.contains("wan") else { return nil }
        let frames = input["video"]?["frames"]?.intValue ?? presetFrames
        let width = input["width"]?.intValue ?? 832
        let height = input["height"]?.intValue ?? 480
        return (frames, resolution(width: width, height: height))
    }

    /// fal's resolution names by the short side: 480 (480p), 576 (580p), 720 (720p).
    static func resolution(width: Int, height: Int) -> String {
        switch min(width, height) {
        case ...480: "480p"
        case ...624 where max(width, height) <= 832: "480p"  // fal's 1:1 480p is 624×624
        case ...576: "580p"
        case ...768 where max(width, height) <= 1024: "580p"
        default: "720p"
        }
    }
}
