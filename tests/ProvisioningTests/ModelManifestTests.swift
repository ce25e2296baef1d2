import SwarmCore
import Testing

@testable import Worker

import Foundation

@Suite struct ModelManifestTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func parse(_ json: String) throws(ModelProvisioningError) -> ModelManifest {
        try ModelManifest(json: Data(json.utf8), source: "test.json")
    }

    func problems(_ json: String) -> [String] {
        do {
            _ = try parse(json)
            return []
        } catch {
            guard case .manifestInvalid(_, let problems) = error else { return ["unexpected \(error)"] }
            return problems
        }
    }

    @Test func theImagesManifestParsesAndCoversThePresets() throws {
        let manifest = try ModelManifest.load(path: Self.repository.appendingPathComponent("builder/models.json").path)
        #expect(manifest.models.count >= 5)
        let civitai = try #require(manifest.models.first { $0.url.contains("civitai.com") })
        #expect(civitai.tokenEnv == "CIVITAI_API_TOKEN" && civitai.tokenRequired)
        #expect(civitai.sidecarRelativePath == "diffusion_models/wan22EnhancedNSFWCameraPrompt_nsfwFASTMOVEV2Q8H.swarm.json")
        let vae = try #require(manifest.models.first { $0.folder == "VAE" })
        #expect(vae.sidecarRelativePath == "VAE/Wan/wan_2.1_vae.swarm.json")

        let presets = try Presets.load(path: Self.repository.appendingPathComponent("builder/presets.json").path)
        for required in presets.requiredModels {
            #expect(
                manifest.models.contains { $0.subtype == required.subtype && [$0.file, $0.name].contains(required.name) },
                "\(required.name) is not in models.json"
            )
        }
    }

    @Test func problemsNameTheEntryAndTheField() {
        let found = problems(
            """
            {"schema": 1, "models": [
              {"name": "a", "subtype": "Stable-Diffusion", "folder": "diffusion_models", "file": "a.gguf", "url": "https://x/a",
               "size_bytes": "big", "sha256": "xyz", "token_env": "MY_TOKEN"},
              {"name": "b", "subtype": "LoRA", "folder": "diffusion_models", "file": "../b.safetensors", "url": "ftp://x/b", "size_bytes": 1},
              {"subtype": "VAE", "folder": "VAE", "file": "c.safetensors", "url": "https://x/c", "size_bytes": 1, "token_required": true}
            ]}
            """
        )
        #expect(found.contains("models[0] ('a'): `size_bytes` must be a whole number of bytes, got \"big\""))
        #expect(found.contains("models[0] ('a'): `sha256` must be 64 hex digits or null"))
        #expect(found.contains { $0.hasPrefix("models[0] ('a'): `token_env` 'MY_TOKEN' is not a token the worker reads") })
        #expect(found.contains { $0.hasPrefix("models[1] ('b'): `folder` 'diffusion_models' is not one SwarmUI scans for LoRA") })
        #expect(found.contains("models[1] ('b'): `file` '../b.safetensors' must be a relative path without '..'"))
        #expect(found.contains("models[1] ('b'): `url` 'ftp://x/b' is not an http(s) URL"))
        #expect(found.contains("models[2]: `name` is missing"))
        #expect(found.contains("models[2]: `token_required` is true but token_env names no variable"))
    }

    @Test func duplicateDestinationsAndWrongShapesAreRejected() {
        let model = #"{"name": "a", "subtype": "VAE", "folder": "VAE", "file": "a.safetensors", "url": "https://x/a", "size_bytes": 5}"#
        #expect(problems(#"{"models": [\#(model), \#(model)]}"#) == ["models[1] ('a'): another entry already writes VAE/a.safetensors"])
        #expect(problems(#"{"schema": 2, "models": []}"#) == ["schema 2 is not supported (this worker reads schema 1)"])
        #expect(problems(#"{"files": []}"#) == [#"expected {"schema": 1, "models": [...]}"#])
        #expect(problems("not json") == ["not valid JSON"])
        let error = ModelProvisioningError.manifestInvalid(source: "/opt/swarm/models.json", problems: ["p1", "p2"])
        #expect(error.description == "the models manifest /opt/swarm/models.json is invalid:\n  - p1\n  - p2")
    }
}
