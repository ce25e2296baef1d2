import Foundation
import JobStore
import SwarmCore

/// A job another provider ran for us (a fal.ai spill-over), with what that provider charged.
public struct ExternalJobCost: Sendable, Hashable {
    public var jobID: String
    /// `fal`.
    public var provider: String
    public var status: String
    public var finishedAt: Date
    public var costUSD: Double
    public var videoFrames: Int?
    public var videoResolution: String?

    public init(
        jobID: String,
        provider: String,
        status: String,
        finishedAt: Date,
        costUSD: Double,
        videoFrames: Int? = nil,
        videoResolution: String? = nil
    ) {
        self.jobID = jobID
        self.provider = provider
        self.status = status
        self.finishedAt = finishedAt
        self.costUSD = costUSD
        self.videoFrames = videoFrames
        self.videoResolution = videoResolution
    }
}

/// The cost report from records, without I/O: see docs/costs.md for the rules and worked examples.
///
/// - Instance money is `$/h × seconds` from creation to the end of billing, split by UTC hour into booting (until
///   the worker's first READY), busy (some attempt running) and idle (the rest); during a warm stop it is billed its
///   storage price instead, as `stopped`.
/// - A job's direct cost is the sum over its attempts of `seconds × $/h` of the instance that ran it; an attempt
///   whose instance died ends where the instance ended, and is paid by the job.
/// - A job's loaded cost adds, for each hour it ran in, a share of that instance-hour's booting, idle and stopped money in
///   proportion to its seconds in the hour. An hour without jobs has nobody to share with: its money stays in the
///   day's idle/booting spend only.
/// - Forwarded jobs cost what the provider charged, on the day they finished.
/// - fal.ai's equivalent counts completed video jobs at `FalPriceList`.
public enum CostArithmetic {
    public static let hour: TimeInterval = 3600
    public static let day: TimeInterval = 86_400
    /// The statuses a job ends in; any other outcome (IN_QUEUE after a retryable failure, none) is not final.
    static let finalStatuses: Set<String> = ["COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]

    /// `from` and `to` are the starts of the first and last UTC day of the report; `now` caps every open interval.
    public static func report(
        from: Date,
        to: Date,
        group: CostReport.Grouping,
        now: Date,
        instances: [InstanceCostRecord],
        attempts: [JobAttemptRecord],
        external: [ExternalJobCost]
    ) -> CostReport {
        let start = from
        let end = min(to.addingTimeInterval(day), now)
        let dayNames = stride(from: from.timeIntervalSince1970, through: to.timeIntervalSince1970, by: day).map {
            dayName(Date(timeIntervalSince1970: $0))
        }
        var days = Dictionary(
            uniqueKeysWithValues: dayNames.map {
                (
                    $0,
                    DayCost(
                        day: $0,
                        jobsCompleted: 0,
                        spendUSD: 0,
                        spendByState: SpendByState(),
                        spendByProvider: [:],
                        spendByInstance: [:],
                        falEquivalentUSD: 0,
                        savingUSD: 0
                    )
                )
            }
        )

        // Attempts: where each ended, on which instance.
        let byJob = Dictionary(grouping: attempts, by: \.jobID).mapValues { $0.sorted { $0.attempt < $1.attempt } }
        let instanceByID = Dictionary(instances.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let instanceByLabel = Dictionary(instances.map { ($0.label, $0) }, uniquingKeysWith: { first, _ in first })
        var spans: [Span] = []
        for (_, list) in byJob {
            for (index, attempt) in list.enumerated() {
                let instance = attempt.instanceID.flatMap { instanceByID[$0] } ?? instanceByLabel[attempt.workerID]
                var stop = attempt.endedAt ?? now
                if attempt.endedAt == nil, index + 1 < list.count { stop = min(stop, list[index + 1].startedAt) }
                if let billed = instance?.endedAt { stop = min(stop, billed) }
                spans.append(Span(attempt: attempt, instance: instance, start: attempt.startedAt, end: max(attempt.startedAt, stop)))
            }
        }

        // Instances, hour by hour: state money, and the hour's overhead shared over its jobs.
        var overheadShare: [String: Double] = [:]
        let spansByInstance = Dictionary(grouping: spans.filter { $0.instance != nil }, by: { $0.instance!.id })
        for instance in instances {
            let billedEnd = min(instance.endedAt ?? now, now)
            let own = spansByInstance[instance.id] ?? []
            // A job ran, so the worker was ready by then even if its READY ping was never recorded.
            let ready = [instance.readyAt, own.map(\.start).min()].compactMap { $0 }.min() ?? billedEnd
            let rate = instance.dollarsPerHour / hour
            let storageRate = (instance.storageDollarsPerHour ?? 0) / hour
            var cursor = max(floorHour(max(instance.createdAt, start)), floorHour(start))
            while cursor < min(billedEnd, end) {
                let next = cursor.addingTimeInterval(hour)
                let slot = (max(cursor, start, instance.createdAt), min(next, end, billedEnd))
                cursor = next
                guard slot.1 > slot.0 else { continue }
                // Booting, busy and idle count the time it ran; its warm stops bill storage alone.
                let running = InstanceBilling.running((slot.0, slot.1), stops: instance.stops)
                var (booting, busy, runningSeconds) = (0.0, 0.0, 0.0)
                for piece in running {
                    booting += overlap((piece.start, piece.end), (instance.createdAt, ready))
                    busy += unionLength(own.map { ($0.start, $0.end) }, within: (max(piece.start, ready), piece.end))
                    runningSeconds += piece.end.timeIntervalSince(piece.start)
                }
                let idle = max(0, runningSeconds - booting - busy)
                let stopped = max(0, slot.1.timeIntervalSince(slot.0) - runningSeconds) * storageRate
                let name = dayName(slot.0)
                guard var row = days[name] else { continue }
                row.spendByState.booting += booting * rate
                row.spendByState.busy += busy * rate
                row.spendByState.idle += idle * rate
                row.spendByState.stopped += stopped
                let money = (booting + busy + idle) * rate + stopped
                row.spendByInstance[String(instance.id), default: 0] += money
                row.spendByProvider["vastai", default: 0] += money
                row.spendUSD += money
                days[name] = row
                let jobSeconds = own.map { ($0.attempt.jobID, overlap(slot, ($0.start, $0.end))) }.filter { $0.1 > 0 }
                let total = jobSeconds.reduce(0) { $0 + $1.1 }
                if total > 0 {
                    for (job, seconds) in jobSeconds { overheadShare[job, default: 0] += ((booting + idle) * rate + stopped) * seconds / total }
                }
            }
        }

        // Jobs run here that ended (for good) within the range.
        var jobRows: [JobCost] = []
        let spansByJob = Dictionary(grouping: spans, by: \.attempt.jobID)
        for (job, list) in spansByJob {
            let ordered = list.sorted { $0.attempt.attempt < $1.attempt.attempt }
            guard let last = ordered.last, let outcome = last.attempt.outcome, finalStatuses.contains(outcome), last.end >= start, last.end < end
            else { continue }
            let seconds = ordered.reduce(0) { $0 + $1.end.timeIntervalSince($1.start) }
            let direct = ordered.reduce(0) {
                $0 + $1.end.timeIntervalSince($1.start) * ($1.instance?.dollarsPerHour ?? $1.attempt.dollarsPerHour ?? 0) / hour
            }
            let fal = outcome == "COMPLETED" ? falPrice(frames: last.attempt.videoFrames, resolution: last.attempt.videoResolution) : nil
            let name = dayName(last.end)
            jobRows.append(
                JobCost(
                    jobID: job,
                    day: name,
                    provider: "vastai",
                    status: outcome,
                    instanceID: last.instance.map { String($0.id) } ?? last.attempt.instanceID.map(String.init),
                    gpu: last.instance?.gpu ?? last.attempt.gpu,
                    dollarsPerHour: last.instance?.dollarsPerHour ?? last.attempt.dollarsPerHour,
                    executionSeconds: seconds,
                    directCostUSD: direct,
                    loadedCostUSD: direct + (overheadShare[job] ?? 0),
                    videoSeconds: last.attempt.videoFrames.map(FalPriceList.videoSeconds(frames:)),
                    resolution: last.attempt.videoResolution,
                    falEquivalentUSD: fal
                )
            )
        }
        for job in external where job.finishedAt >= start && job.finishedAt < end && spansByJob[job.jobID] == nil {
            let fal = job.status == "COMPLETED" ? falPrice(frames: job.videoFrames, resolution: job.videoResolution) : nil
            let name = dayName(job.finishedAt)
            if var row = days[name] {
                row.spendByProvider[job.provider, default: 0] += job.costUSD
                row.spendUSD += job.costUSD
                days[name] = row
            }
            jobRows.append(
                JobCost(
                    jobID: job.jobID,
                    day: name,
                    provider: job.provider,
                    status: job.status,
                    instanceID: nil,
                    gpu: nil,
                    dollarsPerHour: nil,
                    executionSeconds: 0,
                    directCostUSD: job.costUSD,
                    loadedCostUSD: job.costUSD,
                    videoSeconds: job.videoFrames.map(FalPriceList.videoSeconds(frames:)),
                    resolution: job.videoResolution,
                    falEquivalentUSD: fal
                )
            )
        }
        jobRows.sort { ($0.day, $0.jobID) < ($1.day, $1.jobID) }
        for job in jobRows where job.status == "COMPLETED" {
            guard var row = days[job.day] else { continue }
            row.jobsCompleted += 1
            row.falEquivalentUSD += job.falEquivalentUSD ?? 0
            days[job.day] = row
        }

        let dayRows = dayNames.compactMap { days[$0] }.map { row -> DayCost in
            var row = row
            row.savingUSD = row.falEquivalentUSD - row.spendUSD
            return row
        }
        let spend = dayRows.reduce(0) { $0 + $1.spendUSD }
        let falTotal = dayRows.reduce(0) { $0 + $1.falEquivalentUSD }
        return CostReport(
            from: dayName(from),
            to: dayName(to),
            group: group,
            days: group == .day ? dayRows : [],
            jobs: group == .job ? jobRows : [],
            totals: CostTotals(
                jobsCompleted: dayRows.reduce(0) { $0 + $1.jobsCompleted },
                spendUSD: spend,
                falEquivalentUSD: falTotal,
                savingUSD: falTotal - spend
            )
        )
    }

    static func falPrice(frames: Int?, resolution: String?) -> Double? {
        guard let frames, let resolution else { return nil }
        return FalPriceList.price(frames: frames, resolution: resolution)
    }

    private struct Span {
        var attempt: JobAttemptRecord
        var instance: InstanceCostRecord?
        var start: Date
        var end: Date
    }

    public static func dayName(_ date: Date) -> String {
        let days = Int((date.timeIntervalSince1970 / day).rounded(.down))
        let start = Date(timeIntervalSince1970: Double(days) * day)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day], from: start)
        return String(format: "%04d-%02d-%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
    }

    /// The start of the UTC day named `YYYY-MM-DD`, or nil.
    public static func dayStart(_ name: String) -> Date? {
        let parts = name.split(separator: "-", omittingEmptySubsequences: false)
        guard name.count == 10, parts.count == 3, let year = Int(parts[0]), let month = Int(parts[1]), let dayOfMonth = Int(parts[2]) else {
            return nil
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let components = DateComponents(year: year, month: month, day: dayOfMonth)
        guard components.isValidDate(in: calendar), let date = calendar.date(from: components) else { return nil }
        return date
    }

    public static func floorDay(_ date: Date) -> Date {
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 / day).rounded(.down) * day)
    }

    static func floorHour(_ date: Date) -> Date {
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 / hour).rounded(.down) * hour)
    }

    static func overlap(_ a: (Date, Date), _ b: (Date, Date)) -> TimeInterval {
        max(0, min(a.1, b.1).timeIntervalSince(max(a.0, b.0)))
    }

    /// Seconds of `within` covered by at least one interval.
    static func unionLength(_ intervals: [(Date, Date)], within window: (Date, Date)) -> TimeInterval {
        let clipped = intervals.map { (max($0.0, window.0), min($0.1, window.1)) }.filter { $0.1 > $0.0 }.sorted { $0.0 < $1.0 }
        var total: TimeInterval = 0
        var current: (Date, Date)?
        for interval in clipped {
            if let open = current, interval.0 <= open.1 {
                current = (open.0, max(open.1, interval.1))
            } else {
                if let open = current { total += open.1.timeIntervalSince(open.0) }
                current = interval
            }
        }
        if let open = current { total += open.1.timeIntervalSince(open.0) }
        return total
    }
}
