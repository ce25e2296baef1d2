import Fleet
import Foundation
import JobProtocol
import SwarmCore
import Testing
import VastAI

/// A worker's idle timer comes from the records (its last job's end, or its READY), so a restarted `serve` does not
/// give idle workers a fresh `--idle-timeout`.
@Suite struct IdleRestartTests {
    @Test func aRestartedReconcilerDoesNotResetTheIdleTimer() async throws {
        try await ScaledFleet.with { scaled in
            let (store, load, t0) = (scaled.store, scaled.load, scaled.t0)
            await load.set(QueueLoad(inQueue: 1, oldestQueuedAge: 1))
            try await scaled.fleet.reconcile(now: t0)
            let member = try #require(await store.members().first)
            await store.recordPing(id: member.id, stage: .ready, at: t0 + 1)
            await load.set(QueueLoad(inProgress: 1), busy: [member.label])
            try await scaled.fleet.reconcile(now: t0 + 2)
            // Its job ended at t0 + 3, as the records say; then serve restarts.
            await load.set(QueueLoad(), idleSince: [member.label: t0 + 3])
            try await scaled.fleet.reconcile(now: t0 + 4)
            #expect(await scaled.fleet.lastDecision?.choice(for: member.id)?.action == .keep)

            let restarted = await scaled.restarted()
            try await restarted.reconcile(now: t0 + 6)
            #expect(await restarted.lastDecision?.choice(for: member.id)?.action == .keep)
            // Idle since t0 + 3, not since the restart: past the 5 s timeout at t0 + 9, stopped (keep-warm 1).
            try await restarted.reconcile(now: t0 + 9)
            #expect(await restarted.lastDecision?.choice(for: member.id)?.action == .stop)
            #expect(await store.members().first?.stoppedAt == t0 + 9)
        }
    }

    @Test func aResumedWorkerIsNotIdleSinceBeforeItsStop() async throws {
        try await ScaledFleet.with { scaled in
            let (store, load, t0) = (scaled.store, scaled.load, scaled.t0)
            let (member, _) = try await scaled.stoppedOne()
            await load.set(QueueLoad(inQueue: 1, oldestQueuedAge: 1))
            try await scaled.fleet.reconcile(now: t0 + 100)
            #expect(await store.members().first?.resumedAt == t0 + 100)
            await store.recordPing(id: member.id, stage: .ready, at: t0 + 101)
            // The records still say READY at t0 + 1: the timer starts at the resume, so nothing is stopped at once.
            await load.set(QueueLoad(), idleSince: [member.label: t0 + 1])
            let restarted = await scaled.restarted()
            try await restarted.reconcile(now: t0 + 102)
            #expect(await restarted.lastDecision?.choice(for: member.id)?.action == .keep)
            try await restarted.reconcile(now: t0 + 106)
            #expect(await restarted.lastDecision?.choice(for: member.id)?.action == .stop)
        }
    }
}
