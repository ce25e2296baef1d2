import ControlPlane
import Foundation
import JobProtocol
import HTTPTypes
import JobStore
import SwarmCore
import Testing

@Suite struct WorkerAPITests {
    /// Fast clocks for the time rules, so that these tests take seconds.
    static let quick = ControlPlaneConfiguration(leaseTimeout: .seconds(1), longPollTimeout: .seconds(2), expiryInterval: .milliseconds(100))

    @Test func longPollReturnsAsSoonAsAJobArrives() async throws {
        try await withControlPlane(ControlPlaneConfiguration(longPollTimeout: .seconds(60))) { api in
            let started = ContinuousClock.now
            async let taken = api.take("w1")
            try await Task.sleep(for: .milliseconds(300))
            let id = try await api.submit()
            let job = try await taken
            let elapsed = ContinuousClock.now - started
            #expect(job?["id"]?.stringValue == id)
            // Woken by the store's notification (milliseconds), not by the take's own re-check every 5 s, nor by the
            // end of the 60 s poll; loose, because other suites share the CPU.
            #expect(elapsed < .seconds(4))
        }
    }

    @Test func takeAnswers204AfterTheLongPollWhenTheQueueIsEmpty() async throws {
        try await withControlPlane(ControlPlaneConfiguration(longPollTimeout: .milliseconds(300))) { api in
            let started = ContinuousClock.now
            let answer = try await api.call(.get, "/v2/swarmui/job-take/w1?gpu=SIM&job_in_progress=0", auth: .worker)
            #expect(answer.status == .noContent)
            #expect(ContinuousClock.now - started >= .milliseconds(250))
            let batch = try await api.call(.get, "/v2/swarmui/job-take-batch/w1?gpu=SIM&batch_size=3&job_in_progress=0", auth: .worker)
            #expect(batch.status == .noContent)
        }
    }

    @Test func takeBatchAnswersAnArray() async throws {
        try await withControlPlane { api in
            let ids = [try await api.submit(["n": 1]), try await api.submit(["n": 2]), try await api.submit(["n": 3])]
            let answer = try await api.call(.get, "/v2/swarmui/job-take-batch/w1?gpu=SIM&batch_size=2&job_in_progress=0", auth: .worker)
            #expect(answer.status == .ok)
            #expect(answer.json?.arrayValue?.compactMap { $0["id"]?.stringValue } == Array(ids.prefix(2)))
        }
    }

    @Test func jobDoneIsExactlyOnceAndDuplicatesStillGet200() async throws {
        try await withControlPlane { api in
            let id = try await api.submit()
            _ = try await api.take()
            #expect(try await api.done(id, ["output": "first"]).status == .ok)
            let again = try await api.done(id, ["output": "second"])
            #expect(again.status == .ok)
            #expect(again["duplicate"] == true)
            #expect(try await api.status(id)["output"] == "first")
            // A path without the template's `?`, as a misconfigured worker sends it.
            let stray = try await api.call(.post, "/v2/swarmui/job-done/w1/\(id)&isStream=false", ["output": "third"], auth: .worker)
            #expect(stray.status == .ok)
            #expect(try await api.status(id)["output"] == "first")
            let unknown = try await api.done("no-such-job", ["output": 1])
            #expect(unknown.status == .notFound)
        }
    }

    @Test func anErrorMessageWithANulCharacterIsStoredWithAReplacement() async throws {
        // PostgreSQL's text cannot hold NUL; before, such a message failed the job-done post with a 500 there.
        try await withControlPlane { api in
            let id = try await api.submit()
            _ = try await api.take()
            #expect(try await api.done(id, ["error": "CUDA error\u{0}at frame 3"]).status == .ok)
            let status = try await api.status(id)
            #expect(status["status"] == "FAILED")
            #expect(status["error"]?.stringValue == "CUDA error\u{FFFD}at frame 3")
        }
    }

    @Test func pingExtendsTheLease() async throws {
        let configuration = ControlPlaneConfiguration(leaseTimeout: .seconds(3), longPollTimeout: .seconds(2), expiryInterval: .milliseconds(100))
        try await withControlPlane(configuration) { api in
            let id = try await api.submit()
            _ = try await api.take()
            for _ in 0..<16 {
                let ping = try await api.call(.get, "/v2/swarmui/ping/w1?gpu=SIM&job_id=\(id)%2Cother&runpod_version=1.12.0", auth: .worker)
                #expect(ping.status == .ok)
                try await Task.sleep(for: .milliseconds(300))
            }
            // Over 4.8 s after the take with a 3 s lease: still running, because every ping named it.
            #expect(try await api.status(id)["status"] == "IN_PROGRESS")
        }
    }

