import Foundation
import SwarmCore

/// A validated generate request.
struct GenerationPlan: Sendable {
    var images: Int
    var steps: Int
    var model: String
    var ext: String
    /// Video frame count, nil for a still image.
    var frames: Int?
    /// Image-to-video that samples its own start image: SwarmUI sends that still as an intermediate output.
    var stillBeforeVideo: Bool
    var doNotSave: Bool
    var previews: Bool
    var pathFormat: String?
    var promptTag: String
    var modelTag: String
    /// `sui_image_params` metadata text sent with progress and image frames.
    var metadata: String
}

/// How a generate request ended (the transport turns it into frames or an HTTP body).
enum GenerationOutcome: Sendable {
    case completed([String])
    case failed(String)
}

extension SwarmUIEmulator {
    /// SwarmUI's parameter ids: lowercase letters only (§7), so `video_frames` and `VideoFrames` are `videoframes`.
    static func normalize(_ parameters: [String: JSONValue]) -> [String: JSONValue] {
        var result: [String: JSONValue] = [:]
        for (key, value) in parameters {
            result[String(key.lowercased().filter { $0 >= "a" && $0 <= "z" })] = value
        }
        return result
    }

    /// Checks a request the way SwarmUI rejects it: `images` required, a known model, values in range.
    func plan(_ raw: [String: JSONValue]) -> Result<GenerationPlan, GenerationRejection> {
        guard let imagesValue = raw["images"] else { return .failure("Missing required parameter 'images'") }
        guard let images = imagesValue.looseInt, images >= 0 else {
            return .failure("Invalid value for parameter 'images': must be an integer")
        }
        let parameters = Self.normalize(raw.filter { $0.key != "images" && $0.key != "session_id" })
        guard let modelText = parameters["model"]?.looseString, !modelText.isEmpty else {
            return .failure("No model input given")
        }
        guard let model = matchModel(modelText) else {
            return .failure(
                "Invalid value for parameter Model: Invalid model value for param Model - '\(modelText)' - are you sure that model name is correct?"
            )
        }
        for (id, title) in [("videomodel", "Video Model"), ("videoswapmodel", "Video Swap Model"), ("refinermodel", "Refiner Model")] {
            if let text = parameters[id]?.looseString, !text.isEmpty, matchModel(text) == nil {
                return .failure(
                    "Invalid value for parameter \(title): Invalid model value for param \(title) - '\(text)' - are you sure that model name is correct?"
                )
            }
        }
        let isImageToVideo = !(parameters["videomodel"]?.looseString ?? "").isEmpty
        let isVideo =
            isImageToVideo || parameters["videoframes"] != nil || parameters["textvideoframes"] != nil
            || (matchArchitecture(model)?.contains("video") ?? false)
        let stepsID = isImageToVideo ? "videosteps" : "steps"
        let steps = parameters[stepsID]?.looseInt ?? configuration.defaultSteps
        let stepRange = isImageToVideo ? 1...200 : 0...500
        guard stepRange.contains(steps) else {
            let title = isImageToVideo ? "Video Steps" : "Steps"
            return .failure(
                "Invalid value for parameter \(title): value \(steps) is out of range (\(stepRange.lowerBound) to \(stepRange.upperBound))"
            )
        }
        let frameValue = parameters["videoframes"] ?? parameters["textvideoframes"]
        let frames = frameValue.map { $0.looseInt ?? 0 } ?? configuration.defaultVideoFrames
        guard (1...1000).contains(frames) else {
            return .failure("Invalid value for parameter Video Frames: must be an integer from 1 to 1000")
        }
        let ext: String
        if isVideo {
            switch parameters["videoformat"]?.looseString ?? "h264-mp4" {
            case "webm": ext = "webm"
            case "gif", "gif-hd": ext = "gif"
            case "webp": ext = "webp"
            case "prores": ext = "mov"
            default: ext = "mp4"
            }
        } else {
            switch (parameters["imageformat"]?.looseString ?? "png").lowercased() {
            case "jpg", "jpeg": ext = "jpg"
            case "webp": ext = "webp"
            default: ext = "png"
            }
        }
        let prompt = parameters["prompt"]?.looseString ?? ""
        let metadata = JSONValue.object([
            "sui_image_params": .object(parameters.merging(["model": .string(model)]) { _, new in new }),
            "sui_extra_data": ["generation_time": "0.00 seconds"],
            "sui_models": [["name": .string(model), "param": "model", "hash": ""]],
        ]).jsonString()
        return .success(
            GenerationPlan(
                images: images,
                steps: steps,
                model: model,
                ext: ext,
                frames: isVideo ? frames : nil,
                stillBeforeVideo: isImageToVideo && (parameters["initimagecreativity"]?.looseDouble ?? 1) > 0,
                doNotSave: parameters["donotsave"]?.looseBool ?? false,
                previews: !(parameters["nopreviews"]?.looseBool ?? false),
                pathFormat: parameters["overrideoutpathformat"]?.looseString,
                promptTag: Self.pathTag(prompt, limit: 40),
                modelTag: Self.pathTag(String(model.split(separator: "/").last ?? "").replacingOccurrences(of: ".safetensors", with: ""), limit: 40),
                metadata: metadata
            )
        )
    }

    func matchArchitecture(_ model: String) -> String? {
        exactModel(model, subtype: "Stable-Diffusion")?["architecture"]?.stringValue
    }

    /// A prompt or model name as SwarmUI puts it in a file name: path-hostile characters and dots removed.
    static func pathTag(_ text: String, limit: Int) -> String {
        let forbidden = Set("/\\:*?\"<>|.\n\r\t")
        return String(text.filter { !forbidden.contains($0) }.prefix(limit))
    }

