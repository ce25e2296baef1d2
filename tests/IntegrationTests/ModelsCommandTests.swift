import Testing

import Foundation

/// `swarm-worker models list` as a person on the box runs it, with the image's manifest and presets.
@Suite struct ModelsCommandTests {
    func modelsList(presets: String) async throws -> (status: Int32, output: [String]) {
        let volume = try Paths.temporaryDirectory("swarm-worker-models")
        defer { try? FileManager.default.removeItem(at: volume) }
        let process = try ChildProcess(
            "models list",
            executable: Paths.binary("swarm-worker"),
            arguments: ["models", "list"],
            environment: [
                "VOLUME_PATH": volume.path, "SWARM_MODELS_FILE": Paths.root.appendingPathComponent("builder/models.json").path,
                "SWARM_PRESETS_FILE": Paths.root.appendingPathComponent("builder/presets.json").path, "SWARM_PRESETS": presets,
            ]
        )
        let status = try await process.waitForExit(timeout: .seconds(30))
        return (status, process.output)
    }

    @Test func listsOnlyTheChosenPresetsModels() async throws {
        let (status, output) = try await modelsList(presets: "wan22-t2v-lightx2v")
        #expect(status == 0, "\(output)")
        let models = output.filter { $0.hasPrefix("missing") }
        #expect(models.count == 6, "\(output)")
        #expect(models.contains { $0.hasSuffix("diffusion_models/Wan2.2-T2V-A14B-LowNoise-Q4_K_M.gguf") })
        #expect(models.contains { $0.hasSuffix("VAE/Wan/wan_2.1_vae.safetensors") })
        #expect(!models.contains { $0.contains("I2V") || $0.contains("wan22Enhanced") })
        let all = try await modelsList(presets: "")
        #expect(all.output.filter { $0.hasPrefix("missing") }.count == 12, "\(all.output)")
    }

    @Test func anUnknownPresetExitsNamingThePresetsThereAre() async throws {
        let (status, output) = try await modelsList(presets: "wan22-t2v")
        #expect(status == 2)
        #expect(output.contains { $0.contains("'wan22-t2v'") && $0.contains("wan22-t2v-lightx2v") }, "\(output)")
    }
}
