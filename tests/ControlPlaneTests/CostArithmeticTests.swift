@testable import ControlPlane
import Foundation
import JobStore
import SwarmCore
import Testing

/// The worked examples of docs/costs.md, on 2026-12-01 (UTC). Prices are chosen so that the figures are round:
/// $0.36/h is $0.0001 a second.
@Suite struct CostArithmeticTests {
    static let day = Date(timeIntervalSince1970: 1_796_083_200)  // 2026-12-01T00:00:00Z
    /// 2026-12-01 at `hour`:`minute` UTC.
    static func at(_ hour: Int, _ minute: Int) -> Date { day.addingTimeInterval(Double(hour * 3600 + minute * 60)) }
    static let evening = at(20, 0)

    static func near(_ a: Double?, _ b: Double) -> Bool { abs((a ?? .nan) - b) < 1e-9 }

    static func attempt(
        _ job: String,
        _ number: Int,
        on worker: String,
        instance: Int,
        dph: Double,
        _ start: Date,
        _ end: Date?,
        _ outcome: String?
    ) -> JobAttemptRecord {
        JobAttemptRecord(
            jobID: job,
            attempt: number,
            endpoint: "ep",
            workerID: worker,
            instanceID: instance,
            dollarsPerHour: dph,
            startedAt: start,
            endedAt: end,
            outcome: outcome,
            videoFrames: 81,
            videoResolution: "480p"
        )
    }

    /// Example 1: one instance, one hour, two jobs; its boot and idle money is shared in proportion to busy time.
    static let idleShare = (
        instances: [
            InstanceCostRecord(
                id: 7,
                label: "swarm-a",
                gpu: "RTX 5090",
                dollarsPerHour: 0.36,
                createdAt: at(10, 0),
                readyAt: at(10, 10),
                endedAt: at(11, 0)
            )
        ],
        attempts: [
            attempt("A", 1, on: "swarm-a", instance: 7, dph: 0.36, at(10, 10), at(10, 20), "COMPLETED"),
            attempt("B", 1, on: "swarm-a", instance: 7, dph: 0.36, at(10, 30), at(10, 50), "COMPLETED"),
        ]
    )

    @Test func idleAndBootTimeIsSharedOverTheHoursJobs() throws {
        let report = CostArithmetic.report(
            from: Self.day,
            to: Self.day,
            group: .job,
            now: Self.evening,
            instances: Self.idleShare.instances,
            attempts: Self.idleShare.attempts,
            external: []
        )
        #expect(report.jobs.map(\.jobID) == ["A", "B"])
        let (a, b) = (report.jobs[0], report.jobs[1])
        #expect(Self.near(a.executionSeconds, 600) && Self.near(a.directCostUSD, 0.06) && Self.near(a.loadedCostUSD, 0.12))
        #expect(Self.near(b.executionSeconds, 1200) && Self.near(b.directCostUSD, 0.12) && Self.near(b.loadedCostUSD, 0.24))
        #expect(a.instanceID == "7" && a.gpu == "RTX 5090" && a.dollarsPerHour == 0.36 && a.provider == "vastai" && a.day == "2026-12-01")
        #expect(Self.near(a.videoSeconds, 5.0625) && a.resolution == "480p" && Self.near(a.falEquivalentUSD, 0.2025))

        let days = CostArithmetic.report(
            from: Self.day,
            to: Self.day,
            group: .day,
            now: Self.evening,
            instances: Self.idleShare.instances,
            attempts: Self.idleShare.attempts,
            external: []
        )
        let row = try #require(days.days.first)
        #expect(days.jobs.isEmpty && days.days.count == 1 && row.day == "2026-12-01" && row.jobsCompleted == 2)
        #expect(Self.near(row.spendUSD, 0.36) && Self.near(row.spendByState.booting, 0.06) && Self.near(row.spendByState.busy, 0.18))
        #expect(Self.near(row.spendByState.idle, 0.12) && row.spendByState.stopped == 0)
        #expect(Self.near(row.spendByInstance["7"], 0.36) && Self.near(row.spendByProvider["vastai"], 0.36) && row.spendByProvider["fal"] == nil)
        #expect(Self.near(row.falEquivalentUSD, 0.405) && Self.near(row.savingUSD, 0.045))
        #expect(days.totals.jobsCompleted == 2 && Self.near(days.totals.spendUSD, 0.36) && Self.near(days.totals.savingUSD, 0.045))
    }

    /// Examples 2 and 3: job C runs on X, X is destroyed mid-job (its attempt never reports); C is retried on Y and
    /// completes there.
    static let retried = (
        instances: [
            InstanceCostRecord(id: 1, label: "swarm-x", dollarsPerHour: 0.36, createdAt: at(10, 0), readyAt: at(10, 5), endedAt: at(10, 30)),
            InstanceCostRecord(id: 2, label: "swarm-y", dollarsPerHour: 0.72, createdAt: at(10, 0), readyAt: at(10, 10), endedAt: at(11, 0)),
        ],
        attempts: [
            attempt("C", 1, on: "swarm-x", instance: 1, dph: 0.36, at(10, 20), nil, nil),
            attempt("C", 2, on: "swarm-y", instance: 2, dph: 0.72, at(10, 40), at(10, 50), "COMPLETED"),
        ]
    )

