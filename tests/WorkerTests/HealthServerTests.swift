import AsyncHTTPClient
import Foundation
import JobProtocol
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SwarmCore
import Synchronization
import Testing

@testable import Worker

@Suite struct HealthServerTests {
    struct Answer {
        var status: Int
        var headers: HTTPHeaders
        var body: String
        var json: JSONValue? { JSONValue.parse(Data(body.utf8)) }
    }

    /// Runs a health server on a free loopback port for the length of `body`, then shuts it down gracefully and
    /// checks that it stopped.
    func withHealthServer(state: WorkerState, _ body: (_ call: (HTTPMethod, String) async throws -> Answer) async throws -> Void) async throws {
        let logger = Logger(label: "health-test", factory: { _ in SwiftLogNoOpLogHandler() })
        let port = Mutex<Int?>(nil)
        let server = HealthServer(host: "127.0.0.1", port: 0, state: state, monitor: nil, logger: logger) { bound in
            port.withLock { $0 = bound }
        }
        let group = ServiceGroup(services: [server], gracefulShutdownSignals: [], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            while port.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(5)) }
            let base = "http://127.0.0.1:\(port.withLock { $0 }!)"
            try await body { method, path in
                var request = HTTPClientRequest(url: base + path)
                request.method = method
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
                let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
                return Answer(status: Int(response.status.code), headers: response.headers, body: text)
            }
            // HTTPClient.shared keeps its connection open: shutdown must not wait for the client to hang up.
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }

    @Test func healthAndMetricsReportTheWorkersState() async throws {
        let state = WorkerState()
        await state.setStage(.ready)
        await state.swarmUIBecameReady()
        await state.jobStarted("job-1")
        await state.jobFinished("job-1", succeeded: true)
        await state.jobStarted("job-2")
        await state.resultPending("job-0")
        try await withHealthServer(state: state) { call in
            let health = try await call(.GET, "/health")
            #expect(health.status == 200)
            #expect(health.headers.first(name: "content-type") == "application/json")
            #expect(health.json?["stage"] == "READY")
            #expect(health.json?["ready"] == true)
            #expect(health.json?["current_job"] == "job-2")
            #expect(health.json?["pending_results"] == 1)
            #expect(health.json?["jobs"] == ["succeeded": 1, "failed": 0])

            let metrics = try await call(.GET, "/metrics?name[]=x")
            #expect(metrics.status == 200)
            #expect(metrics.headers.first(name: "content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
            #expect(metrics.body.contains("swarm_worker_jobs_total{outcome=\"succeeded\"} 1\n"))
            #expect(metrics.body.contains("swarm_worker_busy 1\n"))
            #expect(metrics.body.contains("swarm_worker_stage{stage=\"READY\"} 1\n"))

            let head = try await call(.HEAD, "/health")
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
            #expect(head.headers.first(name: "content-length") == String(health.body.utf8.count))
        }
    }

    @Test func anErroredWorkerIsUnhealthyWithTheReason() async throws {
        let state = WorkerState()
        await state.setStage(.error(WorkerFailure(reason: "SwarmUI's backend is errored: CUDA out of memory", kind: .transient)))
        try await withHealthServer(state: state) { call in
            let health = try await call(.GET, "/health")
            #expect(health.status == 503)
            #expect(health.json?["stage"] == "ERROR")
            #expect(health.json?["error"] == "SwarmUI's backend is errored: CUDA out of memory")
            #expect(health.json?["error_kind"] == "transient")
        }
    }

    @Test func otherRoutesAndMethodsGetAJSONErrorThatSaysWhatIsServed() async throws {
        try await withHealthServer(state: WorkerState()) { call in
            let missing = try await call(.GET, "/healthz")
            #expect(missing.status == 404)
            #expect(missing.json?["error"]?.stringValue?.contains("GET /health and GET /metrics") == true)

            let post = try await call(.POST, "/health")
            #expect(post.status == 405)
            #expect(post.headers.first(name: "allow") == "GET, HEAD")
            #expect(post.json?["error"]?.stringValue?.contains("use GET") == true)

            // The server still answers after the errors, on the same kept-alive connection or a new one.
            #expect(try await call(.GET, "/health").status == 200)
        }
    }

    @Test func aTakenPortIsAClearError() async throws {
        let logger = Logger(label: "health-test", factory: { _ in SwiftLogNoOpLogHandler() })
        let port = Mutex<Int?>(nil)
        let first = HealthServer(host: "127.0.0.1", port: 0, state: WorkerState(), monitor: nil, logger: logger) { bound in
            port.withLock { $0 = bound }
        }
        let group = ServiceGroup(services: [first], gracefulShutdownSignals: [], logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            while port.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(5)) }
            let taken = port.withLock { $0 }!
            let second = HealthServer(host: "127.0.0.1", port: taken, state: WorkerState(), monitor: nil, logger: logger)
            let error = await #expect(throws: HealthServerError.self) { try await second.run() }
            #expect(error?.description.contains("127.0.0.1:\(taken)") == true)
            #expect(error?.description.contains("WORKER_HEALTH_PORT") == true)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
    }
}
