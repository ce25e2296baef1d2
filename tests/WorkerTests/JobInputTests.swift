import SwarmCore
import Testing

@testable import Worker

import Foundation

@Suite("Job input validation")
struct JobInputTests {
    let parser = JobInputParser(presets: try! Presets.load(path: nil))

    func parse(_ input: JSONValue) throws(InputError) -> JobAction { try parser.parse(input) }

    func generate(_ input: JSONValue) throws -> GenerateRequest {
        guard case .generate(let request) = try parse(input) else {
            Issue.record("expected a generate request")
            throw InputError(field: "", problem: "not generate")
        }
        return request
    }

    /// Every field a user can get wrong, with the field name the error must carry.
    static let badInputs: [(field: String, input: JSONValue)] = [
        ("", .string("a cat")),
        ("action", ["action": "paint", "prompt": "x", "model": "m"]),
        ("action", ["action": 3, "prompt": "x", "model": "m"]),
        ("preset", ["preset": "no-such-preset", "prompt": "x"]),
        ("prompt", ["model": "m"]),
        ("prompt", ["prompt": "   ", "model": "m"]),
        ("prompt", ["prompt": 5, "model": "m"]),
        ("negative_prompt", ["prompt": "x", "model": "m", "negative_prompt": ["a"]]),
        ("model", ["prompt": "x"]),
        ("model", ["prompt": "x", "model": 1]),
        ("seed", ["prompt": "x", "model": "m", "seed": "random"]),
        ("seed", ["prompt": "x", "model": "m", "seed": -5]),
        ("steps", ["prompt": "x", "model": "m", "steps": 0]),
        ("steps", ["prompt": "x", "model": "m", "steps": 2.5]),
        ("cfg_scale", ["prompt": "x", "model": "m", "cfg_scale": 1000]),
        ("width", ["prompt": "x", "model": "m", "width": 833]),
        ("width", ["prompt": "x", "model": "m", "width": 10]),
        ("height", ["prompt": "x", "model": "m", "height": "480"]),
        ("images", ["prompt": "x", "model": "m", "images": 100]),
        ("init_image", ["prompt": "x", "model": "m", "init_image": "ftp://example.com/a.png"]),
        ("video", ["prompt": "x", "model": "m", "video": "yes"]),
        ("video.model", ["prompt": "x", "init_image": "https://example.com/a.png", "video": ["frames": 81]]),
        ("video.frames", ["prompt": "x", "model": "m", "video": ["frames": 0]]),
        ("video.fps", ["prompt": "x", "model": "m", "video": ["fps": "16"]]),
        ("video.swap_percent", ["prompt": "x", "model": "m", "video": ["swap_percent": 2]]),
        ("video.format", ["prompt": "x", "model": "m", "video": ["format": "avi"]]),
        ("video.resolution", ["prompt": "x", "init_image": "https://example.com/a.png", "video": ["model": "v", "resolution": "4K"]]),
        ("video.steps", ["prompt": "x", "model": "m", "video": ["steps": 1000]]),
        ("video.cfg", ["prompt": "x", "model": "m", "video": ["cfg": 0]]),
        ("video.length", ["prompt": "x", "model": "m", "video": ["length": 5]]),
        ("loras", ["prompt": "x", "model": "m", "loras": "lightx2v"]),
        ("loras[0]", ["prompt": "x", "model": "m", "loras": ["lightx2v"]]),
        ("loras[0].name", ["prompt": "x", "model": "m", "loras": [["weight": 1]]]),
        ("loras[0].weight", ["prompt": "x", "model": "m", "loras": [["name": "l", "weight": 99]]]),
        ("loras[1].confinement", ["prompt": "x", "model": "m", "loras": [["name": "l"], ["name": "k", "confinement": "somewhere"]]]),
        ("params", ["prompt": "x", "model": "m", "params": [1, 2]]),
        ("sampler", ["prompt": "x", "model": "m", "sampler": "euler"]),
        ("depth", ["action": "list_models", "depth": 100]),
        ("subtype", ["action": "list_models", "subtype": "Checkpoint"]),
        ("model_name", ["action": "describe_model"]),
        ("url", ["action": "download_model", "url": "file:///etc/passwd", "model_name": "a.safetensors"]),
        ("model_name", ["action": "download_model", "url": "https://example.com/a", "model_name": "../../etc/x"]),
        ("model_type", ["action": "download_model", "url": "https://example.com/a", "model_name": "a", "model_type": "Other"]),
        ("metadata", ["action": "download_model", "url": "https://example.com/a", "model_name": "a", "metadata": 5]),
        ("metadata", ["action": "edit_model_metadata", "model_name": "a"]),
        ("duration", ["action": "keep_alive", "duration": 0]),
        ("interval", ["action": "keep_alive", "duration": 10, "interval": 60]),
    ]

