import Fleet
import Foundation
import JobProtocol
import Logging
import SwarmCore
import Testing
import VastAI
import VastAIEmulator
import VastAITestSupport

/// The scaler carried out against the emulator: scale from zero, warm stop, resume, and a resume that fails.
@Suite struct FleetScalingTests {
    actor Load {
        var load = FleetLoad(queue: QueueLoad())
        func set(_ queue: QueueLoad, busy: Set<String> = [], idleSince: [String: Date] = [:]) {
            load = FleetLoad(queue: queue, busyWorkers: busy, idleSince: idleSince)
        }
    }

    static let settings = ScalerSettings(workersMin: 0, workersMax: 2, idleTimeout: 5, scaler: .requestCount, scalerValue: 5, keepWarm: 1)

    static func scaled(
        _ client: VastAIClient,
        _ store: InMemoryFleetStore,
        _ load: Load,
        settings: ScalerSettings = settings
    ) async -> FleetReconciler {
        let fleet = FleetReconcilerTests.reconciler(client, store, policy: FleetPolicy(desiredSize: 1))
        await fleet.enableScaling(
            FleetScaling(
                settings: { settings },
                load: { await load.load },
                coldStart: ColdStart(downloadSeconds: 900, bootSeconds: 60),
                expectedIdleGap: 1800,
                resumeTimeout: 120
            )
        )
        return fleet
    }

    /// One job rents one instance; once READY and idle past the 5 s timeout, it is stopped (keep-warm 1).
    static func rentOneAndStopIt(_ fleet: FleetReconciler, _ store: InMemoryFleetStore, _ load: Load, at t0: Date) async throws -> FleetMember {
        await load.set(QueueLoad(inQueue: 1, oldestQueuedAge: 1))
        try await fleet.reconcile(now: t0)
        let member = try #require(await store.members().first)
        await store.recordPing(id: member.id, stage: .ready, at: t0 + 1)
        await load.set(QueueLoad())
        try await fleet.reconcile(now: t0 + 2)
        try await fleet.reconcile(now: t0 + 10)
        #expect(await store.members().first?.stoppedAt != nil)
        return member
    }

    static func creates(_ actions: [FleetAction]) -> Int { actions.count { if case .create = $0 { true } else { false } } }

    @Test func scalesFromZeroStopsWhenIdleAndResumesTheStoppedOne() async throws {
        try await withVast(FleetReconcilerTests.fastEmulator) { running, client in
            let store = InMemoryFleetStore()
            let load = Load()
            let fleet = await Self.scaled(client, store, load)
            let t0 = Date()
            // Nothing queued and min 0: nothing rented, although --fleet-size would have kept one.
            #expect(Self.creates(try await fleet.reconcile(now: t0)) == 0)
            #expect(await fleet.lastDecision?.wanted == 0)

            // 8 jobs at 5 per worker: 2 workers.
            await load.set(QueueLoad(inQueue: 8, oldestQueuedAge: 1))
            #expect(Self.creates(try await fleet.reconcile(now: t0 + 1)) == 2)
            let members = await store.members()
            #expect(members.count == 2)
            for member in members { await store.recordPing(id: member.id, stage: .ready, at: t0 + 2) }
            await load.set(QueueLoad(inProgress: 2), busy: Set(members.map(\.label)))
            #expect(try await fleet.reconcile(now: t0 + 3).isEmpty)

            // Drained: idle from the next round; past the 5 s timeout one is stopped (keep-warm 1), the other destroyed.
            await load.set(QueueLoad())
            try await fleet.reconcile(now: t0 + 10)
            try await fleet.reconcile(now: t0 + 16)
            let after = await store.members()
            let stopped = after.filter { $0.stoppedAt != nil }
            #expect(stopped.count == 1)
            #expect(after.filter { $0.destroyRequestedAt != nil }.count == 1)
            let decision = try #require(await fleet.lastDecision)
            #expect(decision.wanted == 0)
            let stoppedID = try #require(stopped.first?.id)
            #expect(decision.choice(for: stoppedID)?.reason.contains("a cold start") == true)
            #expect(await running.emulator.liveInstances.first { $0.id == stoppedID }?.stopped == true)
            try await fleet.reconcile(now: t0 + 17)  // the destroy is confirmed, the stopped one kept
            #expect(await store.members().map(\.id) == [stoppedID])
            #expect(await FleetReconcilerTests.labeled(running.emulator).count == 1)

            // New work: the stopped instance is resumed, nothing rented.
            await load.set(QueueLoad(inQueue: 3, oldestQueuedAge: 1))
            let resumed = try await fleet.reconcile(now: t0 + 100)
            #expect(Self.creates(resumed) == 0)
            #expect(await fleet.lastDecision?.choice(for: stoppedID)?.action == .resume)
            #expect(await running.emulator.liveInstances.first { $0.id == stoppedID }?.stopped == false)
            let member = try #require(await store.members().first)
            #expect(member.stoppedAt == nil && member.resumedAt == t0 + 100)
            // Its old READY ping does not count: it is resuming until the worker pings again.
            #expect(Self.creates(try await fleet.reconcile(now: t0 + 101)) == 0)
            #expect(await fleet.lastDecision?.choice(for: stoppedID)?.reason == "resuming")
            await store.recordPing(id: stoppedID, stage: .ready, at: t0 + 102)
            try await fleet.reconcile(now: t0 + 103)
            #expect(await fleet.lastDecision?.choice(for: stoppedID)?.action == .keep)
        }
    }

