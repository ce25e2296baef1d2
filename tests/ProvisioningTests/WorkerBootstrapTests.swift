import JobProtocol
import Testing

@testable import Worker

import Foundation

@Suite struct WorkerBootstrapTests {
    static let model = ggufBytes(architecture: "wan", filler: testBytes(count: 200_000, seed: 7))

    /// A volume, a seed, a manifest with one model on the test server and a presets file naming `presetModel`.
    func configuration(_ fixture: SeedFixture, servers: TestFileServers, presetModel: String) throws -> WorkerConfiguration {
        let manifest = """
            {"schema": 1, "models": [{"name": "model.gguf", "subtype": "Stable-Diffusion", "folder": "diffusion_models",
              "file": "model.gguf", "url": "\(servers.a)/files/model.gguf", "size_bytes": \(Self.model.count),
              "sha256": "\(sha256Hex(Self.model))", "architecture": "wan-2_2-image2video-14b"}]}
            """
        try fixture.write(fixture.root + "/models.json", manifest)
        try fixture.write(fixture.root + "/presets.json", #"{"presets": {"p": {"input": {"model": "\#(presetModel)"}}}}"#)
        return try WorkerConfiguration(environment: [
            "VOLUME_PATH": fixture.volume, "SWARMUI_SEED": fixture.seed, "SWARM_MODELS_FILE": fixture.root + "/models.json",
            "SWARM_PRESETS_FILE": fixture.root + "/presets.json",
        ])
    }

    @Test func prepareVolumeSeedsDownloadsAndEndsStartingTheApp() async throws {
        let fixture = try SeedFixture()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let configuration = try configuration(fixture, servers: servers, presetModel: "model.gguf")
            let state = WorkerState()
            try await WorkerBootstrap.prepareVolume(configuration: configuration, state: state, logger: quiet)
            #expect(await state.stage == .startingApp)
            #expect(FileManager.default.fileExists(atPath: configuration.swarmUIFolder + "/launch-linux.sh"))
            #expect(FileManager.default.contents(atPath: configuration.modelsPath + "/diffusion_models/model.gguf") == Data(Self.model))
            #expect(FileManager.default.fileExists(atPath: configuration.modelsPath + "/diffusion_models/model.swarm.json"))
            // Each step on the critical path is marked, for the timings logged at READY.
            #expect(await state.boot.steps.map(\.name) == ["process start", "seed check", "models", "GPU check", "preset models"])
        }
    }

    @Test func downloadAndSpeedupSettingsAreReadAndCheckedInOnePlace() throws {
        let defaults = try WorkerConfiguration(environment: [:])
        #expect(defaults.modelDownloadConnections == 32 && defaults.modelDownloadConnectionsTotal == 64)
        #expect(defaults.sageAttention == .auto && defaults.gpuCheckScript == "/opt/swarm/gpu-check.py")
        let set = try WorkerConfiguration(environment: [
            "SWARM_DOWNLOAD_CONNECTIONS": "4", "SWARM_DOWNLOAD_CONNECTIONS_TOTAL": "6", "SWARM_SAGE_ATTENTION": "OFF",
        ])
        #expect(set.modelDownloadConnections == 4 && set.modelDownloadConnectionsTotal == 6 && set.sageAttention == .off)
        let error = #expect(throws: WorkerConfigurationError.self) {
            try WorkerConfiguration(environment: ["SWARM_SAGE_ATTENTION": "maybe", "SWARM_DOWNLOAD_CONNECTIONS": "many"])
        }
        #expect(error?.description.contains("SWARM_SAGE_ATTENTION='maybe' is not one of auto, on, off") == true)
        #expect(error?.description.contains("SWARM_DOWNLOAD_CONNECTIONS='many'") == true)
    }

    @Test func theBootTimelineGivesEachStepItsShare() {
        let start = ContinuousClock.now
        var timeline = BootTimeline(started: start)
        timeline.mark("seed check", at: start + .milliseconds(20))
        timeline.mark("SwarmUI answers", at: start + .milliseconds(1520))
        timeline.mark("backend ready", at: start + .milliseconds(4000))
        #expect(timeline.summary == "4.00 s after start: seed check 0.02 s, SwarmUI answers 1.50 s, backend ready 2.48 s")
        // The process started before this code ran, never after.
        #expect(BootTimeline.processStart() <= .now)
    }

    @Test func aPresetModelNobodyProvidesIsAnError() async throws {
        let fixture = try SeedFixture()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let configuration = try configuration(fixture, servers: servers, presetModel: "other.gguf")
            let state = WorkerState()
            let error = await #expect(throws: VolumePreparationError.self) {
                try await WorkerBootstrap.prepareVolume(configuration: configuration, state: state, logger: quiet)
            }
            #expect(error?.description.contains("other.gguf") == true)
            // A preset naming a model nobody provides fails on every machine: the fleet must not rent another.
            let stage = await state.stage
            #expect(stage.failure?.kind == .permanent)
        }
    }

    @Test func downloadingIsAStageWithItsOwnName() {
        let progress = DownloadProgress(doneBytes: 1, totalBytes: 2)
        #expect(WorkerStage.downloading(progress).name.rawValue == "DOWNLOADING")
        #expect(WorkerStage.provisioning.name.rawValue == "PROVISIONING")
        let snapshot = WorkerState.Snapshot(
            stage: .downloading(progress),
            currentJobID: nil,
            undeliveredJobIDs: [],
            jobsSucceeded: 0,
            jobsFailed: 0,
            swarmUIReady: false
        )
        let metrics = HealthServer.prometheusText(snapshot, swarmUIRestarts: 0)
        #expect(metrics.contains(#"swarm_worker_stage{stage="DOWNLOADING"} 1"#))
        #expect(metrics.contains(#"swarm_worker_stage{stage="PROVISIONING"} 0"#))
    }
}
