import Foundation
import JobProtocol
import SwarmCore
import Testing
import VastAI
import VastAIEmulator

/// A warm-stopped instance bills its disk's storage, not its GPU: the reconciler's stop and resume are kept as a
/// history that `spentToday` (the daily budget's guard) reads.
@Suite struct StopBillingTests {
    @Test func aStoppedIntervalIsBilledAtTheStoragePriceAndARunningOneAtItsHourlyPrice() async throws {
        try await withVast(FleetReconcilerTests.fastEmulator) { _, client in
            let store = InMemoryFleetStore()
            let load = FleetScalingTests.Load()
            let fleet = await FleetScalingTests.scaled(client, store, load)
            let t0 = Date()
            let member = try await FleetScalingTests.rentOneAndStopIt(fleet, store, load, at: t0)
            let stoppedAt = try #require(await store.members().first?.stoppedAt)
            let dph = try #require(member.dphTotal)
            // Kept at rental: the filter's 100 GB at the emulated offer's storage_cost of $0.15/GB/month.
            let storage = try #require(member.storageDollarsPerHour)
            #expect(abs(storage - 100 * 0.15 / 720) < 1e-12)

            // An hour stopped, then work: it is resumed and runs 10 minutes.
            await load.set(QueueLoad(inQueue: 1, oldestQueuedAge: 1))
            let resumedAt = stoppedAt + 3600
            try await fleet.reconcile(now: resumedAt)
            #expect(await store.members().first?.resumedAt == resumedAt)
            let end = resumedAt + 600
            let running = stoppedAt.timeIntervalSince(t0) + 600
            let expected = running * dph / 3600 + storage
            #expect(abs(await store.spent(since: t0, now: end) - expected) < 1e-9)
            // The GPU's price for the stopped hour would be far more.
            #expect(await store.spent(since: t0, now: end) < end.timeIntervalSince(t0) * dph / 3600 - dph / 2)
        }
    }

    @Test func aRefusedResumeStaysBilledAsStoppedUntilTheDestroy() async throws {
        try await withVast(FleetReconcilerTests.fastEmulator) { running, client in
            let store = InMemoryFleetStore()
            let load = FleetScalingTests.Load()
            let fleet = await FleetScalingTests.scaled(client, store, load)
            let t0 = Date()
            let member = try await FleetScalingTests.rentOneAndStopIt(fleet, store, load, at: t0)
            let stoppedAt = try #require(await store.members().first?.stoppedAt)
            await running.emulator.takeGPU(instance: member.id, .refuse)
            await load.set(QueueLoad(inQueue: 1, oldestQueuedAge: 1))
            try await fleet.reconcile(now: stoppedAt + 1000)
            #expect(await fleet.lastDecision?.choice(for: member.id)?.action == .resume)
            let dph = try #require(member.dphTotal)
            let storage = try #require(member.storageDollarsPerHour)
            // No GPU ran after the refused resume: still storage only.
            let expected = stoppedAt.timeIntervalSince(t0) * dph / 3600 + 2000 * storage / 3600
            #expect(abs(await store.spent(since: t0, now: stoppedAt + 2000) - expected) < 1e-9)
        }
    }
}
