import Foundation
import JobProtocol
import SwarmCore
import Testing

@testable import JobStore

/// The oldest queued jobs of an endpoint, however long the queue (the scaler's queue delay and the spill-over read
/// them), on every enabled backend.
@Suite struct OldestQueuedScenarios {
    @Test(arguments: Backend.enabled)
    func theOldestQueuedJobsComeInCreationOrderPastALongQueue(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            // 600 jobs, 50 per second of creation: more than any page of the newest.
            for batch in 0..<12 {
                let jobs = (0..<50).map { newJob(String(format: "j%03d", batch * 50 + $0), input: ["n": .int(batch * 50 + $0)]) }
                _ = try await store.enqueue(jobs, now: at(Double(batch)))
            }
            _ = try await store.enqueue([newJob("other", endpoint: "elsewhere")], now: t0.addingTimeInterval(-60))
            let taken = try await store.take(endpoint: "ep", workerID: "w", limit: 2, leaseUntil: at(600), now: at(20))
            _ = try await store.cancel(id: "j002", now: at(20))

            let oldest = try await store.oldestQueuedJobs(endpoint: "ep", limit: 3)
            let expected = (0..<600).map { String(format: "j%03d", $0) }.filter { id in id != "j002" && !taken.contains { $0.id == id } }
            #expect(oldest.map(\.id) == Array(expected.prefix(3)))
            #expect(oldest.allSatisfy { $0.status == .inQueue && $0.s3Config == nil && $0.input["n"] != nil })
            #expect(try await store.oldestQueuedJobs(endpoint: "ep", limit: 1000).count == 597)
            #expect(try await store.oldestQueuedJobs(endpoint: "elsewhere", limit: 5).map(\.id) == ["other"])
            #expect(try await store.oldestQueuedJobs(endpoint: "none", limit: 5).isEmpty)
            await #expect(throws: JobStoreError.self) { _ = try await store.oldestQueuedJobs(endpoint: "ep", limit: 0) }
        }
    }
}
