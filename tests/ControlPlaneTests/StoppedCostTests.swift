@testable import ControlPlane
import Foundation
import JobStore
import SwarmCore
import Testing

/// docs/costs.md's example 5: a warm stop bills the disk's storage, not the GPU.
@Suite struct StoppedCostTests {
    typealias Day = CostArithmeticTests

    /// Instance 9 ($0.36/h; 120 GB at $0.15/GB/month = $0.025/h stopped): created 10:00, READY 10:10, job D
    /// 10:10–10:20, stopped 10:30, resumed 12:30, job E 12:40–12:50, destroyed 13:00.
    static let warmStop = (
        instances: [
            InstanceCostRecord(
                id: 9,
                label: "swarm-w",
                dollarsPerHour: 0.36,
                createdAt: Day.at(10, 0),
                readyAt: Day.at(10, 10),
                endedAt: Day.at(13, 0),
                storageDollarsPerHour: InstanceBilling.storagePerHour(diskGB: 120, perGBMonth: 0.15),
                stops: [InstanceBilling.Stop(stoppedAt: Day.at(10, 30), resumedAt: Day.at(12, 30))]
            )
        ],
        attempts: [
            Day.attempt("D", 1, on: "swarm-w", instance: 9, dph: 0.36, Day.at(10, 10), Day.at(10, 20), "COMPLETED"),
            Day.attempt("E", 1, on: "swarm-w", instance: 9, dph: 0.36, Day.at(12, 40), Day.at(12, 50), "COMPLETED"),
        ]
    )

    static func report(_ group: CostReport.Grouping) -> CostReport {
        CostArithmetic.report(
            from: Day.day,
            to: Day.day,
            group: group,
            now: Day.evening,
            instances: warmStop.instances,
            attempts: warmStop.attempts,
            external: []
        )
    }

    @Test func aStoppedIntervalIsBilledAtTheStoragePrice() throws {
        let row = try #require(Self.report(.day).days.first)
        // Ran 10:00–10:30 and 12:30–13:00: an hour at $0.36; stopped two hours at $0.025.
        #expect(Day.near(row.spendByState.booting, 0.06) && Day.near(row.spendByState.busy, 0.12))
        #expect(Day.near(row.spendByState.idle, 0.18) && Day.near(row.spendByState.stopped, 0.05))
        #expect(Day.near(row.spendUSD, 0.41) && Day.near(row.spendByInstance["9"], 0.41) && Day.near(row.spendByProvider["vastai"], 0.41))
    }

    @Test func theStoppedMoneyOfAnHourWithJobsIsSharedLikeItsIdleMoney() throws {
        let jobs = Self.report(.job).jobs
        #expect(jobs.map(\.jobID) == ["D", "E"])
        // Hour 10: booting $0.06 + idle $0.06 + stopped $0.0125 over D; hour 12: idle $0.12 + stopped $0.0125 over E.
        #expect(Day.near(jobs[0].directCostUSD, 0.06) && Day.near(jobs[0].loadedCostUSD, 0.1925))
        #expect(Day.near(jobs[1].directCostUSD, 0.06) && Day.near(jobs[1].loadedCostUSD, 0.1925))
    }
}