    @Test func anAttemptOnAnInstanceThatDiedEndsWithTheInstanceAndIsPaidByTheJob() throws {
        let report = CostArithmetic.report(
            from: Self.day,
            to: Self.day,
            group: .day,
            now: Self.evening,
            instances: Self.retried.instances,
            attempts: Self.retried.attempts,
            external: []
        )
        let row = try #require(report.days.first)
        // X: 5 min booting, 15 idle, 10 busy (10:20 to its end at 10:30, not until now).
        #expect(Self.near(row.spendByInstance["1"], 0.18) && Self.near(row.spendByInstance["2"], 0.72))
        #expect(Self.near(row.spendByState.booting, 0.03 + 0.12) && Self.near(row.spendByState.busy, 0.06 + 0.12))
        #expect(Self.near(row.spendByState.idle, 0.09 + 0.48) && Self.near(row.spendUSD, 0.90))
        #expect(row.jobsCompleted == 1)
    }

    @Test func aJobRetriedOnASecondInstancePaysForBothAttempts() throws {
        let report = CostArithmetic.report(
            from: Self.day,
            to: Self.day,
            group: .job,
            now: Self.evening,
            instances: Self.retried.instances,
            attempts: Self.retried.attempts,
            external: []
        )
        let job = try #require(report.jobs.first)
        #expect(report.jobs.count == 1 && job.status == "COMPLETED" && job.instanceID == "2" && job.dollarsPerHour == 0.72)
        #expect(Self.near(job.executionSeconds, 1200) && Self.near(job.directCostUSD, 0.06 + 0.12))
        // The only job of both instance-hours carries all their boot and idle money.
        #expect(Self.near(job.loadedCostUSD, 0.90) && Self.near(report.totals.spendUSD, 0.90))
    }

    @Test func aFalSpillOverCountsWhatFalCharged() throws {
        let fal = ExternalJobCost(
            jobID: "F",
            provider: "fal",
            status: "COMPLETED",
            finishedAt: Self.at(10, 45),
            costUSD: 0.405,
            videoFrames: 81,
            videoResolution: "720p"
        )
        let days = CostArithmetic.report(
            from: Self.day,
            to: Self.day,
            group: .day,
            now: Self.evening,
            instances: Self.idleShare.instances,
            attempts: Self.idleShare.attempts,
            external: [fal]
        )
        let row = try #require(days.days.first)
        #expect(row.jobsCompleted == 3 && Self.near(row.spendUSD, 0.765))
        #expect(Self.near(row.spendByProvider["vastai"], 0.36) && Self.near(row.spendByProvider["fal"], 0.405))
        #expect(Self.near(row.falEquivalentUSD, 0.81) && Self.near(row.savingUSD, 0.045))
        #expect(Self.near(row.spendByState.busy + row.spendByState.idle + row.spendByState.booting, 0.36))

        let jobs = CostArithmetic.report(
            from: Self.day,
            to: Self.day,
            group: .job,
            now: Self.evening,
            instances: Self.idleShare.instances,
            attempts: Self.idleShare.attempts,
            external: [fal]
        )
        let forwarded = try #require(jobs.jobs.first { $0.jobID == "F" })
        #expect(forwarded.provider == "fal" && forwarded.instanceID == nil && forwarded.executionSeconds == 0)
        #expect(
            Self.near(forwarded.directCostUSD, 0.405) && Self.near(forwarded.loadedCostUSD, 0.405) && Self.near(forwarded.falEquivalentUSD, 0.405)
        )
        #expect(jobs.totals == days.totals)
    }

    @Test func everyDayOfTheRangeIsListedAndOpenIntervalsStopAtNow() throws {
        let instance = InstanceCostRecord(id: 9, label: "swarm-z", dollarsPerHour: 0.36, createdAt: Self.at(23, 0), readyAt: Self.at(23, 30))
        let nextDay = Self.day.addingTimeInterval(86_400)
        let now = nextDay.addingTimeInterval(1800)  // 00:30 the next day
        let report = CostArithmetic.report(
            from: Self.day.addingTimeInterval(-86_400),
            to: nextDay.addingTimeInterval(86_400),
            group: .day,
            now: now,
            instances: [instance],
            attempts: [Self.attempt("R", 1, on: "swarm-z", instance: 9, dph: 0.36, Self.at(23, 50), nil, nil)],
            external: []
        )
        #expect(report.days.map(\.day) == ["2026-11-30", "2026-12-01", "2026-12-02", "2026-12-03"])
        #expect(report.days[0].spendUSD == 0 && report.days[3].spendUSD == 0)
        #expect(Self.near(report.days[1].spendUSD, 0.36) && Self.near(report.days[2].spendUSD, 0.18))
        // A running job is busy time but not yet a finished job.
        #expect(Self.near(report.days[2].spendByState.busy, 0.18) && report.totals.jobsCompleted == 0)
        #expect(report.from == "2026-11-30" && report.to == "2026-12-03")
    }

    @Test func videoSizeComesFromFalStyleOrPresetInputs() {
        #expect(CostVideo.size(of: ["num_frames": 121, "resolution": "580p"])! == (121, "580p"))
        #expect(CostVideo.size(of: ["preset": "wan22-i2v-lightx2v", "prompt": "x"])! == (81, "480p"))
        #expect(CostVideo.size(of: ["preset": "wan22-i2v-lightx2v", "width": 1280, "height": 720, "video": ["frames": 49]])! == (49, "720p"))
        #expect(CostVideo.size(of: ["width": 1024, "height": 576, "video": ["frames": 81]])! == (81, "580p"))
        #expect(CostVideo.size(of: ["width": 624, "height": 624, "video": [:]])! == (81, "480p"))
        #expect(CostVideo.size(of: ["prompt": "an image", "model": "flux"]) == nil)
    }
}
