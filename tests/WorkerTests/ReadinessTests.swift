import AsyncHTTPClient
import Foundation
import JobProtocol
import Logging
import SwarmCore
import SwarmUIEmulator
import Testing

@testable import Worker

/// Readiness proves the presets' jobs can run (features and node types), and a ComfyUI crash after the first READY
/// is waited out instead of ending the worker; against the in-process emulator.
@Suite(.timeLimit(.minutes(2)))
struct ReadinessTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    static let requirements = BackendRequirements(presets: try! Presets.load(path: nil))

    /// A ReadinessWait over the emulator configured by `configuration`, with fast polls.
    static func withReadiness(
        _ configuration: SwarmUIEmulator.Configuration = .init(),
        everReady: Bool = false,
        erroredGrace: Duration = .seconds(10),
        _ body: (ReadinessWait, RunningEmulator, SwarmUIClientBackend) async throws -> Void
    ) async throws {
        try await SwarmUIEmulator.withRunning(configuration: configuration) { running in
            let worker = try WorkerConfiguration(environment: ["SWARMUI_API_URL": running.baseURL, "VOLUME_PATH": "/tmp/none"])
            let http = SwarmUIClientBackend.makeHTTPClient(worker)
            let swarm = SwarmUIClientBackend(configuration: worker, httpClient: http, logger: quiet)
            let wait = ReadinessWait(
                swarm: swarm,
                requirements: requirements,
                timeout: .seconds(30),
                pollInterval: .milliseconds(50),
                erroredGrace: erroredGrace,
                lackingSettle: .milliseconds(300),
                everReady: { everReady },
                logger: quiet
            )
            do {
                try await body(wait, running, swarm)
            } catch {
                try? await http.shutdown()
                throw error
            }
            try await http.shutdown()
        }
    }

    @Test func theShippedPresetsNeedTheWanGGUFPath() {
        #expect(Set(Self.requirements.features) == ["gguf", "video", "variation_seed"])
        #expect(Set(Self.requirements.nodeTypes) == ["UnetLoaderGGUF", "SwarmKSampler", "SwarmSaveAnimationWS", "WanImageToVideo"])
    }

    @Test func readyWhenEveryFeatureAndNodeIsThere() async throws {
        try await Self.withReadiness { wait, _, _ in try await wait.wait() }
    }

    @Test(arguments: ["gguf", "video", "variation_seed"])
    func aMissingFeatureIsAnErrorNamingItAndTheFix(feature: String) async throws {
        try await Self.withReadiness(.init(droppedFeatures: [feature])) { wait, _, _ in
            let error = await #expect(throws: ReadinessError.self) { try await wait.wait() }
            let reason = error?.reason ?? ""
            #expect(reason.contains("supported_features lacks \(feature)"), "\(reason)")
            #expect(reason.contains("use the image's pinned ComfyUI") || reason.contains("ComfyUI-GGUF"), "the reason says what to fix: \(reason)")
        }
    }

    @Test(arguments: ["UnetLoaderGGUF", "SwarmKSampler", "SwarmSaveAnimationWS", "WanImageToVideo"])
    func aMissingNodeTypeIsAnErrorNamingIt(node: String) async throws {
        try await Self.withReadiness(.init(droppedNodeTypes: [node])) { wait, _, _ in
            let error = await #expect(throws: ReadinessError.self) { try await wait.wait() }
            #expect(error?.reason.contains("ComfyUI has no node type \(node)") == true, "\(error?.reason ?? "")")
        }
    }

    @Test func aSwarmUIWithoutTheNodeTypesRouteIsCheckedOnItsFeatures() async throws {
        try await Self.withReadiness(.init(missingRoutes: ["comfygetnodetypesforbackend"])) { wait, _, _ in try await wait.wait() }
        try await Self.withReadiness(.init(droppedFeatures: ["gguf"], missingRoutes: ["comfygetnodetypesforbackend"])) { wait, _, _ in
            await #expect(throws: ReadinessError.self) { try await wait.wait() }
        }
    }

    @Test func erroredBeforeTheFirstReadyIsFatalAtOnce() async throws {
        try await Self.withReadiness(.init(backendErrored: true)) { wait, _, _ in
            let started = ContinuousClock.now
            let error = await #expect(throws: ReadinessError.self) { try await wait.wait() }
            #expect(error?.reason.contains("errored") == true)
            #expect(ContinuousClock.now - started < .seconds(2))
        }
    }

    @Test func aComfyUICrashAfterTheFirstReadyIsWaitedOut() async throws {
        try await Self.withReadiness(everReady: true) { wait, running, swarm in
            await running.emulator.crashComfyUI(erroredFor: .milliseconds(1500), loadingFor: .milliseconds(500))
            #expect(try await swarm.readiness(requiring: .none) != .ready)
            let started = ContinuousClock.now
            try await wait.wait()
            #expect(ContinuousClock.now - started >= .milliseconds(1500), "ready only after SwarmUI's restart of the backend")
        }
    }

    @Test func erroredLongerThanTheGraceIsFatal() async throws {
        try await Self.withReadiness(everReady: true, erroredGrace: .milliseconds(500)) { wait, running, _ in
            await running.emulator.crashComfyUI(erroredFor: .seconds(30), loadingFor: .zero)
            let error = await #expect(throws: ReadinessError.self) { try await wait.wait() }
            #expect(error?.reason.contains("SWARMUI_ERRORED_GRACE") == true, "\(error?.reason ?? "")")
        }
    }

    @Test func aJobThatDiesWithComfyUIIsRetryable() async throws {
        try await Self.withReadiness(.init(stepDuration: .milliseconds(50))) { _, running, swarm in
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            let runner = JobRunner(
                swarm: swarm,
                parser: JobInputParser(presets: try Presets.load(path: nil)),
                queue: ProgressOnlyQueue(),
                httpClient: http,
                inlineMaxBytes: 1 << 20,
                logger: Self.quiet
            )
            let job = QueueJob(id: "crash", input: ["prompt": "a fox", "model": "OfficialStableDiffusion/sd_xl_base_1.0.safetensors", "steps": 100])
            let outcome = Task { await runner.run(job) }
            try await Task.sleep(for: .milliseconds(400))
            await running.emulator.crashComfyUI(erroredFor: .seconds(3), loadingFor: .zero)
            guard case .report(let body) = await outcome.value else {
                Issue.record("the job was not reported")
                return
            }
            #expect(body.retryable == true, "a ComfyUI crash is not the job's fault: \(body)")
            #expect(body.error?.contains("errored") == true, "\(body.error ?? "")")
            try await http.shutdown()
        }
    }

    @Test func aRejectedJobOnAHealthyBackendStaysNotRetryable() async throws {
        try await Self.withReadiness { _, _, swarm in
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            let runner = JobRunner(
                swarm: swarm,
                parser: JobInputParser(presets: try Presets.load(path: nil)),
                queue: ProgressOnlyQueue(),
                httpClient: http,
                inlineMaxBytes: 1 << 20,
                logger: Self.quiet
            )
            let outcome = await runner.run(QueueJob(id: "bad", input: ["prompt": "a fox", "model": "no/such-model", "steps": 1]))
            guard case .report(let body) = outcome else {
                Issue.record("the job was not reported")
                return
            }
            #expect(body.error != nil)
            #expect(body.retryable != true, "\(body)")
            try await http.shutdown()
        }
    }
}