    /// Runs one request: queue → wait for the backend → sampling with progress → outputs. Frames go to `emit`
    /// (a no-op for HTTP). Throws `Abort.restarted` when the emulated process restarted: the connection must drop.
    nonisolated func run(
        _ plan: GenerationPlan,
        ticket: Ticket,
        batchOffset: Int,
        emit: (JSONValue) async -> Void
    ) async throws(Abort) -> GenerationOutcome {
        await emit(statusJSON(session: ticket.session))
        var announcedWait = false
        var lastFrame = ContinuousClock.now
        queue: while true {
            do {
                try await check(ticket)
            } catch .backendCrashed {
                await setPhase(ticket, waitingBackend: false, live: false)
                return .failed(Self.crashMessage)
            } catch .interrupted {
                // Cancelled before reaching a backend: SwarmUI ends such a request with no output and no error.
                await setPhase(ticket, waitingBackend: false, live: false)
                return .completed([])
            }
            switch await backendState {
            case .running:
                break queue
            case .errored:
                await setPhase(ticket, waitingBackend: false, live: false)
                return .failed("No backends available!")
            case .loading:
                if !announcedWait {
                    announcedWait = true
                    await setPhase(ticket, waitingBackend: true, live: false)
                    await emit(statusJSON(session: ticket.session))
                    lastFrame = .now
                } else if ContinuousClock.now - lastFrame > .seconds(25) {
                    await emit(["keep_alive": true])
                    lastFrame = .now
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        await setPhase(ticket, waitingBackend: false, live: true)
        await noteModelLoaded(plan.model)
        await emit(statusJSON(session: ticket.session))
        var references: [String] = []
        do {
            for image in 0..<plan.images {
                let batchIndex = batchOffset + image
                if plan.stillBeforeVideo {
                    // Intermediate outputs carry negative batch indices (≤ -11) and still appear in HTTP lists.
                    let still = try await produceOutput(plan, batchIndex: -11 - image, ext: "png", size: 4096)
                    references.append(still)
                    await emit(imageFrame(still, batchIndex: -11 - image, ticket: ticket, plan: plan))
                }
                try await sample(plan, ticket: ticket, image: image, batchIndex: batchIndex, emit: emit)
                // About 2 KiB a frame: a longer video is a bigger file, as with SwarmUI.
                let size = configuration.largeOutputBytes ?? plan.frames.map { $0 * 2048 } ?? 4096
                let reference = try await produceOutput(plan, batchIndex: batchIndex, ext: plan.ext, size: size)
                references.append(reference)
                await emit(imageFrame(reference, batchIndex: batchIndex, ticket: ticket, plan: plan))
                await emit(["keep_alive": true])
            }
        } catch let abort as Abort {
            await setPhase(ticket, waitingBackend: false, live: false)
            if case .restarted = abort { throw abort }
            if case .backendCrashed = abort { return .failed(Self.crashMessage) }
            return .failed("Generation session interrupted.")
        } catch {
            await setPhase(ticket, waitingBackend: false, live: false)
            return .failed("Failed to save output: \(error)")
        }
        await setPhase(ticket, waitingBackend: false, live: false)
        return .completed(references)
    }

    private nonisolated func sample(
        _ plan: GenerationPlan,
        ticket: Ticket,
        image: Int,
        batchIndex: Int,
        emit: (JSONValue) async -> Void
    ) async throws(Abort) {
        for step in 0..<plan.steps {
            try? await Task.sleep(for: await currentStepDuration())
            try await check(ticket)
            let current = Double(step + 1) / Double(plan.steps)
            var progress: [String: JSONValue] = [
                "batch_index": .string(String(batchIndex)), "request_id": .string(String(ticket.requestID)),
                "overall_percent": .double((Double(image) + current) / Double(max(plan.images, 1))),
                "current_percent": .double(current),
            ]
            if step == 0 { progress["metadata"] = .string(plan.metadata) }
            if plan.previews, step % 5 == 4 {
                progress["preview"] = .string(OutputFiles.dataURL(size: 48, seed: "preview\(step)", ext: "jpg"))
            }
            await emit(["gen_progress": .object(progress)])
        }
    }

    /// The error a generation ends with when ComfyUI dies under it (emulated; SwarmUI's text varies with the cause).
    static let crashMessage = "ComfyUI execution failed: the backend connection was lost (emulated ComfyUI crash)"

    /// Writes the output file (or builds the data URL for `donotsave`) and returns the reference SwarmUI would send.
    private nonisolated func produceOutput(_ plan: GenerationPlan, batchIndex: Int, ext: String, size: Int) async throws -> String {
        let relative = await claimOutputPath(
            format: plan.pathFormat,
            prompt: plan.promptTag,
            model: plan.modelTag,
            batchIndex: batchIndex,
            ext: ext
        )
        if plan.doNotSave {
            return OutputFiles.dataURL(size: size, seed: relative, ext: ext)
        }
        try OutputFiles.write(to: userOutputFile(relative), size: size, ext: ext)
        return "View/local/\(relative)"
    }

    private nonisolated func imageFrame(_ reference: String, batchIndex: Int, ticket: Ticket, plan: GenerationPlan) -> JSONValue {
        [
            "image": .string(reference), "batch_index": .string(String(batchIndex)),
            "request_id": .string(String(ticket.requestID)), "metadata": .string(plan.metadata),
        ]
    }
}

/// SwarmUI's text for a rejected request.
struct GenerationRejection: Error, ExpressibleByStringLiteral, ExpressibleByStringInterpolation {
    var message: String
    init(stringLiteral value: String) { message = value }
    init(stringInterpolation: DefaultStringInterpolation) { message = String(stringInterpolation: stringInterpolation) }
}
