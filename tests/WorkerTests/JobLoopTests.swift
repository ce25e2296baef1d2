import AsyncHTTPClient
import JobProtocol
import Logging
import ServiceLifecycle
import ServiceLifecycleTestKit
import SwarmCore
import SwarmUIEmulator
import Testing

@testable import Worker

import Foundation

/// The worker's job loop in this process, in the style of swift-aws-lambda-runtime's run-loop tests: a scripted
/// queue (`ScriptedQueue`) and the SwarmUI emulator on an ephemeral port, the loop assembled exactly as
/// `WorkerApplication` assembles it (attached to SwarmUI). Graceful shutdown comes from `ServiceLifecycleTestKit`,
/// not a real signal. The child-process tests keep what needs real processes (launching SwarmUI, SIGTERM reaching
/// its process group, kill -9).
@Suite(.serialized, .timeLimit(.minutes(1)))
struct JobLoopTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    static let model = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"

    static func textToImage(steps: Int = 2) -> JSONValue {
        ["prompt": "a red fox in snow", "model": .string(model), "steps": .int(steps)]
    }

    /// The worker's application attached to an emulator taking `step` per step, with a fresh volume.
    struct Rig {
        let queue: ScriptedQueue
        let swarm: RunningEmulator
        let app: WorkerApplication
        let volume: String

        /// The heartbeat (every 100 ms instead of the configured seconds) and the job services, in start order.
        func services() throws -> [any Service] {
            let state = app.state
            let heartbeat = Heartbeat(queue: queue, state: state, interval: .milliseconds(100), logger: JobLoopTests.quiet) {
                await state.snapshot().report(swarmUIRestarts: 0, logTail: [])
            }
            return [heartbeat] + (try app.jobServices())
        }

        var outboxFiles: [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: app.configuration.outboxPath)) ?? []).filter { $0.hasSuffix(".json") }
        }
    }

    /// `backend` replaces the emulator as the worker's SwarmUI (the emulator still runs, unused).
    static func withRig(
        step: Duration,
        environment: [String: String] = [:],
        backend: (any SwarmUIBackend)? = nil,
        _ body: (Rig) async throws -> Void
    ) async throws {
        let volume = FileManager.default.temporaryDirectory.appendingPathComponent("job-loop-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: volume) }
        try await SwarmUIEmulator.withRunning(configuration: .init(stepDuration: step, defaultSteps: 2)) { swarm in
            let configuration = try WorkerConfiguration(
                environment: ["SWARMUI_ATTACH": "1", "SWARMUI_API_URL": swarm.baseURL, "VOLUME_PATH": volume, "SHUTDOWN_GRACE": "1"]
                    .merging(environment) { $1 }
            )
            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPQueueClient.httpClientConfiguration())
            let swarmHTTP = SwarmUIClientBackend.makeHTTPClient(configuration)
            let queue = ScriptedQueue()
            let app = WorkerApplication(
                configuration: configuration,
                swarm: backend ?? SwarmUIClientBackend(configuration: configuration, httpClient: swarmHTTP, logger: quiet),
                queue: queue,
                httpClient: http,
                logger: quiet
            )
            let outcome: Result<Void, any Error>
            do { outcome = .success(try await body(Rig(queue: queue, swarm: swarm, app: app, volume: volume))) } catch { outcome = .failure(error) }
            try? await http.shutdown()
            try? await swarmHTTP.shutdown()
            try outcome.get()
        }
    }

    /// Runs the worker's services in a `ServiceGroup` for the duration of `body`, then shuts it down gracefully and
    /// waits for every service to end.
    static func withServices(_ rig: Rig, _ body: () async throws -> Void) async throws {
        let group = ServiceGroup(services: try rig.services(), logger: quiet)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let outcome: Result<Void, any Error>
            do { outcome = .success(try await body()) } catch { outcome = .failure(error) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            try outcome.get()
        }
    }

    @discardableResult
    static func eventually<T>(_ what: String, timeout: Duration = .seconds(20), _ probe: () async throws -> T?) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let value = try await probe() { return value }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("not seen within \(timeout): \(what)")
    }

    // MARK: Tests

    @Test func takesGeneratesAndReportsDone() async throws {
        try await Self.withRig(step: .milliseconds(100)) { rig in
            try await Self.withServices(rig) {
                rig.queue.enqueue(QueueJob(id: "j1", input: Self.textToImage(steps: 4)))
                let body = try await Self.eventually("j1's result") { rig.queue.results(of: "j1").first }
                #expect(body.error == nil, "\(body)")
                let file = try #require(body.output?["files"]?.arrayValue?.first)
                #expect(file["content_type"] == "image/png")
                #expect(file["url"]?.stringValue?.hasPrefix("data:image/png;base64,") == true, "small outputs are inlined")
                #expect(body.output?["mode"] == "text-to-image")
                let record = rig.queue.snapshot
                #expect(record.progress["j1", default: 0] > 0, "progress updates reach the queue while the job runs")
                #expect(record.pings.contains { $0.contains("j1") }, "pings name the job in progress")
                #expect(await rig.swarm.emulator.observe().generateRequests == 1)
                // The result is acknowledged, so nothing waits on the volume.
                try await Self.eventually("the outbox emptied") { rig.outboxFiles.isEmpty ? true : nil }

                // The loop goes on to the next job.
                rig.queue.enqueue(QueueJob(id: "j2", input: Self.textToImage()))
                #expect(try await Self.eventually("j2's result") { rig.queue.results(of: "j2").first }.error == nil)
            }
            #expect(rig.queue.results(of: "j1").count == 1, "delivered exactly once")
            #expect(await rig.app.state.snapshot().jobsSucceeded == 2)
        }
    }

    @Test func badInputFailsTheJobNamingTheFieldWithoutReachingSwarmUI() async throws {
        try await Self.withRig(step: .milliseconds(10)) { rig in
            try await Self.withServices(rig) {
                rig.queue.enqueue(QueueJob(id: "bad", input: ["prompt": "x", "model": .string(Self.model), "width": 833]))
                let body = try await Self.eventually("bad's result") { rig.queue.results(of: "bad").first }
                #expect(body.error?.hasPrefix("input.width: must be a multiple of 16") == true, "\(body)")
                #expect(body.retryable == nil || body.retryable == false)
                #expect(await rig.swarm.emulator.observe().generateRequests == 0, "nothing reached SwarmUI")
            }
        }
    }

    /// SIGTERM (a graceful shutdown, from the test kit) while a job generates: the loop takes no more jobs, gives the
    /// job SHUTDOWN_GRACE, then interrupts SwarmUI and reports the job retryable so the queue runs it again elsewhere.
    @Test func gracefulShutdownMidJobReportsItRetryable() async throws {
        try await Self.withRig(step: .milliseconds(300)) { rig in
            let loop = try #require(try rig.app.jobServices().first as? JobLoop)
            try await testGracefulShutdown { trigger in
                try await withThrowingTaskGroup(of: Void.self) { tasks in
                    tasks.addTask { try await loop.run() }
                    rig.queue.enqueue(QueueJob(id: "long", input: Self.textToImage(steps: 60)))
                    try await Self.eventually("the generation started") {
                        await rig.swarm.emulator.observe().generateRequests > 0 ? true : nil
                    }
                    rig.queue.enqueue(QueueJob(id: "next", input: Self.textToImage()))
                    let shutdownAt = ContinuousClock.now
                    trigger.triggerGracefulShutdown()
                    try await tasks.waitForAll()
                    // 60 steps of 300 ms would be 18 s; the grace is 1 s.
                    #expect(ContinuousClock.now - shutdownAt < .seconds(10), "the job was interrupted after the grace")
                }
            }
            let body = try #require(rig.queue.results(of: "long").first)
            #expect(body.retryable == true, "\(body)")
            #expect(await rig.swarm.emulator.observe().interrupts >= 1, "SwarmUI was told to stop (InterruptAll)")
            #expect(!rig.queue.snapshot.taken.contains("next"), "no job is taken once shutdown began")
        }
    }

    /// The queue's job-stop names the running job: SwarmUI is interrupted, the job gets no result from the worker,
    /// and the loop goes on with the next job.
    @Test func jobStopInterruptsSwarmUIAndReportsNothing() async throws {
        try await Self.withRig(step: .milliseconds(300)) { rig in
            try await Self.withServices(rig) {
                rig.queue.enqueue(QueueJob(id: "j1", input: Self.textToImage(steps: 60)))
                try await Self.eventually("the generation started") {
                    await rig.swarm.emulator.observe().generateRequests > 0 ? true : nil
                }
                rig.queue.requestStop("j1")
                try await Self.eventually("InterruptAll in SwarmUI") { await rig.swarm.emulator.observe().interrupts > 0 ? true : nil }
                rig.queue.enqueue(QueueJob(id: "j2", input: Self.textToImage()))
                #expect(try await Self.eventually("j2's result") { rig.queue.results(of: "j2").first }.error == nil)
                #expect(rig.queue.results(of: "j1").isEmpty, "a stopped job gets no result from the worker")
                #expect(await rig.app.state.snapshot().jobsFailed == 1)
            }
        }
    }

    /// The queue goes down while a job runs: the result waits on the volume and the loop keeps retrying the take;
    /// once the queue is back the result is delivered exactly once and leaves the volume, and new jobs run.
    @Test func aResultOutlivesAQueueOutage() async throws {
        try await Self.withRig(step: .milliseconds(100)) { rig in
            try await Self.withServices(rig) {
                rig.queue.enqueue(QueueJob(id: "j1", input: Self.textToImage(steps: 6)))
                try await Self.eventually("j1 taken") { rig.queue.snapshot.taken.contains("j1") ? true : nil }
                rig.queue.setDown(true)
                try await Self.eventually("the result kept on the volume") { rig.outboxFiles.isEmpty ? nil : true }
                #expect(rig.queue.results(of: "j1").isEmpty)
                #expect(await rig.app.state.jobsToReport.contains("j1"), "an undelivered result stays leased")
                // The loop and the outbox keep trying while the queue is down.
                let failed = rig.queue.snapshot.failedCalls
                try await Self.eventually("calls retried during the outage") { rig.queue.snapshot.failedCalls > failed + 1 ? true : nil }

                rig.queue.setDown(false)
                let body = try await Self.eventually("j1's result after the outage") { rig.queue.results(of: "j1").first }
                #expect(body.output?["files"] != nil, "\(body)")
                try await Self.eventually("the outbox emptied") { rig.outboxFiles.isEmpty ? true : nil }
                rig.queue.enqueue(QueueJob(id: "j2", input: Self.textToImage()))
                #expect(try await Self.eventually("j2's result") { rig.queue.results(of: "j2").first }.error == nil)
            }
            #expect(rig.queue.results(of: "j1").count == 1, "the result arrives exactly once")
        }
    }

    /// SwarmUI drops the connection mid-job (a crash, a restart): the job is reported retryable, and the loop checks
    /// that SwarmUI is ready again before it takes the next job, which then runs.
    @Test func swarmUIFailingMidJobIsRetryableAndReadinessIsCheckedAgain() async throws {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]
        let swarm = ScriptedSwarmUI([.fail(SwarmUIBackendError(.unavailable, "connection reset by peer")), .output(bytes: png)])
        try await Self.withRig(step: .zero, backend: swarm) { rig in
            try await Self.withServices(rig) {
                rig.queue.enqueue(QueueJob(id: "j1", input: Self.textToImage()))
                let failed = try await Self.eventually("j1's result") { rig.queue.results(of: "j1").first }
                #expect(failed.retryable == true, "\(failed)")
                #expect(failed.error?.contains("connection reset by peer") == true, "\(failed)")
                let checksAfterFailure = swarm.snapshot.readinessChecks
                #expect(checksAfterFailure >= 2, "readiness checked at start and again after the failure")

                rig.queue.enqueue(QueueJob(id: "j2", input: Self.textToImage()))
                let body = try await Self.eventually("j2's result") { rig.queue.results(of: "j2").first }
                let file = try #require(body.output?["files"]?.arrayValue?.first)
                #expect(file["bytes"]?.intValue == png.count)
                #expect(file["url"]?.stringValue == "data:image/png;base64,\(Data(png).base64EncodedString())")
            }
            #expect(swarm.snapshot.generations == 2)
        }
    }
}
