import Foundation
import JobProtocol
import SwarmCore
import Testing

@testable import JobStore

/// The warm stops' history and the storage price (migration 9), on every enabled backend.
@Suite struct FleetStopScenarios {
    @Test(arguments: Backend.enabled)
    func stoppedTimeIsSpentAtTheStoragePriceInTheBudgetAndTheCostRecords(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let fleet = try #require(store as? any FleetRecordStore)
            let costs = try #require(store as? any CostRecordStore)
            // $3.60/h running, $0.36/h stopped: created at 0, stopped 600–4200, stopped again from 6000 (still).
            try await fleet.insertFleetInstance(
                FleetInstanceRecord(id: 5, label: "swarm-s", dphTotal: 3.6, createdAt: t0, storageDollarsPerHour: 0.36)
            )
            #expect(try await fleet.fleetInstances().first?.storageDollarsPerHour == 0.36)
            try await fleet.recordFleetStop(id: 5, at: at(600))
            try await fleet.recordFleetStop(id: 5, at: at(600))  // recorded once
            try await fleet.recordFleetResume(id: 5, at: at(4200))
            try await fleet.recordFleetResume(id: 5, at: at(4300))  // no open stop: nothing changes
            try await fleet.recordFleetStop(id: 5, at: at(6000))

            // Running 600 + 1800 s at $0.001/s, stopped 3600 + 1200 s at $0.0001/s.
            let spent = try await fleet.fleetSpent(since: t0, now: at(7200))
            #expect(abs(spent - (2.4 + 0.48)) < 1e-9)
            // From 3600: stopped 600 s, running 1800 s, stopped 1200 s.
            #expect(abs(try await fleet.fleetSpent(since: at(3600), now: at(7200)) - (0.06 + 1.8 + 0.12)) < 1e-9)

            let stops = [InstanceBilling.Stop(stoppedAt: at(600), resumedAt: at(4200)), InstanceBilling.Stop(stoppedAt: at(6000))]
            #expect(try await fleet.fleetStops(overlapping: t0, at(7200))[5] == stops)
            #expect(try await fleet.fleetStops(overlapping: at(4200), at(5000))[5] == nil)
            let instance = try #require(try await costs.instanceCosts(overlapping: t0, at(7200)).first)
            #expect(instance.stops == stops && instance.storageDollarsPerHour == 0.36)

            // Destroyed while stopped: its open stop ends with it.
            try await fleet.removeFleetInstance(id: 5, at: at(8000))
            #expect(try await fleet.fleetStops(overlapping: at(7200), at(9000))[5] == [stops[1]])
            #expect(try await fleet.fleetStops(overlapping: at(8000), at(9000)).isEmpty)
            #expect(abs(try await fleet.fleetSpent(since: t0, now: at(9000)) - (2.4 + 0.48 + 0.08)) < 1e-9)
        }
    }

    @Test(arguments: Backend.enabled)
    func aWorkersIdleTimeStartsAtItsLastAttemptsEndOrItsReady(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let fleet = try #require(store as? any FleetRecordStore)
            let costs = try #require(store as? any CostRecordStore)
            for (id, label) in [(1, "swarm-a"), (2, "swarm-b"), (3, "swarm-c"), (4, "swarm-gone")] {
                try await fleet.insertFleetInstance(FleetInstanceRecord(id: id, label: label, dphTotal: 1, createdAt: t0))
            }
            // a: READY at 100, then two jobs, the last ending at 900. b: READY at 200, no job. c: never READY.
            try await costs.recordWorkerReady(label: "swarm-a", at: at(100))
            try await costs.recordWorkerReady(label: "swarm-b", at: at(200))
            try await costs.recordAttemptsStarted([
                JobAttemptRecord(jobID: "j1", attempt: 1, endpoint: "ep", workerID: "swarm-a", startedAt: at(300)),
                JobAttemptRecord(jobID: "j2", attempt: 1, endpoint: "ep", workerID: "swarm-a", startedAt: at(600)),
            ])
            try await costs.recordAttemptEnded(jobID: "j2", attempt: 1, at: at(900), outcome: "COMPLETED")
            try await costs.recordAttemptEnded(jobID: "j1", attempt: 1, at: at(500), outcome: "COMPLETED")
            try await costs.recordWorkerReady(label: "swarm-gone", at: at(50))
            try await fleet.removeFleetInstance(id: 4, at: at(60))
            #expect(try await fleet.fleetWorkersIdleSince() == ["swarm-a": at(900), "swarm-b": at(200)])
        }
    }
}
