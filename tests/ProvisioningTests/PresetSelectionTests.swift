import JobProtocol
import Testing

@testable import Worker

import Foundation

/// `SWARM_PRESETS`: a worker downloads, checks and serves only the presets it is told to.
@Suite struct PresetSelectionTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let a = ggufBytes(architecture: "wan", filler: testBytes(count: 100_000, seed: 11))
    static let b = ggufBytes(architecture: "wan", filler: testBytes(count: 100_000, seed: 12))

    @Test func theListIsReadInTheConfiguration() throws {
        #expect(try WorkerConfiguration(environment: [:]).presetNames == nil)
        #expect(try WorkerConfiguration(environment: ["SWARM_PRESETS": " , "]).presetNames == nil)
        let set = try WorkerConfiguration(environment: ["SWARM_PRESETS": " wan22-i2v-lightx2v, wan22-t2v-lightx2v ,"])
        #expect(set.presetNames == ["wan22-i2v-lightx2v", "wan22-t2v-lightx2v"])
        #expect(try set.loadPresets().names == ["wan22-i2v-lightx2v", "wan22-t2v-lightx2v"])
        #expect(try WorkerConfiguration(environment: [:]).loadPresets().names.count == 3)
    }

    @Test func anUnknownNameIsAnErrorListingThePresetsThereAre() throws {
        let configuration = try WorkerConfiguration(environment: ["SWARM_PRESETS": "wan22-i2v-lightx2v,wan22-t2v"])
        let error = #expect(throws: PresetsError.self) { try configuration.loadPresets() }
        #expect(error?.description.contains("'wan22-t2v'") == true)
        #expect(error?.description.contains("wan22-i2v-enhanced-fastmove, wan22-i2v-lightx2v, wan22-t2v-lightx2v") == true)
    }

    @Test func theImagesManifestLimitedToOnePresetKeepsItsModelsAndTheSharedOnes() throws {
        let manifest = try ModelManifest.load(path: Self.repository.appendingPathComponent("builder/models.json").path)
        let all = try Presets.load(path: Self.repository.appendingPathComponent("builder/presets.json").path)
        let i2v = manifest.limited(to: try all.selecting(["wan22-i2v-lightx2v"])).models.map(\.name)
        #expect(
            i2v == [
                "Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf", "Wan2.2-I2V-A14B-LowNoise-Q4_K_M.gguf",
                "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise", "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise",
                "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "Wan/wan_2.1_vae.safetensors",
            ]
        )
        let t2v = manifest.limited(to: try all.selecting(["wan22-t2v-lightx2v"]))
        #expect(
            t2v.models.filter { $0.subtype == "Stable-Diffusion" }.map(\.name) == [
                "Wan2.2-T2V-A14B-HighNoise-Q4_K_M.gguf", "Wan2.2-T2V-A14B-LowNoise-Q4_K_M.gguf",
            ]
        )
        #expect(t2v.models.filter { $0.subtype == "LoRA" }.allSatisfy { $0.name.contains("_t2v_") })
        #expect(t2v.models.count == 6)
        // Every preset chosen: every model, as with SWARM_PRESETS unset.
        #expect(manifest.limited(to: all) == manifest)
    }

    /// A manifest of a.gguf (preset `a`) and b.gguf (preset `b`), both on the test server.
    func configuration(_ fixture: SeedFixture, servers: TestFileServers, presets: String) throws -> WorkerConfiguration {
        let entries = ["a", "b"].map { name in
            let bytes = name == "a" ? Self.a : Self.b
            return """
                {"name": "\(name).gguf", "subtype": "Stable-Diffusion", "folder": "diffusion_models", "file": "\(name).gguf",
                 "url": "\(servers.a)/files/\(name).gguf", "size_bytes": \(bytes.count), "sha256": "\(sha256Hex(bytes))",
                 "architecture": "wan-2_2-image2video-14b"}
                """
        }
        try fixture.write(fixture.root + "/models.json", #"{"schema": 1, "models": [\#(entries.joined(separator: ","))]}"#)
        try fixture.write(
            fixture.root + "/presets.json",
            #"{"presets": {"a": {"input": {"model": "a.gguf"}}, "b": {"input": {"model": "b.gguf", "video": {"model": "b.gguf"}}}}}"#
        )
        return try WorkerConfiguration(environment: [
            "VOLUME_PATH": fixture.volume, "SWARMUI_SEED": fixture.seed, "SWARM_MODELS_FILE": fixture.root + "/models.json",
            "SWARM_PRESETS_FILE": fixture.root + "/presets.json", "SWARM_PRESETS": presets,
        ])
    }

    @Test func theBootDownloadsOnlyTheChosenPresetsModels() async throws {
        let fixture = try SeedFixture()
        try await TestFileServers.withServers(files: ["a.gguf": Self.a, "b.gguf": Self.b]) { servers in
            let configuration = try configuration(fixture, servers: servers, presets: "a")
            let state = WorkerState()
            try await WorkerBootstrap.prepareVolume(configuration: configuration, state: state, logger: quiet)
            #expect(await state.stage == .startingApp)
            #expect(FileManager.default.contents(atPath: configuration.modelsPath + "/diffusion_models/a.gguf") == Data(Self.a))
            #expect(!FileManager.default.fileExists(atPath: configuration.modelsPath + "/diffusion_models/b.gguf"))
            // SwarmUI is asked only for what preset `a` needs: no video features for b's video preset.
            let requirements = BackendRequirements(presets: try configuration.loadPresets())
            #expect(!requirements.features.contains("video"))
            #expect(BackendRequirements(presets: try Presets.load(path: configuration.presetsFile)).features.contains("video"))
        }
    }

    @Test func anUnknownPresetStopsTheBootBeforeAnyDownload() async throws {
        let fixture = try SeedFixture()
        try await TestFileServers.withServers(files: ["a.gguf": Self.a, "b.gguf": Self.b]) { servers in
            let configuration = try configuration(fixture, servers: servers, presets: "a,c")
            let state = WorkerState()
            let error = await #expect(throws: VolumePreparationError.self) {
                try await WorkerBootstrap.prepareVolume(configuration: configuration, state: state, logger: quiet)
            }
            #expect(error?.description.contains("'c'") == true && error?.description.contains("it has a, b") == true)
            #expect(await state.stage.failure?.kind == .permanent)
            #expect(!FileManager.default.fileExists(atPath: configuration.modelsPath + "/diffusion_models/a.gguf"))
        }
    }
}