    @Test("each bad field is named in the error", arguments: badInputs.indices)
    func badFieldIsNamed(index: Int) {
        let (field, input) = Self.badInputs[index]
        #expect {
            _ = try parse(input)
        } throws: { error in
            guard let error = error as? InputError else { return false }
            // The message reads "input.<field>: <what is wrong and what would be right>".
            return error.field == field && error.description.hasPrefix("input.\(field): ") && error.problem.count > 10
        }
    }

    @Test func textToImageMapsToSwarmUIParameters() throws {
        let request = try generate([
            "prompt": "a red fox", "negative_prompt": "blurry", "model": "flux.safetensors", "seed": 42, "steps": 20, "cfg_scale": 3.5,
            "width": 1024, "height": 768, "images": 2, "params": ["sampler": "euler"],
        ])
        #expect(request.mode == .textToImage)
        #expect(request.images == 2)
        #expect(request.seed == 42)
        #expect(request.parameters["prompt"] == "a red fox")
        #expect(request.parameters["negativeprompt"] == "blurry")
        #expect(request.parameters["model"] == "flux.safetensors")
        #expect(request.parameters["cfgscale"] == .double(3.5))
        #expect(request.parameters["width"] == 1024)
        #expect(request.parameters["sampler"] == "euler")
        #expect(request.parameters["images"] == nil)
    }

    @Test func presetFillsImageToVideoAndJobFieldsOverride() throws {
        let request = try generate([
            "preset": "wan22-i2v-lightx2v", "prompt": "the camera pans", "init_image": "data:image/png;base64,iVBORw0KGgo=",
            "video": ["frames": 49],
        ])
        #expect(request.mode == .imageToVideo)
        #expect(request.parameters["videomodel"] == "Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf")
        #expect(request.parameters["videoswapmodel"] == "Wan2.2-I2V-A14B-LowNoise-Q4_K_M.gguf")
        #expect(request.parameters["videoframes"] == 49, "the job's video.frames overrides the preset's 81")
        #expect(request.parameters["videofps"] == 16)
        #expect(request.parameters["videosteps"] == 4)
        #expect(request.parameters["initimage"] == "data:image/png;base64,iVBORw0KGgo=")
        #expect(request.parameters["initimagecreativity"] == 0)
        #expect(request.parameters["loras"] == ["wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise", "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise"])
        #expect(request.parameters["lorasectionconfinement"] == [2, 3], "each expert's LoRA is confined to its stage")
        #expect(request.parameters["sigmashift"] == 5)
    }

    @Test func largeDataURLInitImageIsAccepted() throws {
        let picture = "data:image/png;base64," + String(repeating: "A", count: 2_000_000)
        let request = try generate(["prompt": "x", "model": "m", "init_image": .string(picture)])
        #expect(request.parameters["initimage"] == .string(picture))
    }

    @Test func httpsInitImageIsFetchedByTheWorker() throws {
        let request = try generate(["prompt": "x", "model": "m", "init_image": "https://example.com/cat.png"])
        #expect(request.mode == .imageToImage)
        #expect(request.initImageURL == "https://example.com/cat.png")
        #expect(request.parameters["initimage"] == nil)
        // The control plane's own link for an uploaded input, on loopback or a private network.
        let local = try generate([
            "prompt": "x", "model": "m", "init_image": "http://127.0.0.1:8288/files/swarmui/_inputs/a.png?expires=1&signature=ab",
        ])
        #expect(local.initImageURL == "http://127.0.0.1:8288/files/swarmui/_inputs/a.png?expires=1&signature=ab")
    }

    @Test func textToVideoUsesTheSwapModelAsRefiner() throws {
        let request = try generate(["prompt": "waves", "video": ["model": "wan-t2v-high.gguf", "swap_model": "wan-t2v-low.gguf", "frames": 33]])
        #expect(request.mode == .textToVideo)
        #expect(request.parameters["model"] == "wan-t2v-high.gguf")
        #expect(request.parameters["refinermodel"] == "wan-t2v-low.gguf")
        #expect(request.parameters["textvideoframes"] == 33)
    }

    @Test func modelActions() throws {
        #expect(try parse(["action": "list_models"]) == .listModels(path: "", depth: 2, subtype: "Stable-Diffusion"))
        #expect(
            try parse(["action": "describe_model", "model_name": "a.gguf", "subtype": "LoRA"]) == .describeModel(name: "a.gguf", subtype: "LoRA")
        )
        #expect(try parse(["action": "keep_alive", "duration": 60, "interval": 10]) == .keepAlive(duration: .seconds(60), interval: .seconds(10)))
    }

    @Test func builtInPresetsAreTheImagesPresetsFile() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../builder/presets.json").standardized
        let onDisk = try Presets(json: Data(contentsOf: file))
        #expect(onDisk == (try Presets.load(path: nil)))
        #expect(onDisk.requiredModels.map(\.name).contains("Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf"))
    }
}