    @Test func pingStoresTheWorkersReport() async throws {
        try await withControlPlane { api in
            // Read tolerantly: the stage in any case, numbers as doubles, unknown keys kept.
            let report: JSONValue = ["stage": "downloading", "download": ["done_bytes": 10.0, "total_bytes": 100], "log": ["line 1"]]
            let ping = try await api.call(.post, "/v2/swarmui/ping/w7?gpu=SIM&runpod_version=1.12.0", report, auth: .worker)
            #expect(ping.status == .ok)
            let worker = try #require(try await api.store.workers(endpoint: "swarmui").first { $0.id == "w7" })
            #expect(worker.report?.stage == .downloading(DownloadProgress(doneBytes: 10, totalBytes: 100)))
            #expect(worker.report?.extra["log"] == ["line 1"])
        }
    }

    @Test func aFailedStartupCheckMarksTheWorkerUnhealthy() async throws {
        try await withControlPlane { api in
            let ping = try await api.call(
                .get,
                "/v2/swarmui/ping/w9?gpu=SIM&status=unhealthy&check=gpu&reason=no%20CUDA&runpod_version=1.12.0",
                auth: .worker
            )
            #expect(ping.status == .ok)
            let worker = try #require(try await api.store.workers(endpoint: "swarmui").first { $0.id == "w9" })
            #expect(worker.report?.stage == .error(WorkerFailure(reason: "startup check gpu failed: no CUDA", kind: .transient)))
            #expect(
                try await api.call(.get, "/v2/swarmui/health")["workers"] == [
                    "idle": 0, "running": 0, "initializing": 0, "throttled": 0, "unhealthy": 1, "stopped": 0,
                ]
            )
        }
    }

    @Test func anExpiredLeaseRequeuesTheJobForAnotherWorker() async throws {
        try await withControlPlane(Self.quick) { api in
            let id = try await api.submit()
            _ = try await api.take("w1")
            let requeued = try await api.eventually(id) { $0 == "IN_QUEUE" }
            #expect(requeued["status"] == "IN_QUEUE")
            let again = try await api.take("w2")
            #expect(again?["id"]?.stringValue == id)
            // The first worker's late result is refused; the second one's counts.
            #expect(try await api.done(id, ["output": "late"], worker: "w1").status == .conflict)
            #expect(try await api.done(id, ["output": "fresh"], worker: "w2").status == .ok)
            let status = try await api.status(id)
            #expect(status["output"] == "fresh")
            #expect(status["retries"] == 1)
        }
    }

    @Test func cancelReachesTheWorkerThroughJobStop() async throws {
        try await withControlPlane { api in
            let id = try await api.submit()
            _ = try await api.take("w1")
            async let stop = api.call(.get, "/v2/swarmui/job-stop/w1?gpu=SIM", auth: .worker)
            try await Task.sleep(for: .milliseconds(200))
            #expect(try await api.call(.post, "/v2/swarmui/cancel/\(id)").json == ["id": .string(id), "status": "CANCELLED"])
            let stopped = try await stop
            #expect(stopped.status == .ok)
            #expect(stopped.json == ["jobsToStop": [.string(id)]])
            // Each id once.
            let empty = try await api.call(.get, "/v2/swarmui/job-stop/w1?gpu=SIM", auth: .worker)
            #expect(empty.status == .noContent)
            // A result that arrives after the cancel does not change the outcome.
            #expect(try await api.done(id, ["output": "too late"]).status == .ok)
            #expect(try await api.status(id)["status"] == "CANCELLED")
        }
    }

    @Test func executionTimeoutEndsTheJobAsTimedOutAndStopsIt() async throws {
        try await withControlPlane(
            ControlPlaneConfiguration(leaseTimeout: .seconds(60), longPollTimeout: .seconds(10), expiryInterval: .milliseconds(100))
        ) { api in
            let id = try await api.submit(extra: ["policy": ["executionTimeout": 5_000]])
            _ = try await api.take("w1")
            async let stop = api.call(.get, "/v2/swarmui/job-stop/w1?gpu=SIM", auth: .worker)
            let status = try await api.eventually(id, timeout: .seconds(15)) { $0 == "TIMED_OUT" }
            #expect(status["status"] == "TIMED_OUT")
            #expect(try await stop.json == ["jobsToStop": [.string(id)]])
        }
    }
}
