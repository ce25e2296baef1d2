import AsyncHTTPClient
import JobProtocol
import Logging
import SwarmCore
import SwarmUIEmulator
import Testing

@testable import Worker

import Foundation

/// GENERATION_TIMEOUT against a slow SwarmUI (the emulator), as the RunPod SwarmUI worker bounds its generate call.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct GenerationTimeoutTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// A job runner configured from `environment` against an emulator taking `step` per step.
    static func withRunner(step: Duration, environment: [String: String], _ body: (JobRunner, RunningEmulator) async throws -> Void) async throws {
        let emulator = SwarmUIEmulator.Configuration(stepDuration: step, defaultSteps: 1)
        try await SwarmUIEmulator.withRunning(configuration: emulator) { swarm in
            let configuration = try WorkerConfiguration(environment: environment.merging(["SWARMUI_API_URL": swarm.baseURL]) { $1 })
            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPQueueClient.httpClientConfiguration())
            let swarmHTTP = SwarmUIClientBackend.makeHTTPClient(configuration)
            let runner = JobRunner(
                swarm: SwarmUIClientBackend(configuration: configuration, httpClient: swarmHTTP, logger: quiet),
                parser: JobInputParser(presets: try Presets.load(path: nil)),
                queue: ProgressOnlyQueue(),
                httpClient: http,
                inlineMaxBytes: configuration.inlineMaxBytes,
                generationTimeout: configuration.generationTimeout,
                logger: quiet
            )
            let outcome: Result<Void, any Error>
            do { outcome = .success(try await body(runner, swarm)) } catch { outcome = .failure(error) }
            try? await http.shutdown()
            try? await swarmHTTP.shutdown()
            try outcome.get()
        }
    }

    static func job(_ id: String, steps: Int) -> QueueJob {
        QueueJob(id: id, input: ["prompt": "a fox", "model": "OfficialStableDiffusion/sd_xl_base_1.0.safetensors", "steps": .int(steps)])
    }

    @Test func aGenerationPastTheTimeoutIsInterruptedAndRetryable() async throws {
        // 40 steps of 250 ms: 10 s of generation against a 1 s limit.
        try await Self.withRunner(step: .milliseconds(250), environment: ["GENERATION_TIMEOUT": "1"]) { runner, swarm in
            let started = ContinuousClock.now
            let outcome = await runner.run(Self.job("slow", steps: 40))
            let took = ContinuousClock.now - started
            guard case .report(let body) = outcome else { Issue.record("expected a report, got \(outcome)"); return }
            #expect(body.retryable == true, "\(body)")
            #expect(body.error?.contains("GENERATION_TIMEOUT (1 s)") == true, "\(body)")
            #expect(took < .seconds(6), "the job ended near the limit, not with the generation (\(took))")
            #expect(await swarm.emulator.observe().interrupts >= 1, "SwarmUI was told to stop (InterruptAll)")
        }
    }

    @Test func aGenerationWithinTheTimeoutCompletes() async throws {
        try await Self.withRunner(step: .milliseconds(20), environment: ["GENERATION_TIMEOUT": "30"]) { runner, swarm in
            let outcome = await runner.run(Self.job("quick", steps: 5))
            guard case .report(let body) = outcome else { Issue.record("expected a report, got \(outcome)"); return }
            #expect(body.error == nil && body.output?["files"]?.arrayValue?.count == 1, "\(body)")
            #expect(await swarm.emulator.observe().interrupts == 0)
        }
    }

    @Test func theDefaultsFollowTheRunPodWorker() throws {
        let plain = try WorkerConfiguration(environment: [:])
        #expect(plain.generationTimeout == .seconds(600))
        #expect(plain.volumePath == "/workspace")
        // RunPod serverless mounts its network volume at /runpod-volume.
        let runpod = try WorkerConfiguration(environment: [
            "RUNPOD_WEBHOOK_GET_JOB": "https://api.runpod.ai/v2/ep/job-take/$RUNPOD_POD_ID",
            "RUNPOD_WEBHOOK_POST_OUTPUT": "https://api.runpod.ai/v2/ep/job-done/$RUNPOD_POD_ID/$ID",
            "RUNPOD_POD_ID": "pod1",
        ])
        #expect(runpod.volumePath == "/runpod-volume")
        #expect(runpod.swarmUIFolder == "/runpod-volume/SwarmUI")
        // An explicit VOLUME_PATH wins everywhere.
        let chosen = try WorkerConfiguration(environment: [
            "VOLUME_PATH": "/data", "RUNPOD_WEBHOOK_GET_JOB": "https://x/v2/ep/job-take/$RUNPOD_POD_ID",
            "RUNPOD_WEBHOOK_POST_OUTPUT": "https://x/v2/ep/job-done/$RUNPOD_POD_ID/$ID",
        ])
        #expect(chosen.volumePath == "/data")
    }
}
