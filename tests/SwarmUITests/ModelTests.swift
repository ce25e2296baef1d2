import Foundation
import SwarmCore
import SwarmUI
import SwarmUIEmulator
import Testing

@Suite("Model routes")
struct ModelTests {
    let high = "Wan/wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors"

    @Test func listAndDescribeModels() async throws {
        try await withEmulatorClient { _, client in
            let root = try await client.listModels(path: "", depth: 1)
            #expect(root["folders"]?.arrayValue?.contains("Wan") == true)
            // The presets' six GGUF models sit at the top of the folder, as the image installs them.
            #expect(root["files"]?.arrayValue?.count == 6)
            let wan = try await client.listModels(path: "Wan", depth: 2)
            #expect(wan["files"]?.arrayValue?.count == 4)
            let loras = try await client.listModels(path: "", depth: 3, subtype: "LoRA")
            #expect(loras["files"]?.arrayValue?.count == 6)
            // `.safetensors` may be left out.
            let model = try await client.describeModel(name: "Wan/wan2.2_i2v_high_noise_14B_fp8_scaled")
            #expect(model["name"]?.stringValue == high)
            #expect(model["architecture"]?.stringValue == "wan-2_2-image2video-14b")
            let params = try await client.t2iParameters()
            #expect(params["list"]?.arrayValue?.contains { $0["id"] == "videoframes" } == true)
            #expect(params["models"]?["Stable-Diffusion"]?.arrayValue?.contains { $0.arrayValue?.first == .string(high) } == true)
        }
    }

    @Test func editModelMetadataKeepsOtherFields() async throws {
        try await withEmulatorClient { _, client in
            try await client.editModelMetadata(model: high, changes: ["title": "Wan high noise", "tags": "video,wan"])
            try await client.editModelMetadata(model: high, changes: ["author": "someone"])
            let model = try await client.describeModel(name: high)
            #expect(model["title"] == "Wan high noise")
            #expect(model["author"] == "someone")
            #expect(model["tags"] == ["video", "wan"])
            #expect(model["architecture"] == "wan-2_2-image2video-14b")
            #expect(model["standard_width"] == 960)
        }
    }

    @Test func downloadReportsProgressThenRegistersTheModel() async throws {
        try await withEmulatorClient { _, client in
            let download = SwarmUIModelDownload(
                url: "https://huggingface.co/org/repo/resolve/main/Wan2.2-I2V-HighNoise-Q8_0.gguf",
                name: "Wan/Wan22 I2V HighNoise Q8.0"
            )
            let progress = ProgressRecorder()
            try await client.downloadModel(download) { await progress.record($0) }
            let fractions = await progress.values.map(\.overallPercent)
            #expect(fractions.count >= 2 && fractions == fractions.sorted() && fractions.last == 1.0)
            // Spaces become underscores, dots vanish, the extension follows the URL.
            let model = try await client.describeModel(name: "Wan/Wan22_I2V_HighNoise_Q80.gguf")
            #expect(model["architecture"] == .null)
            try await client.editModelMetadata(model: "Wan/Wan22_I2V_HighNoise_Q80.gguf", changes: ["type": "wan-2_2-image2video-14b"])
            #expect(try await client.describeModel(name: "Wan/Wan22_I2V_HighNoise_Q80.gguf")["architecture"] == "wan-2_2-image2video-14b")
            let again = await expectSwarmUIError(.routeError(id: nil)) { try await client.downloadModel(download) { _ in } }
            #expect(again?.detail == "Model at that save path already exists.")
            let badURL = await expectSwarmUIError(.routeError(id: nil)) {
                try await client.downloadModel(SwarmUIModelDownload(url: "ftp://x/y.gguf", name: "x")) { _ in }
            }
            #expect(badURL?.detail == "Invalid URL.")
        }
    }
}

extension ModelTests {
    @Test func cancellingADownloadSignalsSwarmUI() async throws {
        try await withEmulatorClient(.init(stepDuration: .milliseconds(200))) { _, client in
            let progress = ProgressRecorder()
            let download = Task {
                try await client.downloadModel(SwarmUIModelDownload(url: "https://example.com/big.gguf", name: "big")) {
                    await progress.record($0)
                }
            }
            while await progress.values.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
            download.cancel()
            #expect((try? await download.value) == nil)
            // SwarmUI got the cancel signal and never registered the model.
            try await Task.sleep(for: .milliseconds(1500))
            let error = await expectSwarmUIError(.routeError(id: nil)) { _ = try await client.describeModel(name: "big.gguf") }
            #expect(error?.detail == "Model not found.")
        }
    }
}

actor ProgressRecorder {
    private(set) var values: [SwarmUIDownloadProgress] = []
    func record(_ value: SwarmUIDownloadProgress) { values.append(value) }
}
