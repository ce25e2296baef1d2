import ControlPlane
import Foundation
import JobStore
import SwarmCore
import Testing
import VastAI

/// The fleet's settings and its memory on the job store.
@Suite struct FleetTests {
    static let vastOn = ["VAST_API_KEY": "k", "SWARM_PUBLIC_URL": "https://queue.example.com/"]

    static func options(image: String? = "ghcr.io/o/w:1") -> FleetOptions {
        var options = FleetOptions()
        options.image = image
        return options
    }

    @Test func theFleetIsOffWithoutAVastKey() throws {
        #expect(try FleetSettings(options: Self.options(), environment: [:]) == nil)
        #expect(try ServeSettings(options: ServeOptions(), environment: [:]).fleet == nil)
    }

    @Test func readsFlagsThenEnvironment() throws {
        let environment = Self.vastOn.merging(["SWARM_FLEET_SIZE": "3", "SWARM_FLEET_GPU": "RTX 5090, RTX_4090", "VAST_API_URL": "http://127.0.0.1:9"]) { $1 }
        let settings = try #require(try FleetSettings(options: Self.options(), environment: environment))
        #expect(settings.policy.desiredSize == 3 && settings.policy.labelPrefix == "swarm")
        #expect(settings.filter.gpuNames == ["RTX 5090", "RTX 4090"])
        #expect(settings.queueURL == "https://queue.example.com/v2/swarmui")
        #expect(settings.vast.baseURL == "http://127.0.0.1:9")

        var options = Self.options()
        options.size = 2
        #expect(try FleetSettings(options: options, environment: environment)?.policy.desiredSize == 2)
    }

    @Test func refusesAFleetItCannotStart() {
        #expect(throws: ServeError.self) { try FleetSettings(options: Self.options(image: nil), environment: Self.vastOn) }
        #expect(throws: ServeError.self) { try FleetSettings(options: Self.options(), environment: ["VAST_API_KEY": "k"]) }
        #expect(throws: ServeError.self) {
            try FleetSettings(options: Self.options(), environment: Self.vastOn.merging(["SWARM_FLEET_SIZE": "many"]) { $1 })
        }
    }

    @Test func membersCarryTheirWorkersPingsAndKeysAreRevokedWithThem() async throws {
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        let fleet = try #require(DatabaseFleetStore(store: store))
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        try await fleet.insert(FleetMember(id: 7, label: "swarm-a", offerID: 1004, machineID: 3, dphTotal: 0.7, createdAt: now))
        let key = try await fleet.mintWorkerKey(label: "swarm-a", now: now)
        #expect(try await store.key(hash: APIKey.hash(key.value))?.scope == .worker)
        #expect("\(key)" == "<redacted>")

        let ping: JSONValue = ["stage": "DOWNLOADING", "download": ["done_bytes": 12_100_000_000, "total_bytes": 33_200_000_000], "log_tail": ["pulling"]]
        try await store.heartbeat(
            workerID: "swarm-a", endpoint: "swarmui", jobIDs: [], leaseUntil: now, report: WorkerReport(stage: "DOWNLOADING", detail: ping), now: now)
        let member = try #require(try await fleet.members().first)
        #expect(member.stage == .downloading && member.lastPing == now && member.logTail == ["pulling"])
        #expect(member.stageDetail == "12.1 of 33.2 GB (36%)")
        #expect(member.offerID == 1004 && member.machineID == 3)

        // An hour at $0.70, when that hour is inside one UTC day.
        #expect(abs(try await fleet.spentToday(now: now.addingTimeInterval(3600)) - 0.7) < 1e-9)

        try await fleet.remove(id: 7)
        #expect(try await fleet.members().isEmpty)
        #expect(try await store.key(hash: APIKey.hash(key.value)) == nil)
        #expect(try await store.keys().first { $0.scope == .worker }?.revokedAt != nil)
    }
}
