import VastAITestSupport
import Fleet
import Foundation
import JobProtocol
import SwarmCore
import Testing
import VastAI
import VastAIEmulator

/// A scaled fleet on a fresh emulator, for the scaler's tests: its store, its load and `t0`, the first round's time.
struct ScaledFleet {
    var running: RunningVastAIEmulator
    var client: VastAIClient
    var store = InMemoryFleetStore()
    var load = FleetScalingTests.Load()
    var fleet: FleetReconciler
    var t0 = Date()

    static func with(_ body: (ScaledFleet) async throws -> Void) async throws {
        try await withVast(FleetReconcilerTests.fastEmulator) { running, client in
            let store = InMemoryFleetStore()
            let load = FleetScalingTests.Load()
            let fleet = await FleetScalingTests.scaled(client, store, load)
            try await body(ScaledFleet(running: running, client: client, store: store, load: load, fleet: fleet))
        }
    }

    /// The one instance `FleetScalingTests.rentOneAndStopIt` rents and stops, with the time of its stop.
    func stoppedOne() async throws -> (member: FleetMember, stoppedAt: Date) {
        let member = try await FleetScalingTests.rentOneAndStopIt(fleet, store, load, at: t0)
        return (member, try #require(await store.members().first?.stoppedAt))
    }

    /// A new reconciler on the same store and load, as after a restart of `serve`.
    func restarted() async -> FleetReconciler { await FleetScalingTests.scaled(client, store, load) }
}

/// A warm-stopped instance bills its disk's storage, not its GPU: the reconciler's stop and resume are kept as a
/// history that `spentToday` (the daily budget's guard) reads.
@Suite struct StopBillingTests {
    @Test func aStoppedIntervalIsBilledAtTheStoragePriceAndARunningOneAtItsHourlyPrice() async throws {
        try await ScaledFleet.with { scaled in
            let (member, stoppedAt) = try await scaled.stoppedOne()
            let dph = try #require(member.dphTotal)
            // Kept at rental: the filter's 100 GB at the emulated offer's storage_cost of $0.15/GB/month.
            let storage = try #require(member.storageDollarsPerHour)
            #expect(abs(storage - 100 * 0.15 / 720) < 1e-12)

            // An hour stopped, then work: it is resumed and runs 10 minutes.
            await scaled.load.set(QueueLoad(inQueue: 1, oldestQueuedAge: 1))
            let resumedAt = stoppedAt + 3600
            try await scaled.fleet.reconcile(now: resumedAt)
            #expect(await scaled.store.members().first?.resumedAt == resumedAt)
            let end = resumedAt + 600
            let running = stoppedAt.timeIntervalSince(scaled.t0) + 600
            let spent = await scaled.store.spent(since: scaled.t0, now: end)
            #expect(abs(spent - (running * dph / 3600 + storage)) < 1e-9)
            // The GPU's price for the stopped hour would be far more.
            #expect(spent < end.timeIntervalSince(scaled.t0) * dph / 3600 - dph / 2)
        }
    }

    @Test func scaleDownWeighsTheStoragePriceRecordedAtRentalNotTheSetting() async throws {
        try await ScaledFleet.with { scaled in
            await scaled.load.set(QueueLoad(inQueue: 1, oldestQueuedAge: 1))
            try await scaled.fleet.reconcile(now: scaled.t0)
            var member = try #require(await scaled.store.members().first)
            await scaled.store.recordPing(id: member.id, stage: .ready, at: scaled.t0 + 1)
            // Its host charges $50/h for the disk: keeping it until the next burst costs far more than a cold start, so
            // past the idle timeout it is destroyed, where the setting's $0.15/GB/month would have stopped it.
            member.storageDollarsPerHour = 50
            await scaled.store.update(member)
            await scaled.load.set(QueueLoad())
            try await scaled.fleet.reconcile(now: scaled.t0 + 2)
            try await scaled.fleet.reconcile(now: scaled.t0 + 10)
            #expect(await scaled.fleet.lastDecision?.choice(for: member.id)?.action == .destroy)
            #expect(await scaled.store.members().first?.stoppedAt == nil)
        }
    }

    @Test func aRefusedResumeStaysBilledAsStoppedUntilTheDestroy() async throws {
        try await ScaledFleet.with { scaled in
            let (member, stoppedAt) = try await scaled.stoppedOne()
            await scaled.running.emulator.takeGPU(instance: member.id, .refuse)
            await scaled.load.set(QueueLoad(inQueue: 1, oldestQueuedAge: 1))
            try await scaled.fleet.reconcile(now: stoppedAt + 1000)
            #expect(await scaled.fleet.lastDecision?.choice(for: member.id)?.action == .resume)
            let dph = try #require(member.dphTotal)
            let storage = try #require(member.storageDollarsPerHour)
            // No GPU ran after the refused resume: still storage only.
            let expected = stoppedAt.timeIntervalSince(scaled.t0) * dph / 3600 + 2000 * storage / 3600
            #expect(abs(await scaled.store.spent(since: scaled.t0, now: stoppedAt + 2000) - expected) < 1e-9)
        }
    }
}
