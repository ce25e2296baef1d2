import Foundation
import JobProtocol
import SwarmCore
import Testing

@testable import JobStore

/// The fleet tables, on every enabled backend.
@Suite struct FleetRecordScenarios {
    private func fleet(_ store: any JobStore) throws -> any FleetRecordStore {
        try #require(store as? any FleetRecordStore)
    }

    @Test(arguments: Backend.enabled)
    func recordsSurviveUpdatesAndMergePingsByLabel(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let fleet = try fleet(store)
            try await fleet.insertFleetInstance(
                FleetInstanceRecord(id: 42, label: "swarm-a", offerID: 7, machineID: 9, dphTotal: 0.5, createdAt: t0)
            )
            try await fleet.insertFleetInstance(FleetInstanceRecord(id: 43, label: "swarm-b", createdAt: at(1)))
            // A second record of one contract is refused: the id is recorded once, right after the create.
            await #expect(throws: JobStoreError.self) {
                try await fleet.insertFleetInstance(FleetInstanceRecord(id: 42, label: "swarm-c", createdAt: t0))
            }

            var first = try #require(try await fleet.fleetInstances().first)
            #expect(first.label == "swarm-a" && first.offerID == 7 && first.machineID == 9 && first.dphTotal == 0.5)
            #expect(first.createdAt == t0 && first.state == .active && first.lastPing == nil)

            first.reboots = 2
            first.lastRebootAt = at(60)
            first.state = .destroying
            first.destroyRequestedAt = at(90)
            first.warnedSlowStart = true
            try await fleet.updateFleetInstance(first)

            let report = WorkerReport(stage: .downloading(DownloadProgress(doneBytes: 5, totalBytes: 10)), logTail: ["fetching"])
            try await store.heartbeat(workerID: "swarm-a", endpoint: "ep", jobIDs: [], leaseUntil: at(200), report: report, now: at(100))

            let records = try await fleet.fleetInstances()
            #expect(records.map(\.id) == [42, 43])
            let merged = records[0]
            #expect(merged.reboots == 2 && merged.lastRebootAt == at(60) && merged.state == .destroying)
            #expect(merged.destroyRequestedAt == at(90) && merged.warnedSlowStart)
            #expect(merged.lastPing == at(100) && merged.report == report)
            #expect(records[1].lastPing == nil)
        }
    }

    @Test(arguments: Backend.enabled)
    func aStopAndAResumeAreRemembered(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let fleet = try fleet(store)
            try await fleet.insertFleetInstance(FleetInstanceRecord(id: 5, label: "swarm-s", dphTotal: 0.4, createdAt: t0))
            var record = try #require(try await fleet.fleetInstances().first)
            #expect(record.stoppedAt == nil && record.resumedAt == nil)
            record.stoppedAt = at(600)
            try await fleet.updateFleetInstance(record)
            #expect(try await fleet.fleetInstances().first?.stoppedAt == at(600))
            record.stoppedAt = nil
            record.resumedAt = at(900)
            try await fleet.updateFleetInstance(record)
            let resumed = try #require(try await fleet.fleetInstances().first)
            #expect(resumed.stoppedAt == nil && resumed.resumedAt == at(900) && resumed.dphTotal == 0.4)
        }
    }

    @Test(arguments: Backend.enabled)
    func scalerSettingsAreKeptPerEndpoint(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let fleet = try fleet(store)
            #expect(try await fleet.fleetScaler(endpoint: "swarmui") == nil)
            try await fleet.setFleetScaler(#"{"workersMax":3}"#, endpoint: "swarmui")
            try await fleet.setFleetScaler(#"{"workersMax":1}"#, endpoint: "other")
            try await fleet.setFleetScaler(#"{"workersMax":5}"#, endpoint: "swarmui")
            #expect(try await fleet.fleetScaler(endpoint: "swarmui") == #"{"workersMax":5}"#)
            #expect(try await fleet.fleetScaler(endpoint: "other") == #"{"workersMax":1}"#)
            try await fleet.setFleetScaler(nil, endpoint: "swarmui")
            #expect(try await fleet.fleetScaler(endpoint: "swarmui") == nil)
            // The wanted size lives beside it, untouched.
            #expect(try await fleet.fleetDesiredSize() == nil)
        }
    }

    @Test(arguments: Backend.enabled)
    func removedInstancesStillCountTowardsTheDaysSpending(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let fleet = try fleet(store)
            try await fleet.insertFleetInstance(FleetInstanceRecord(id: 1, label: "swarm-a", dphTotal: 1.0, createdAt: t0))
            try await fleet.insertFleetInstance(FleetInstanceRecord(id: 2, label: "swarm-b", dphTotal: 2.0, createdAt: t0))
            try await fleet.removeFleetInstance(id: 1, at: at(3600))

            #expect(try await fleet.fleetInstances().map(\.id) == [2])
            // 1 h at $1 (removed) + 2 h at $2 (still running).
            #expect(try await fleet.fleetSpent(since: t0, now: at(7200)) == 5.0)
            // Counted only from the start of the window.
            #expect(try await fleet.fleetSpent(since: at(3600), now: at(7200)) == 2.0)
        }
    }

    @Test(arguments: Backend.enabled)
    func failedMachinesAndTheCreationHoldPersist(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let fleet = try fleet(store)
            #expect(try await fleet.failedFleetMachines().isEmpty)
            try await fleet.addFailedFleetMachine(5, at: t0)
            try await fleet.addFailedFleetMachine(5, at: at(1))
            try await fleet.addFailedFleetMachine(6, at: at(2))
            #expect(try await fleet.failedFleetMachines() == [5, 6])

            #expect(try await fleet.fleetCreationHold() == nil)
            try await fleet.setFleetCreationHold("budget reached")
            #expect(try await fleet.fleetCreationHold() == "budget reached")
            try await fleet.setFleetCreationHold(nil)
            #expect(try await fleet.fleetCreationHold() == nil)
        }
    }

    @Test(arguments: Backend.enabled)
    func theWantedSizeIsKeptUntilHandedBack(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let fleet = try fleet(store)
            #expect(try await fleet.fleetDesiredSize() == nil)
            try await fleet.setFleetDesiredSize(0)
            #expect(try await fleet.fleetDesiredSize() == 0)
            // Independent of the creation hold, which shares the settings table.
            try await fleet.setFleetCreationHold("x")
            try await fleet.setFleetDesiredSize(3)
            #expect(try await fleet.fleetDesiredSize() == 3)
            #expect(try await fleet.fleetCreationHold() == "x")
            try await fleet.setFleetDesiredSize(nil)
            #expect(try await fleet.fleetDesiredSize() == nil)
        }
    }

    @Test(arguments: Backend.enabled)
    func anUpdateFromAnOlderReadDoesNotBringBackARemovedInstance(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let fleet = try fleet(store)
            try await fleet.insertFleetInstance(FleetInstanceRecord(id: 1, label: "swarm-a", createdAt: t0))
            var stale = try #require(try await fleet.fleetInstances().first)
            try await fleet.removeFleetInstance(id: 1, at: at(10))
            stale.state = .destroying
            stale.destroyRequestedAt = at(11)
            try await fleet.updateFleetInstance(stale)
            #expect(try await fleet.fleetInstances().isEmpty)
        }
    }
}
