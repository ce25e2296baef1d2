import Foundation
import JobProtocol
import Logging
import SwarmCore
import Synchronization
import Testing

@testable import Worker

/// A queue whose job-done route is down until `up` is set; records what it accepted.
final class SwitchableDoneQueue: QueueClient, Sendable {
    let up = Mutex(false)
    let delivered = Mutex<[String: JobDoneBody]>([:])

    func takeJob(jobInProgress: Bool) async throws(QueueError) -> TakeResult { .noJob }
    func postProgress(jobID: String, output: JSONValue) async throws(QueueError) {}
    func ping(jobIDs: [String], report: WorkerReport?) async throws(QueueError) {}
    func pollStop() async throws(QueueError) -> [String] { [] }

    func postDone(jobID: String, body: JobDoneBody) async throws(QueueError) {
        guard up.withLock({ $0 }) else { throw QueueError(.transport, route: "job-done", detail: "connection refused") }
        delivered.withLock { $0[jobID] = body }
    }
}

@Suite struct ResultOutboxTests {
    /// A worker that died mid-write leaves a half-written spare file; the result stored before it must still be
    /// delivered by the next run, and the spare must neither be taken for a result nor spoil the next one.
    @Test func resultsOutliveARestartAndAHalfWrittenSpare() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let queue = SwitchableDoneQueue()
        let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let stored: JobDoneBody = .result(["files": [["url": "data:image/png;base64,AAAA", "bytes": 3]]])

        // First run: the queue is down, so the result stays on the volume.
        let first = ResultOutbox(directory: directory, queue: queue, state: WorkerState(), logger: logger)
        try await first.submit(jobID: "job/1", body: stored)
        #expect(await first.pendingCount == 1)
        // Then the process dies while writing the next result.
        // (longer than the next result, so that only truncating it leaves valid JSON)
        try Data(("{\"jobID\":\"job-2\",\"body\":{\"output\":\"" + String(repeating: "x", count: 4096)).utf8)
            .write(to: URL(fileURLWithPath: directory + "/.next.tmp"))

        // Second run: the queue is back.
        queue.up.withLock { $0 = true }
        let second = ResultOutbox(directory: directory, queue: queue, state: WorkerState(), logger: logger)
        #expect(await second.pendingCount == 1)
        let delivering = Task { await second.deliverPending() }
        defer { delivering.cancel() }
        try await eventually { queue.delivered.withLock { $0["job/1"] } }
        #expect(queue.delivered.withLock { $0["job/1"] } == stored)

        // The next result goes through the spare the dead run left half-written, and reads back whole from the file.
        queue.up.withLock { $0 = false }
        let next: JobDoneBody = .failure("SwarmUI failed during the job; it can run again", retryable: true)
        try await second.submit(jobID: "job-2", body: next)
        #expect(await second.pendingCount == 1)
        queue.up.withLock { $0 = true }
        #expect(try await eventually { queue.delivered.withLock { $0["job-2"] } } == next)
        #expect(queue.delivered.withLock { $0.count } == 2)
        #expect(await second.pendingCount == 0)
    }

    private func eventually<T>(_ probe: () async -> T?) async throws -> T {
        for _ in 0..<200 {
            if let value = await probe() { return value }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw TestFailure("not seen within 5 s")
    }
}
