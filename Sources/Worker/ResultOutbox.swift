import JobProtocol
import Logging
import SwarmCore

import Foundation

/// Results on their way to the queue. Each is written to the volume before it is posted and removed only once the
/// queue acknowledged it, so a queue outage or a worker restart delays a result but never loses it.
public actor ResultOutbox {
    private let directory: String
    private let queue: any QueueClient
    private let state: WorkerState
    private let logger: Logger
    private let backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(30))
    private var wake: CheckedContinuation<Void, Never>?

    public init(directory: String, queue: any QueueClient, state: WorkerState, logger: Logger) {
        self.directory = directory
        self.queue = queue
        self.state = state
        self.logger = logger
    }

    /// Stores the result, then tries to deliver it once; a failed delivery is left to `deliverPending()`.
    public func submit(jobID: String, body: JobDoneBody) async throws {
        try write(jobID: jobID, body: body)
        await state.resultPending(jobID)
        if await !deliver(jobID: jobID, body: body) { wake?.resume(); wake = nil }
    }

    /// Delivers every stored result until the queue has them all or the task is cancelled; results left by a
    /// previous run of the worker are picked up first.
    public func deliverPending() async {
        var attempt = 0
        while !Task.isCancelled {
            let pending = stored()
            for (jobID, _) in pending { await state.resultPending(jobID) }
            var failed = false
            for (jobID, body) in pending where !Task.isCancelled {
                if await !deliver(jobID: jobID, body: body) { failed = true }
            }
            if failed {
                try? await Task.sleep(for: backoff.delay(attempt: attempt))
                attempt += 1
            } else {
                attempt = 0
                await withTaskCancellationHandler {
                    await withCheckedContinuation { continuation in wake = continuation }
                } onCancel: {
                    Task { await self.resumeWake() }
                }
            }
        }
    }

    public var pendingCount: Int { stored().count }

    private func resumeWake() {
        wake?.resume()
        wake = nil
    }

    /// True when the result left the outbox: acknowledged, or refused for good.
    private func deliver(jobID: String, body: JobDoneBody) async -> Bool {
        do {
            try await queue.postDone(jobID: jobID, body: body)
            logger.info("result delivered", metadata: ["job.id": "\(jobID)"])
        } catch where error.isRetryable {
            logger.warning("result not delivered yet, kept on the volume: \(error)", metadata: ["job.id": "\(jobID)"])
            return false
        } catch {
            // The queue will never accept it (the job expired or is unknown there); keeping it would retry forever.
            logger.error("the queue refused the result, dropping it: \(error)", metadata: ["job.id": "\(jobID)"])
        }
        remove(jobID: jobID)
        await state.resultDelivered(jobID)
        return true
    }

    // MARK: Files

    private func path(for jobID: String) -> String {
        directory + "/" + (Data(jobID.utf8).base64EncodedString().replacingOccurrences(of: "/", with: "_")) + ".json"
    }

    private func write(jobID: String, body: JobDoneBody) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let record = StoredResult(jobID: jobID, body: body)
        let data = try JSONEncoder().encode(record)
        // Write then rename: a crash mid-write leaves no half result behind.
        let final = path(for: jobID)
        let temporary = final + ".tmp"
        try data.write(to: URL(fileURLWithPath: temporary))
        _ = rename(temporary, final)
    }

    private func remove(jobID: String) {
        try? FileManager.default.removeItem(atPath: path(for: jobID))
    }

    private func stored() -> [(String, JobDoneBody)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.sorted().filter { $0.hasSuffix(".json") }.compactMap { name in
            guard let data = FileManager.default.contents(atPath: directory + "/" + name),
                let record = try? JSONDecoder().decode(StoredResult.self, from: data)
            else {
                logger.error("unreadable result file \(directory)/\(name) left in place")
                return nil
            }
            return (record.jobID, record.body)
        }
    }
}

private struct StoredResult: Codable {
    var jobID: String
    var body: JobDoneBody
}
