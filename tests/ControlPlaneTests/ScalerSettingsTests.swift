import ControlPlane
import Fleet
import Foundation
import JobStore
import SwarmCore
import Testing
import VastAI

/// `serve`'s scaler flags and what `swarmctl instance scale` stores over them.
@Suite struct ScalerSettingsTests {
    /// serve's fleet with `scaler` given as flags (`--workers-max=4` …) and `size` as `--fleet-size`.
    static func settings(_ scaler: ScalerOverride, size: Int? = nil, environment: [String: String] = [:]) throws -> FleetSettings {
        let words = scaler.flags.split(separator: " ").map(String.init)
        let arguments = stride(from: 0, to: words.count, by: 2).map { "\(words[$0])=\(words[$0 + 1])" } + (size.map { ["--fleet-size=\($0)"] } ?? [])
        return try #require(try FleetTests.fleet(arguments, environment: FleetTests.vastOn.merging(environment) { $1 }))
    }

    @Test func theDefaultsKeepTheFleetSize() throws {
        #expect(try Self.settings(ScalerOverride()).scaler == ScalerSettings(workersMin: 1, workersMax: 1))
        #expect(try Self.settings(ScalerOverride(), size: 3).scaler == ScalerSettings(workersMin: 3, workersMax: 3))
        #expect(try Self.settings(ScalerOverride(), environment: ["SWARM_FLEET_SIZE": "2"]).scaler.workersMax == 2)
        #expect(try Self.settings(ScalerOverride(), size: 0).scaler == ScalerSettings(workersMin: 0, workersMax: 0))
    }

    @Test func flagsSetTheScaler() throws {
        let flags = ScalerOverride(workersMax: 4, idleTimeout: 120, scaler: .requestCount, scalerValue: 10, keepWarm: 2)
        // A lone --workers-max scales from zero, as RunPod's default minimum.
        #expect(
            try Self.settings(flags).scaler
                == ScalerSettings(workersMin: 0, workersMax: 4, idleTimeout: 120, scaler: .requestCount, scalerValue: 10, keepWarm: 2)
        )
        #expect(try Self.settings(ScalerOverride(workersMin: 2)).scaler.workersMax == 2)
    }

    @Test func badFlagsAreRefusedNamingTheFlag() {
        func problem(_ flags: ScalerOverride, size: Int? = nil) -> String? {
            do {
                _ = try Self.settings(flags, size: size)
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(problem(ScalerOverride(workersMin: 3, workersMax: 2))?.contains("--workers-min 3 is more than --workers-max 2") == true)
        #expect(problem(ScalerOverride(workersMax: 3), size: 2)?.contains("--fleet-size") == true)
        #expect(problem(ScalerOverride(scalerValue: 0))?.contains("--scaler-value") == true)
        #expect(problem(ScalerOverride(idleTimeout: 0))?.contains("--idle-timeout") == true)
        #expect(problem(ScalerOverride(keepWarm: -1))?.contains("--keep-warm") == true)
    }

    @Test func theLoadIsReadFromTheQueue() async throws {
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        let fleet = DatabaseFleetStore(store: store)
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        #expect(try await fleet.fleetLoad(now: t0) == FleetLoad(queue: QueueLoad()))
        _ = try await store.enqueue([NewJob(id: "a", endpoint: "swarmui", input: [:])], now: t0)
        _ = try await store.enqueue(
            [NewJob(id: "b", endpoint: "swarmui", input: [:]), NewJob(id: "c", endpoint: "swarmui", input: [:])],
            now: t0 + 30
        )
        _ = try await store.enqueue([NewJob(id: "x", endpoint: "other", input: [:])], now: t0 - 600)
        let taken = try await store.take(endpoint: "swarmui", workerID: "swarm-a", limit: 1, leaseUntil: t0 + 300, now: t0 + 40)
        try await store.heartbeat(workerID: "swarm-a", endpoint: "swarmui", jobIDs: taken.map(\.id), leaseUntil: t0 + 300, report: nil, now: t0 + 40)
        try await store.heartbeat(workerID: "swarm-b", endpoint: "swarmui", jobIDs: [], leaseUntil: t0 + 300, report: nil, now: t0 + 40)
        let load = try await fleet.fleetLoad(now: t0 + 50)
        #expect(load.queue.inQueue == 2 && load.queue.inProgress == 1)
        // The first job was taken: the oldest queued is one of the two enqueued at +30 s.
        #expect(load.queue.oldestQueuedAge == 20)
        #expect(load.busyWorkers == ["swarm-a"])
    }

    @Test func whatInstanceScaleStoresOutranksServesFlagsUntilReset() async throws {
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        let fleet = DatabaseFleetStore(store: store)
        let settings = try Self.settings(ScalerOverride(workersMax: 4, scaler: .requestCount, scalerValue: 10))
        #expect(try await fleet.scalerOverride() == nil)
        #expect(settings.effectiveScaler(stored: try await fleet.scalerOverride()).settings == settings.scaler)

        try await fleet.setScalerOverride(ScalerOverride(workersMax: 8, idleTimeout: 30))
        let stored = try #require(try await fleet.scalerOverride())
        #expect(stored.flags == "--workers-max 8 --idle-timeout 30")
        let effective = settings.effectiveScaler(stored: stored)
        #expect(effective.problem == nil)
        #expect(
            effective.settings == ScalerSettings(workersMin: 0, workersMax: 8, idleTimeout: 30, scaler: .requestCount, scalerValue: 10, keepWarm: 1)
        )
        // Per endpoint: another endpoint's settings are its own.
        #expect(try await fleet.scalerOverride(endpoint: "other") == nil)

        // A stored minimum above serve's maximum cannot hold: serve's apply, and the reason is given.
        let clash = settings.effectiveScaler(stored: ScalerOverride(workersMin: 6))
        #expect(clash.settings == settings.scaler)
        #expect(clash.problem?.contains("--workers-min 6 is more than --workers-max 4") == true)

        try await fleet.setScalerOverride(nil)
        #expect(try await fleet.scalerOverride() == nil)
        var summary = FleetSummary(desiredSize: nil, creationHold: nil, spentToday: 0)
        summary.scalerOverride = stored
        #expect(summary.lines.contains { $0.hasPrefix("scaler: --workers-max 8 --idle-timeout 30 over serve's flags") })
    }
}
