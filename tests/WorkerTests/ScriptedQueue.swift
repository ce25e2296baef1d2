import JobProtocol
import SwarmCore
import Synchronization

/// A queue scripted by the test, in the style of swift-aws-lambda-runtime's mock runtime client: it hands out the
/// jobs it is given one take at a time, answers `job-stop` with the ids it is told to stop, can go down (every call
/// fails as a refused connection would) and records everything the worker sent.
final class ScriptedQueue: QueueClient, Sendable {
    struct Record: Sendable {
        var pending: [QueueJob] = []
        var taken: [String] = []
        var stops: [String] = []
        var down = false
        /// Every accepted job-done, in order (several for one id would be a double delivery).
        var done: [(id: String, body: JobDoneBody)] = []
        var progress: [String: Int] = [:]
        var pings: [[String]] = []
        var failedCalls = 0
    }

    let record = Mutex(Record())

    func enqueue(_ job: QueueJob) { record.withLock { $0.pending.append(job) } }
    func requestStop(_ id: String) { record.withLock { $0.stops.append(id) } }
    func setDown(_ down: Bool) { record.withLock { $0.down = down } }
    var snapshot: Record { record.withLock { $0 } }
    func results(of id: String) -> [JobDoneBody] { snapshot.done.filter { $0.id == id }.map(\.body) }

    private func check(_ route: String) throws(QueueError) {
        let down = record.withLock { record in
            if record.down { record.failedCalls += 1 }
            return record.down
        }
        if down { throw QueueError(.transport, route: route, detail: "connection refused") }
    }

    func takeJob(jobInProgress: Bool) async throws(QueueError) -> TakeResult {
        try check("job-take")
        let job: QueueJob? = record.withLock { record in
            guard !record.pending.isEmpty else { return nil }
            let job = record.pending.removeFirst()
            record.taken.append(job.id)
            return job
        }
        if let job { return .jobs([job]) }
        // A long poll, shortened: an empty queue holds the take a moment, as the real ones do.
        try? await Task.sleep(for: .milliseconds(50))
        return .noJob
    }

    func postDone(jobID: String, body: JobDoneBody) async throws(QueueError) {
        try check("job-done")
        record.withLock { $0.done.append((jobID, body)) }
    }

    func postProgress(jobID: String, output: JSONValue) async throws(QueueError) {
        try check("job-done (progress)")
        record.withLock { $0.progress[jobID, default: 0] += 1 }
    }

    func ping(jobIDs: [String], report: WorkerReport?) async throws(QueueError) {
        try check("ping")
        record.withLock { $0.pings.append(jobIDs) }
    }

    func pollStop() async throws(QueueError) -> [String] {
        try check("job-stop")
        let ids: [String] = record.withLock { record in
            defer { record.stops = [] }
            return record.stops
        }
        if ids.isEmpty { try? await Task.sleep(for: .milliseconds(50)) }
        return ids
    }
}
