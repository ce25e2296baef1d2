import Fleet
import ControlPlane
import Foundation
import JobStore
import SwarmCore
import Testing
import VastAI

/// The scaler's queue delay is the age of the oldest queued job, however long the queue.
@Suite struct QueueAgeTests {
    @Test func theOldestQueuedJobIsFoundBehindMoreThanAPageOfNewerOnes() async throws {
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        let fleet = try #require(DatabaseFleetStore(store: store))
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        _ = try await store.enqueue([NewJob(id: "first", endpoint: "swarmui", input: [:])], now: t0)
        _ = try await store.enqueue((0..<600).map { NewJob(id: "later-\($0)", endpoint: "swarmui", input: [:]) }, now: t0 + 100)
        let load = try await fleet.fleetLoad(now: t0 + 200)
        #expect(load.queue.inQueue == 601)
        #expect(load.queue.oldestQueuedAge == 200)
    }

    @Test func theLoadCarriesEachFleetWorkersLastActivity() async throws {
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        let fleet = try #require(DatabaseFleetStore(store: store))
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        try await store.insertFleetInstance(FleetInstanceRecord(id: 1, label: "swarm-a", dphTotal: 1, createdAt: t0))
        try await store.recordWorkerReady(label: "swarm-a", at: t0 + 60)
        #expect(try await fleet.fleetLoad(now: t0 + 100).idleSince == ["swarm-a": t0 + 60])
    }
}
