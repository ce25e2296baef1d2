@testable import ControlPlane
import Foundation
import HTTPTypes
import JobProtocol
import JobStore
import Storage
import SwarmCore
import Testing
@testable import Worker

/// fal.ai's queue protocol beside the RunPod API (falai.md), in process; `tests/python/test_fal_client.py` drives it
/// with the real fal-client over TLS.
@Suite struct FalAPITests {
    static let app = "/fal-ai/wan/v2.2-a14b/image-to-video"
    static let image = "https://example.com/cat.png"

    static var configuration: ControlPlaneConfiguration {
        var configuration = ControlPlaneConfiguration(longPollTimeout: .seconds(2))
        configuration.publicURL = "https://swarm.test"
        return configuration
    }

    @Test func submitStatusAndResultHaveFalShapes() async throws {
        try await withControlPlane(Self.configuration) { api in
            let submit = try await api.call(.post, Self.app, ["prompt": "a cat", "image_url": .string(Self.image), "seed": 7])
            #expect(submit.status == .ok, "\(submit.text)")
            let id = try #require(submit["request_id"]?.stringValue)
            #expect(submit["status"] == "IN_QUEUE")
            #expect(submit["queue_position"] == 0)
            #expect(submit["response_url"]?.stringValue == "https://swarm.test/fal-ai/wan/requests/\(id)")
            #expect(submit["status_url"]?.stringValue == "https://swarm.test/fal-ai/wan/requests/\(id)/status")
            #expect(submit["cancel_url"]?.stringValue == "https://swarm.test/fal-ai/wan/requests/\(id)/cancel")
            #expect(submit["gateway_request_id"] == nil)

            let queued = try await api.call(.get, "/fal-ai/wan/requests/\(id)/status?logs=1")
            #expect(queued["status"] == "IN_QUEUE")
            #expect(queued["queue_position"]?.intValue == 0)

            // The worker receives our input: the Wan preset with fal's defaults mapped.
            let job = try #require(try await api.take("w1"))
            let input = try #require(job["input"])
            #expect(input["preset"] == "wan22-i2v-lightx2v")
            #expect(input["init_image"] == .string(Self.image))
            #expect(input["seed"] == 7)
            #expect(input["video"]?["frames"] == 81)
            #expect(input["video"]?["fps"] == 16)

            // Both handle forms: with the app's sub-path (submit's URLs) and without (handles built from an id).
            for path in ["\(Self.app)/requests/\(id)/status", "/fal-ai/wan/requests/\(id)/status"] {
                let running = try await api.call(.get, path + "?logs=true")
                #expect(running["status"] == "IN_PROGRESS", "\(path): \(running.text)")
                #expect(running["logs"]?.arrayValue?.first?["source"] == "USER")
            }
            let withoutLogs = try await api.call(.get, "/fal-ai/wan/requests/\(id)/status?logs=0")
            #expect(withoutLogs.json?.objectValue?["logs"] == .null)

            let early = try await api.call(.get, "/fal-ai/wan/requests/\(id)")
            #expect(early.status == .badRequest)
            #expect(early["error_type"] == "request_in_progress")

            let file: JSONValue = [
                "name": "out.mp4", "content_type": "video/mp4", "bytes": 1234, "sha256": "ab", "url": "https://swarm.test/files/out.mp4",
            ]
            try await api.done(id, ["output": ["mode": "image-to-video", "files": [file], "seed": 7]])
            let done = try await api.call(.get, "\(Self.app)/requests/\(id)/status?logs=1")
            #expect(done["status"] == "COMPLETED")
            #expect(done["metrics"]?["inference_time"]?.doubleValue != nil)
            #expect(done["error"] == nil)
            #expect(done["logs"]?.arrayValue?.count == 2)

            let result = try await api.call(.get, "/fal-ai/wan/requests/\(id)")
            #expect(result.status == .ok)
            #expect(
                result.json == [
                    "video": ["url": "https://swarm.test/files/out.mp4", "content_type": "video/mp4", "file_name": "out.mp4", "file_size": 1234],
                    "seed": 7, "prompt": "a cat",
                ]
            )
        }
    }

    /// A data: image is stored as an input file: status polls and job-takes then read a link, not the picture.
    @Test func dataImageIsStoredAsAnInputFile() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fal-inputs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var configuration = Self.configuration
        configuration.outputs = OutputStorageSettings(
            configuration: StorageConfiguration(backend: .local(directory: directory)),
            signingSecret: Secret("fal-test")
        )
        try await withControlPlane(configuration) { api in
            let picture = Data(String(repeating: "not really a png ", count: 200).utf8)
            let submit = try await api.call(
                .post,
                Self.app,
                ["prompt": "a", "image_url": .string("data:image/png;base64,\(picture.base64EncodedString())")]
            )
            let id = try #require(submit["request_id"]?.stringValue, "\(submit.text)")
            let link = try #require(try await api.store.job(id: id)?.input["init_image"]?.stringValue)
            #expect(link.hasPrefix("https://swarm.test/files/"))
            let file = try await api.call(.get, String(link.dropFirst("https://swarm.test".count)), auth: .none)
            #expect(file.status == .ok)
            #expect(Data(file.text.utf8) == picture)
            let wrongType = try await api.call(.post, Self.app, ["prompt": "a", "image_url": "data:image/tiff;base64,AAAA"])
            #expect(wrongType.status == .unprocessableContent)
            #expect(wrongType["detail"]?.arrayValue?.first?["loc"] == ["body", "image_url"])
        }
    }

    @Test func failedJobCompletesWithErrorAndResultSaysWhy() async throws {
        try await withControlPlane(Self.configuration) { api in
            let id = try #require(try await api.call(.post, Self.app, ["prompt": "a", "image_url": .string(Self.image)])["request_id"]?.stringValue)
            _ = try await api.take()
            try await api.done(id, ["error": "SwarmUI ran out of memory"])
            let status = try await api.call(.get, "/fal-ai/wan/requests/\(id)/status")
            #expect(status["status"] == "COMPLETED")
            #expect(status["error"] == "SwarmUI ran out of memory")
            #expect(status["error_type"] == "runner_error")
            let result = try await api.call(.get, "/fal-ai/wan/requests/\(id)")
            #expect(result.status == .internalServerError)
            #expect(result["detail"] == "SwarmUI ran out of memory")
        }
    }

    @Test func badFieldsAreRefusedWith422NamingThem() async throws {
        try await withControlPlane(Self.configuration) { api in
            let cases: [(JSONValue, [JSONValue])] = [
                (["prompt": "a", "image_url": .string(Self.image), "num_frames": 500], ["body", "num_frames"]),
                (["prompt": "a"], ["body", "image_url"]),
                (["prompt": "a", "image_url": "ftp://x/y.png"], ["body", "image_url"]),
                (
                    ["prompt": "a", "image_url": .string(Self.image), "interpolator_model": "film", "num_interpolated_frames": 1],
                    ["body", "interpolator_model"]
                ),
                (["prompt": "a", "image_url": .string(Self.image), "enable_safety_checker": true], ["body", "enable_safety_checker"]),
                (["prompt": "a", "image_url": .string(Self.image), "resolution": "1080p"], ["body", "resolution"]),
                (["prompt": "a", "image_url": .string(Self.image), "colour": "red"], ["body", "colour"]),
            ]
            for (body, location) in cases {
                let answer = try await api.call(.post, Self.app, body)
                #expect(answer.status == .unprocessableContent, "\(body.jsonString()): \(answer.text)")
                let detail = answer["detail"]?.arrayValue?.first
                #expect(detail?["loc"] == .array(location), "\(answer.text)")
                #expect(detail?["msg"]?.stringValue?.isEmpty == false)
            }
            let lora = try await api.call(
                .post,
                "\(Self.app)/lora",
                ["prompt": "a", "image_url": .string(Self.image), "loras": [["path": "https://x/l.safetensors"]]]
            )
            #expect(lora.status == .unprocessableContent)
            #expect(lora["detail"]?.arrayValue?.first?["loc"] == ["body", "loras", 0, "path"])
            // Nothing was stored for the refused requests.
            #expect(try await api.take() == nil)
        }
    }

    @Test func keysAreCheckedWithFalsAuthorizationHeader() async throws {
        try await withControlPlane(ControlPlaneConfiguration(clientKeys: [Secret("good")]), clientKey: "good") { api in
            let body: JSONValue = ["prompt": "a", "image_url": .string(Self.image)]
            let wrong = try await api.call(.post, Self.app, body, auth: .raw("Key bad"))
            #expect(wrong.status == .unauthorized)
            #expect(wrong["detail"]?.stringValue?.contains("not recognised") == true)
            #expect(wrong["error_type"] == "authentication_error")
            let missing = try await api.call(.get, "/fal-ai/wan/requests/x/status", auth: .none)
            #expect(missing.status == .unauthorized)
            let good = try await api.call(.post, Self.app, body, auth: .raw("Key good"))
            #expect(good.status == .ok, "\(good.text)")
        }
    }

    @Test func cancelAnswersLikeFal() async throws {
        try await withControlPlane(Self.configuration) { api in
            let id = try #require(try await api.call(.post, Self.app, ["prompt": "a", "image_url": .string(Self.image)])["request_id"]?.stringValue)
            let cancel = try await api.call(.put, "/fal-ai/wan/requests/\(id)/cancel")
            #expect(cancel.status == .accepted)
            #expect(cancel.json == ["status": "CANCELLATION_REQUESTED"])
            let again = try await api.call(.put, "\(Self.app)/requests/\(id)/cancel")
            #expect(again.status == .badRequest)
            #expect(again.json == ["status": "ALREADY_COMPLETED"])
            let status = try await api.call(.get, "/fal-ai/wan/requests/\(id)/status")
            #expect(status["status"] == "COMPLETED")
            #expect(status["error_type"] == "request_cancelled")
            let unknown = try await api.call(.put, "/fal-ai/wan/requests/nope/cancel")
            #expect(unknown.status == .notFound)
            #expect(unknown["error_type"] == "NOT_FOUND")
        }
    }

    @Test func statusStreamSendsEventsUntilCompleted() async throws {
        try await withControlPlane(Self.configuration) { api in
            let id = try #require(try await api.call(.post, Self.app, ["prompt": "a", "image_url": .string(Self.image)])["request_id"]?.stringValue)
            _ = try await api.take()
            try await api.done(id, ["error": "boom"])
            let stream = try await api.call(.get, "/fal-ai/wan/requests/\(id)/status/stream?logs=1")
            #expect(stream.status == .ok)
            let events = stream.text.components(separatedBy: "\n\n").filter { $0.hasPrefix("data: ") }
            #expect(events.count == 1)
            let last = try #require(events.last)
            #expect(JSONValue.parse(Data(last.dropFirst(6).utf8))?["status"] == "COMPLETED")
        }
    }

    @Test func webhookPayloadIsFals() async throws {
        try await withControlPlane(Self.configuration) { api in
            let submit = try await api.call(
                .post,
                Self.app + "?fal_webhook=https://hooks.test/fal",
                ["prompt": "a", "image_url": .string(Self.image)]
            )
            let id = try #require(submit["request_id"]?.stringValue)
            #expect(submit["gateway_request_id"]?.stringValue == id)
            let record = try #require(try await api.store.job(id: id))
            #expect(record.webhook == "fal+https://hooks.test/fal")
            var done = record
            done.status = .completed
            done.output = ["files": [["name": "o.mp4", "content_type": "video/mp4", "bytes": 3, "url": "https://x/o.mp4"]], "seed": 1]
            let payload = FalRoutes.webhook(done)
            #expect(payload["status"] == "OK")
            #expect(payload["payload"]?["video"]?["url"] == "https://x/o.mp4")
            done.status = .failed
            done.error = "boom"
            #expect(FalRoutes.webhook(done)["status"] == "ERROR")
            #expect(FalRoutes.webhook(done)["error"] == "boom")
            let bad = try await api.call(.post, Self.app + "?fal_webhook=nope", ["prompt": "a", "image_url": .string(Self.image)])
            #expect(bad.status == .unprocessableContent)
        }
    }

    @Test func wanFieldsMapOntoThePreset() throws {
        let defaults = try FalApp.imageToVideo.jobInput(["prompt": "p", "image_url": "data:image/png;base64,AAAA"])
        #expect(defaults["width"] == 1280)
        #expect(defaults["height"] == 720)
        #expect(defaults["video"]?["resolution"] == "Image Aspect, Model Res")
        #expect(defaults["loras"] == .array(FalApp.accelerationLoRAs))
        #expect(defaults["video"]?["steps"] == nil)

        let custom = try FalApp.imageToVideo.jobInput([
            "prompt": "p", "image_url": "https://x/y.png", "resolution": "480p", "aspect_ratio": "9:16", "acceleration": "none",
            "guidance_scale": 4, "guidance_scale_2": 4, "shift": 8, "num_frames": 121, "frames_per_second": 24, "negative_prompt": "n",
            "interpolator_model": "none", "video_quality": "high", "enable_prompt_expansion": false,
        ])
        #expect(custom["width"] == 480)
        #expect(custom["height"] == 832)
        #expect(custom["video"]?["resolution"] == "Image")
        #expect(custom["video"]?["steps"] == 27)
        #expect(custom["video"]?["cfg"] == 4.0)
        #expect(custom["video"]?["frames"] == 121)
        #expect(custom["video"]?["fps"] == 24)
        #expect(custom["loras"] == [])
        #expect(custom["params"]?["sigmashift"] == 8.0)
        #expect(custom["negative_prompt"] == "n")

        #expect(throws: FalFieldError.self) {
            try FalApp.imageToVideo.jobInput(["prompt": "p", "image_url": "https://x", "guidance_scale": 3, "guidance_scale_2": 5])
        }
        let lora = try FalApp.imageToVideoLoRA.jobInput([
            "prompt": "p", "image_url": "https://x", "loras": [["path": "style", "scale": 0.8, "transformer": "low"]],
        ])
        #expect(lora["loras"]?.arrayValue?.last == ["name": "style", "weight": 0.8, "confinement": "videoswap"])
        let text = try FalApp.textToVideo.jobInput(["prompt": "p"])
        #expect(text["preset"] == "wan22-t2v-lightx2v")
        #expect(text["init_image"] == nil)
        #expect(throws: FalFieldError.self) { try FalApp.textToVideo.jobInput(["prompt": "p", "image_url": "https://x"]) }
    }

    /// What the fal mapping produces is an input the worker accepts, with the built-in presets.
    @Test func wanInputsParseOnTheWorker() throws {
        let parser = JobInputParser(presets: try Presets.load(path: nil))
        let bodies: [(FalApp, JSONValue)] = [
            (.imageToVideo, ["prompt": "p", "image_url": "https://x/y.png"]),
            (
                .imageToVideo,
                [
                    "prompt": "p", "image_url": "data:image/png;base64,AAAA", "aspect_ratio": "1:1", "resolution": "580p", "acceleration": "none",
                    "shift": 5, "seed": 3,
                ]
            ),
            (.imageToVideoLoRA, ["prompt": "p", "image_url": "https://x/y.png", "loras": [["path": "style", "scale": 0.5, "transformer": "both"]]]),
        ]
        for (app, body) in bodies {
            guard case .generate(let request) = try parser.parse(try app.jobInput(body)) else {
                Issue.record("\(app): not a generate request")
                continue
            }
            #expect(request.mode == .imageToVideo)
            #expect(request.parameters["videomodel"] != nil)
        }
        // fal's default `acceleration: regular` keeps the preset's LoRA pair: high-noise on the video stage (2), low-noise
        // on the swap stage (3); a `/lora` request's own LoRA comes after them.
        let sections: [(FalApp, JSONValue, JSONValue)] = [
            (.imageToVideo, ["prompt": "p", "image_url": "https://x/y.png"], [2, 3]),
            (.imageToVideoLoRA, ["prompt": "p", "image_url": "https://x/y.png", "loras": [["path": "style", "transformer": "low"]]], [2, 3, 3]),
        ]
        for (app, body, expected) in sections {
            guard case .generate(let request) = try parser.parse(try app.jobInput(body)) else {
                Issue.record("\(app): not a generate request")
                continue
            }
            #expect(request.parameters["lorasectionconfinement"] == expected)
            #expect(
                request.parameters["loras"]?.arrayValue?.prefix(2).map { $0 }
                    == ["wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise", "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise"]
            )
        }
        // Text-to-video runs the built-in T2V preset: its high-noise expert as the model, the low-noise one as a step-swap
        // refiner, each with its own T2V speed LoRA (base 5, refiner 1), not the image-to-video acceleration LoRA.
        guard case .generate(let text) = try parser.parse(try FalApp.textToVideo.jobInput(["prompt": "p", "num_frames": 33])) else {
            Issue.record("text-to-video: not a generate request")
            return
        }
        #expect(text.mode == .textToVideo)
        #expect(text.parameters["model"] == "Wan2.2-T2V-A14B-HighNoise-Q4_K_M.gguf")
        #expect(text.parameters["refinermodel"] == "Wan2.2-T2V-A14B-LowNoise-Q4_K_M.gguf")
        #expect(text.parameters["refinermethod"] == "StepSwap")
        #expect(text.parameters["textvideoframes"] == 33)
        #expect(text.parameters["videomodel"] == nil && text.parameters["initimage"] == nil)
        #expect(
            text.parameters["loras"] == ["wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise", "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise"]
        )
        #expect(text.parameters["lorasectionconfinement"] == [5, 1])
        guard case .generate(let slow) = try parser.parse(try FalApp.textToVideo.jobInput(["prompt": "p", "acceleration": "none"])) else {
            Issue.record("text-to-video without acceleration: not a generate request")
            return
        }
        #expect(slow.parameters["loras"] == nil && slow.parameters["steps"] == 27)
        // The RunPod API's provider field reaches the worker, which accepts it.
        #expect(throws: Never.self) {
            try parser.parse(["preset": "wan22-i2v-lightx2v", "prompt": "p", "init_image": "https://x/y.png", "provider": "vastai"])
        }
    }

    @Test func providerIsCheckedInTheRunPodAPI() async throws {
        try await withControlPlane { api in
            let id = try await api.submit(["prompt": "a", "provider": "vastai"])
            let job = try #require(try await api.take())
            #expect(job["id"]?.stringValue == id)
            #expect(job["input"]?["provider"] == "vastai")
            let bad = try await api.call(.post, "/v2/swarmui/run", ["input": ["prompt": "a", "provider": "replicate"]])
            #expect(bad.status == .badRequest)
            #expect(bad["field"] == "input.provider")
            #expect(bad["error"]?.stringValue?.contains("auto, vastai") == true)
        }
    }

    @Test func tlsFilesMustComeInPairsAndBeReadable() throws {
        #expect(try TLSFiles(certificate: nil, key: nil) == nil)
        #expect(throws: ServeError.self) { try TLSFiles(certificate: "/etc/hostname", key: nil) }
        #expect(throws: ServeError.self) { try TLSFiles(certificate: nil, key: "/etc/hostname") }
        #expect(throws: ServeError.self) { try TLSFiles(certificate: "/nonexistent/cert.pem", key: "/etc/hostname") }
        // Readable but not PEM: named when the server starts.
        let files = try #require(try TLSFiles(certificate: "/etc/hostname", key: "/etc/hostname"))
        #expect(throws: ServeError.self) { try files.configuration() }
    }
}
