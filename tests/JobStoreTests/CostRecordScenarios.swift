import Foundation
import JobProtocol
import SwarmCore
import Testing

@testable import JobStore

/// The cost records (migration 7), on every enabled backend.
@Suite struct CostRecordScenarios {
    private func records(_ store: any JobStore) throws -> (any CostRecordStore, any FleetRecordStore) {
        (try #require(store as? any CostRecordStore), try #require(store as? any FleetRecordStore))
    }

    @Test(arguments: Backend.enabled)
    func attemptsCopyTheInstancesPriceAndGPUAndEndOnce(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let (costs, fleet) = try records(store)
            try await fleet.insertFleetInstance(FleetInstanceRecord(id: 42, label: "swarm-a", dphTotal: 0.5, createdAt: t0))
            try await costs.recordFleetInstanceGPU(id: 42, gpu: "RTX 5090")
            try await costs.recordFleetInstanceGPU(id: 42, gpu: "RTX 4090")  // the first one stays
            try await costs.recordAttemptsStarted([
                JobAttemptRecord(
                    jobID: "j1",
                    attempt: 1,
                    endpoint: "ep",
                    workerID: "swarm-a",
                    startedAt: at(100),
                    videoFrames: 81,
                    videoResolution: "480p"
                ),
                JobAttemptRecord(jobID: "j2", attempt: 1, endpoint: "ep", workerID: "local-1", startedAt: at(110)),
            ])
            // A repeated record (a retried request) changes nothing.
            try await costs.recordAttemptsStarted([JobAttemptRecord(jobID: "j1", attempt: 1, endpoint: "ep", workerID: "other", startedAt: at(999))])
            try await costs.recordAttemptEnded(jobID: "j1", attempt: 1, at: at(200), outcome: "COMPLETED")
            try await costs.recordAttemptEnded(jobID: "j1", attempt: 1, at: at(300), outcome: "FAILED")

            let attempts = try await costs.jobAttempts(endpoint: "ep", overlapping: t0, at(3600))
            #expect(attempts.count == 2)
            let first = try #require(attempts.first { $0.jobID == "j1" })
            #expect(first.workerID == "swarm-a" && first.instanceID == 42 && first.dollarsPerHour == 0.5 && first.gpu == "RTX 5090")
            #expect(first.startedAt == at(100) && first.endedAt == at(200) && first.outcome == "COMPLETED")
            #expect(first.videoFrames == 81 && first.videoResolution == "480p")
            let local = try #require(attempts.first { $0.jobID == "j2" })
            #expect(local.instanceID == nil && local.dollarsPerHour == nil && local.endedAt == nil && local.outcome == nil)

            // Ranges: ended before, started after, other endpoint.
            #expect(try await costs.jobAttempts(endpoint: "ep", overlapping: at(250), at(3600)).map(\.jobID) == ["j2"])
            #expect(try await costs.jobAttempts(endpoint: "ep", overlapping: t0, at(105)).map(\.jobID) == ["j1"])
            #expect(try await costs.jobAttempts(endpoint: "other", overlapping: t0, at(3600)).isEmpty)
        }
    }

    @Test(arguments: Backend.enabled)
    func retentionDeletesTheAttemptsOfTheJobsItDeletes(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let (costs, _) = try records(store)
            _ = try await store.enqueue([newJob("old"), newJob("recent"), newJob("running")], now: t0)
            let taken = try await store.take(endpoint: "ep", workerID: "w", limit: 3, leaseUntil: at(100_000), now: at(1))
            #expect(taken.count == 3)
            try await costs.recordAttemptsStarted(
                taken.map { JobAttemptRecord(jobID: $0.id, attempt: 1, endpoint: "ep", workerID: "w", startedAt: at(1)) }
            )
            _ = try await store.finish(id: "old", workerID: "w", result: .completed(output: nil), maxAttempts: 3, now: at(10))
            _ = try await store.finish(id: "recent", workerID: "w", result: .completed(output: nil), maxAttempts: 3, now: at(2_000))

            let report = try await store.expire(now: at(3_620), maxAttempts: 3, retention: .seconds(3600))
            #expect(report.deleted == 1)
            #expect(try await store.job(id: "old") == nil)
            let left = try await costs.jobAttempts(endpoint: "ep", overlapping: t0, at(100_000)).map(\.jobID).sorted()
            #expect(left == ["recent", "running"])
        }
    }

    @Test(arguments: Backend.enabled)
    func aBatchTakesAttemptsAreRecordedInChunks(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let (costs, fleet) = try records(store)
            try await fleet.insertFleetInstance(FleetInstanceRecord(id: 5, label: "swarm-b", dphTotal: 0.25, createdAt: t0))
            let attempts = (0..<450).map {
                JobAttemptRecord(jobID: "b\($0)", attempt: 1, endpoint: "ep", workerID: "swarm-b", startedAt: at(Double($0)))
            }
            try await costs.recordAttemptsStarted(attempts)
            let read = try await costs.jobAttempts(endpoint: "ep", overlapping: t0, at(3600))
            #expect(read.count == 450 && Set(read.map(\.jobID)).count == 450)
            #expect(read.allSatisfy { $0.instanceID == 5 && $0.dollarsPerHour == 0.25 && $0.videoFrames == nil })
        }
    }

    @Test(arguments: Backend.enabled)
    func instancesCarryReadinessAndTheEndOfBilling(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let (costs, fleet) = try records(store)
            try await fleet.insertFleetInstance(FleetInstanceRecord(id: 1, label: "swarm-a", dphTotal: 1.0, createdAt: t0))
            try await fleet.insertFleetInstance(FleetInstanceRecord(id: 2, label: "swarm-b", dphTotal: 2.0, createdAt: at(10)))
            try await fleet.insertFleetInstance(FleetInstanceRecord(id: 3, label: "swarm-c", createdAt: t0))  // no price: not billed
            try await costs.recordWorkerReady(label: "swarm-a", at: at(300))
            try await costs.recordWorkerReady(label: "swarm-a", at: at(900))  // a later READY (after a reboot) keeps the first
            var b = try #require(try await fleet.fleetInstances().first { $0.id == 2 })
            b.state = .destroying
            b.destroyRequestedAt = at(500)
            try await fleet.updateFleetInstance(b)
            try await fleet.removeFleetInstance(id: 2, at: at(600))

            let instances = try await costs.instanceCosts(overlapping: t0, at(3600))
            #expect(instances.map(\.id) == [1, 2])
            #expect(instances[0].readyAt == at(300) && instances[0].endedAt == nil && instances[0].dollarsPerHour == 1.0)
            #expect(instances[1].readyAt == nil && instances[1].endedAt == at(500) && instances[1].createdAt == at(10))
            // Removed before the range: gone from it.
            #expect(try await costs.instanceCosts(overlapping: at(700), at(3600)).map(\.id) == [1])
        }
    }
}
