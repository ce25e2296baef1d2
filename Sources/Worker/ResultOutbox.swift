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
        prepareSpare()
    }

    /// Delivers every stored result until the queue has them all or the task is cancelled; results left by a
    /// previous run of the worker are picked up first.
    public func deliverPending() async {
        prepareSpare()
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
        } catch  where error.isRetryable {
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

    /// An empty file made ahead of the next result and renamed into place by it. Creating a file costs more than
    /// writing and renaming one on the volumes we see (0.4 ms against 0.05 ms), and a result's write stands between the
    /// job's end and its post, so the creation happens after the post instead.
    private var sparePath: String { directory + "/.next.tmp" }

    private func prepareSpare() {
        guard !FileManager.default.fileExists(atPath: sparePath) else { return }
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: sparePath, contents: nil)
    }

    /// Not fsynced: a stored result must outlive the worker's process (the page cache sees to that), not the
    /// machine, whose jobs the queue hands out again when its pings stop. Foundation's `Data.write` syncs, which
    /// cost 1.5 to 2 ms per result here.
    private func write(jobID: String, body: JobDoneBody) throws {
        prepareSpare()
        // The keys of `StoredResult`, which reads it back.
        let data = Data(JSONValue.object(["jobID": .string(jobID), "body": body.jsonValue]).jsonString().utf8)
        guard let handle = FileHandle(forWritingAtPath: sparePath) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: sparePath])
        }
        // Write then rename: a crash mid-write leaves no half result behind, only a spare to overwrite.
        do {
            defer { try? handle.close() }
            try handle.truncate(atOffset: 0)
            try handle.write(contentsOf: data)
        }
        guard rename(sparePath, path(for: jobID)) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path(for: jobID)])
        }
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
