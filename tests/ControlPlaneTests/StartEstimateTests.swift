@testable import ControlPlane
import Fleet
import Foundation
import JobProtocol
import JobStore
import SwarmCore
import Testing
import VastAI

/// A queued job's start estimate comes from `--download-gb` and, once instances have booted, from their measured
/// time to READY, not from fixed defaults.
@Suite struct StartEstimateTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func availability(_ store: SQLiteJobStore, _ coldStart: ColdStart?) async throws -> WorkerAvailability {
        try await WorkerAvailability.read(store: store, endpoint: "swarmui", leaseTimeout: .seconds(60), now: now, coldStart: coldStart)
    }

    @Test func aRentalIsEstimatedFromTheDownloadSizeThenFromMeasuredBoots() async throws {
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        // 30 GB at 500 Mb/s is 480 s, plus SwarmUI's 90 s boot.
        let settings = try #require(try FleetTests.fleet(["--download-gb", "30"], environment: FleetTests.vastOn))
        #expect(settings.coldStart == ColdStart(downloadSeconds: 480, bootSeconds: 90))

        try await store.insertFleetInstance(FleetInstanceRecord(id: 1, label: "swarm-new", dphTotal: 0.4, createdAt: Self.now - 100))
        #expect(try await Self.availability(store, settings.coldStart).estimatedStart == 470)
        // Without serve's settings: ColdStart's defaults (900 + 90 s).
        #expect(try await Self.availability(store, nil).estimatedStart == 890)

        // Earlier instances took 300, 400 and 1000 s from rental to READY: the median, 400 s, is used.
        for (id, delay) in [(2, 300.0), (3, 400.0), (4, 1000.0)] {
            let created = Self.now - 86_400 + Double(id) * 3600
            try await store.insertFleetInstance(FleetInstanceRecord(id: id, label: "swarm-\(id)", dphTotal: 0.4, createdAt: created))
            try await store.recordWorkerReady(label: "swarm-\(id)", at: created + delay)
            try await store.removeFleetInstance(id: id, at: created + 2 * 3600)
        }
        #expect(try await Self.availability(store, settings.coldStart).estimatedStart == 300)
    }

    @Test func theMedianOfTheNewestMeasuredBoots() {
        func instance(_ id: Int, _ created: Double, ready: Double?) -> InstanceCostRecord {
            InstanceCostRecord(
                id: id,
                label: "i\(id)",
                dollarsPerHour: 1,
                createdAt: Self.now + created,
                readyAt: ready.map { Self.now + created + $0 }
            )
        }
        #expect(StartEstimate.measured([]) == nil)
        #expect(StartEstimate.measured([instance(1, 0, ready: nil)]) == nil)
        #expect(StartEstimate.measured([instance(1, 0, ready: 100), instance(2, 10, ready: 300)]) == 200)
        // Only the newest five count: the oldest's 10 000 s is left out.
        let six = [instance(0, 0, ready: 10_000)] + (1...5).map { instance($0, Double($0), ready: Double($0) * 100) }
        #expect(StartEstimate.measured(six) == 300)
    }
}
