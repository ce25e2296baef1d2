import Foundation
import JobProtocol
import SwarmCore
import Testing

@testable import JobStore

/// Who ran each job (`provider`), and the life of a job forwarded to fal.ai, on every enabled backend.
@Suite struct ProviderScenarios {
    @Test(arguments: Backend.enabled)
    func aTakenJobRecordsTheFleetAsItsProvider(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await enqueue(store, 2)
            #expect(try await store.job(id: "j0")?.provider == nil)
            _ = try await store.take(endpoint: "ep", workerID: "w", limit: 1, leaseUntil: at(60), now: at(1))
            let taken = try #require(try await store.job(id: "j0"))
            #expect(taken.provider == "vastai")
            #expect(taken.falRequestID == nil && taken.falCostUSD == nil)
            #expect(try await store.job(id: "j1")?.provider == nil)
        }
    }

    @Test(arguments: Backend.enabled)
    func aForwardedJobKeepsItsRequestAndCostAndIsListedUntilItEnds(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await enqueue(store, 3)
            let claimed = try #require(try await store.claimForFal(id: "j0", now: at(1)))
            #expect(claimed.status == .inProgress && claimed.provider == "fal" && claimed.workerID == nil)
            // Claimed once: a second claim, or a worker, cannot have it.
            #expect(try await store.claimForFal(id: "j0", now: at(2)) == nil)
            let taken = try await store.take(endpoint: "ep", workerID: "w", limit: 5, leaseUntil: at(60), now: at(2))
            #expect(Set(taken.map(\.id)) == ["j1", "j2"])
            #expect(try await store.claimForFal(id: "j1", now: at(2)) == nil)

            #expect(try await store.recordFalRequest(id: "j0", requestID: "req-1", costUSD: 0.4, now: at(3)))
            #expect(try await store.recordFalRequest(id: "j1", requestID: "req-x", costUSD: 1, now: at(3)) == false)
            let listed = try await store.falJobs()
            #expect(listed.map(\.id) == ["j0"])
            #expect(listed.first?.falRequestID == "req-1")
            #expect(listed.first?.falCostUSD == 0.4)

            // No lease, so expiry leaves it running until its execution timeout.
            let report = try await store.expire(now: at(500), maxAttempts: 3, retention: .seconds(3600))
            #expect(!report.requeued.contains("j0") && !report.failed.contains("j0") && !report.timedOut.contains("j0"))

            let done = try #require(try await store.finishFal(id: "j0", result: .completed(output: ["video": "v"]), now: at(9)))
            #expect(done.status == .completed && done.output == ["video": "v"] && done.finishedAt == at(9))
            #expect(done.provider == "fal" && done.falRequestID == "req-1" && done.falCostUSD == 0.4)
            #expect(try await store.finishFal(id: "j0", result: .failed(error: "late", output: nil, retryable: false), now: at(10)) == nil)
            #expect(try await store.falJobs().isEmpty)
            // A worker's job is not fal.ai's to finish.
            #expect(try await store.finishFal(id: "j1", result: .completed(output: nil), now: at(10)) == nil)
        }
    }

    @Test(arguments: Backend.enabled)
    func falErrorsFailTheJobAndCancelEndsIt(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            try await enqueue(store, 2)
            _ = try await store.claimForFal(id: "j0", now: at(1))
            let failed = try #require(
                try await store.finishFal(id: "j0", result: .failed(error: "fal.ai: bad image", output: nil, retryable: true), now: at(2))
            )
            #expect(failed.status == .failed && failed.error == "fal.ai: bad image")
            _ = try await store.claimForFal(id: "j1", now: at(1))
            #expect(try await store.cancel(id: "j1", now: at(2))?.status == .cancelled)
            #expect(try await store.recordFalRequest(id: "j1", requestID: "r", costUSD: nil, now: at(3)) == false)
            // A retried job waits again, for whoever runs it next.
            let retried = try #require(try await store.retry(id: "j0", now: at(4)))
            #expect(retried.provider == nil && retried.falRequestID == nil)
        }
    }
}

@Suite struct FalSpendScenarios {
    @Test(arguments: Backend.enabled)
    func spendIsReservedWithinTheDaysBudgetOnly(_ backend: Backend) async throws {
        try await withStore(backend) { (store: any JobStore) async throws in
            #expect(try await store.falSpend(day: "2026-12-06") == 0)
            #expect(try await store.reserveFalSpend(day: "2026-12-06", dollars: 0.41, budget: 1))
            #expect(try await store.reserveFalSpend(day: "2026-12-06", dollars: 0.41, budget: 1))
            // A third would pass the budget: refused, nothing added.
            #expect(try await store.reserveFalSpend(day: "2026-12-06", dollars: 0.41, budget: 1) == false)
            #expect(abs(try await store.falSpend(day: "2026-12-06") - 0.82) < 1e-9)
            // A price above the whole budget is refused on a fresh day too; days are separate.
            #expect(try await store.reserveFalSpend(day: "2026-12-07", dollars: 2, budget: 1) == false)
            #expect(try await store.reserveFalSpend(day: "2026-12-07", dollars: 0.5, budget: 1))
            // A refund always applies.
            #expect(try await store.reserveFalSpend(day: "2026-12-06", dollars: -0.41, budget: 0))
            #expect(abs(try await store.falSpend(day: "2026-12-06") - 0.41) < 1e-9)
        }
    }

    @Test(.enabled(if: Backend.databaseURL != nil)) func twoReplicasNeverOverspend() async throws {
        try await withPostgresStores(count: 2) { stores in
            let granted = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<20 {
                    group.addTask { try await stores[index % 2].reserveFalSpend(day: "d", dollars: 0.3, budget: 2) }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(granted == 6)
            #expect(abs(try await stores[0].falSpend(day: "d") - 1.8) < 1e-9)
        }
    }
}