    @Test(arguments: [VastAIEmulator.GPULoss.refuse, .schedule])
    func aFailedResumeFallsBackToANewRental(_ loss: VastAIEmulator.GPULoss) async throws {
        try await withVast(FleetReconcilerTests.fastEmulator) { running, client in
            let store = InMemoryFleetStore()
            let load = Load()
            let fleet = await Self.scaled(client, store, load)
            let t0 = Date()
            let first = try await Self.rentOneAndStopIt(fleet, store, load, at: t0)

            // While it was stopped, someone rented its GPU.
            await running.emulator.takeGPU(instance: first.id, loss)
            await load.set(QueueLoad(inQueue: 2, oldestQueuedAge: 1))
            try await fleet.reconcile(now: t0 + 20)
            #expect(await fleet.lastDecision?.choice(for: first.id)?.action == .resume)
            // Refused at once, or scheduling past the 120 s resume timeout: destroyed, and a new rental follows.
            let later = t0 + (loss == .refuse ? 21 : 20 + 121)
            try await fleet.reconcile(now: later)
            let destroy = try #require(await fleet.lastDecision?.choice(for: first.id))
            #expect(destroy.action == .destroy)
            #expect(destroy.reason.contains(loss == .refuse ? "rented away" : "scheduling"), "\(destroy.reason)")
            var rented = false
            for round in 1...4 where !rented {
                rented = Self.creates(try await fleet.reconcile(now: later + Double(round))) == 1
            }
            #expect(rented)
            let live = await FleetReconcilerTests.labeled(running.emulator)
            #expect(live.count == 1)
            #expect(live.first?.id != first.id)
        }
    }

    @Test func stoppedInstancesBillStorageAndInstanceDownWithoutTheScalerDestroysThem() async throws {
        try await withVast(FleetReconcilerTests.fastEmulator) { running, client in
            let store = InMemoryFleetStore()
            let load = Load()
            let fleet = await Self.scaled(client, store, load)
            let t0 = Date()
            let id = try await Self.rentOneAndStopIt(fleet, store, load, at: t0).id
            #expect(await running.emulator.liveInstances.first { $0.id == id }?.stopped == true)
            let record = try #require(try await client.instance(id: id))
            #expect(record.raw["storage_total_cost"]?.doubleValue.map { abs($0 - 100 * 0.15 / 720) < 1e-9 } == true)
            let charges = try #require(await running.emulator.charges(instance: id))
            try await Task.sleep(for: .milliseconds(300))
            let later = try #require(await running.emulator.charges(instance: id))
            #expect(later.gpu == charges.gpu)  // a stopped instance bills no GPU time...
            #expect(later.storage > charges.storage)  // ...but its disk

            // 'instance down' (the size set to 0 in the store) outranks the scaler: the stopped one is destroyed too.
            await store.setDesiredSize(0)
            let actions = try await fleet.reconcile(now: t0 + 20)
            #expect(actions.contains { if case .destroy(id, _) = $0 { true } else { false } })
            #expect(await FleetReconcilerTests.labeled(running.emulator).isEmpty)
        }
    }
}
