import Foundation
import JobProtocol
import JobStore
import SwarmCore

/// A field of a fal request that this server cannot honour, answered as fal's 422
/// (`{"detail": [{"loc": ["body", field], "msg", "type"}]}`).
struct FalFieldError: Error, Sendable, Equatable {
    var field: String
    var message: String
    var type: String

    init(_ field: String, _ message: String, type: String = "value_error") {
        self.field = field
        self.message = message
        self.type = type
    }
}

/// The fal apps this server answers, and how their inputs and results map onto our job input (`preset`, `video`,
/// `loras`, `params`) and output (`files`, `seed`). Pure: no I/O.
enum FalApp: String, CaseIterable, Sendable {
    case imageToVideo = "image-to-video"
    case imageToVideoLoRA = "image-to-video/lora"
    case textToVideo = "text-to-video"

    /// The owner and alias: what handles built from an id keep (`/fal-ai/wan/requests/{id}`), falai.md §2.
    static let base = "fal-ai/wan"
    /// fal's page writes the version both ways (falai.md §6).
    static let versions = ["v2.2-a14b", "v2.2-a14B"]

    /// The worker preset each app runs on (builder/presets.json).
    var preset: String {
        switch self {
        case .imageToVideo, .imageToVideoLoRA: "wan22-i2v-lightx2v"
        case .textToVideo: "wan22-t2v-lightx2v"
        }
    }

    /// The image-to-video preset's 4-step LoRA pair, one per Wan 2.2 expert (builder/presets.json): a job's list replaces
    /// the preset's, so `acceleration: regular` puts both back, the high-noise one on the video stage and the low-noise
    /// one on the swap stage.
    static let accelerationLoRAs: [JSONValue] = [
        ["name": "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise", "weight": 1, "confinement": "video"],
        ["name": "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise", "weight": 1, "confinement": "videoswap"],
    ]

    /// Width and height of fal's resolutions per aspect ratio, multiples of 16.
    static let sizes: [String: [String: (Int, Int)]] = [
        "480p": ["16:9": (832, 480), "9:16": (480, 832), "1:1": (624, 624)],
        "580p": ["16:9": (1024, 576), "9:16": (576, 1024), "1:1": (768, 768)],
        "720p": ["16:9": (1280, 720), "9:16": (720, 1280), "1:1": (960, 960)],
    ]

    /// Our job input for a fal request body; every field is mapped, or refused with the reason.
    func jobInput(_ body: JSONValue?) throws(FalFieldError) -> JSONValue {
        guard let fields = body?.objectValue else {
            throw FalFieldError(
                "body",
                "expected a JSON object with the model input, such as {\"prompt\": ..., \"image_url\": ...}",
                type: "type_error.dict"
            )
        }
        let f = FalFields(fields)
        var allowed: Set<String> = [
            "prompt", "num_frames", "frames_per_second", "negative_prompt", "seed", "resolution", "aspect_ratio",
            "num_inference_steps", "guidance_scale", "guidance_scale_2", "shift", "acceleration", "interpolator_model",
            "num_interpolated_frames", "adjust_fps_for_interpolation", "video_quality", "video_write_mode",
            "enable_safety_checker", "enable_output_safety_checker", "enable_prompt_expansion",
        ]
        if self != .textToVideo { allowed.formUnion(["image_url", "end_image_url"]) }
        if self == .imageToVideoLoRA { allowed.insert("loras") }
        if let unknown = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw FalFieldError(
                unknown,
                "extra field not permitted by \(Self.base)/v2.2-a14b/\(rawValue); allowed: \(allowed.sorted().joined(separator: ", "))",
                type: "value_error.extra"
            )
        }

        var input: [String: JSONValue] = ["preset": .string(preset)]
        var video: [String: JSONValue] = [:]
        var params: [String: JSONValue] = [:]
        input["prompt"] = .string(try f.requiredString("prompt"))
        if let negative = try f.string("negative_prompt") { input["negative_prompt"] = .string(negative) }
        if let seed = try f.int("seed", in: 0...4_294_967_295) { input["seed"] = .int(seed) }
        if self != .textToVideo {
            let image = try f.requiredString("image_url")
            guard image.hasPrefix("https://") || image.hasPrefix("http://") || (image.hasPrefix("data:image/") && image.contains(";base64,")) else {
                throw FalFieldError("image_url", "must be an https:// URL or a data:image/...;base64, URI (fal_client.encode_file makes one)")
            }
            input["init_image"] = .string(image)
            if try f.string("end_image_url") != nil {
                throw FalFieldError("end_image_url", "not supported here: the Wan preset animates from one start image; leave it out or null")
            }
        }
        video["frames"] = .int(try f.int("num_frames", in: 17...161) ?? 81)
        video["fps"] = .int(try f.int("frames_per_second", in: 4...60) ?? 16)

        let resolution = try f.choice("resolution", ["480p", "580p", "720p"]) ?? "720p"
        let ratios = self == .textToVideo ? ["16:9", "9:16", "1:1"] : ["auto", "16:9", "9:16", "1:1"]
        let ratio = try f.choice("aspect_ratio", ratios) ?? (self == .textToVideo ? "16:9" : "auto")
        let size = Self.sizes[resolution]?[ratio == "auto" ? "16:9" : ratio] ?? (1280, 720)
        input["width"] = .int(size.0)
        input["height"] = .int(size.1)
        // "auto" keeps the image's aspect at the resolution's pixel count; a fixed ratio makes the video that size.
        if self != .textToVideo { video["resolution"] = .string(ratio == "auto" ? "Image Aspect, Model Res" : "Image") }

        let accelerated = (try f.choice("acceleration", ["none", "regular"]) ?? "regular") == "regular"
        var loras: [JSONValue] = accelerated ? Self.accelerationLoRAs : []
        if let steps = try f.int("num_inference_steps", in: 2...40) {
            video["steps"] = .int(steps)
        } else if !accelerated {
            video["steps"] = 27  // fal's default; the preset's 4 steps only suit the acceleration LoRA
        }
        let guidance = try f.number("guidance_scale", in: 1...10)
        if let guidance {
            video["cfg"] = .double(guidance)
        } else if !accelerated {
            video["cfg"] = 3.5
        }
        if let second = try f.number("guidance_scale_2", in: 1...10), second != guidance {
            throw FalFieldError(
                "guidance_scale_2",
                "a separate guidance for the low-noise stage is not supported here: both stages use guidance_scale; send the same value or leave it out"
            )
        }
        if let shift = try f.number("shift", in: 1...10) { params["sigmashift"] = .double(shift) }

        let interpolator = try f.choice("interpolator_model", ["none", "film", "rife"]) ?? "none"
        let interpolated = try f.int("num_interpolated_frames", in: 0...4) ?? 0
        if interpolator != "none", interpolated > 0 {
            throw FalFieldError(
                "interpolator_model",
                "frame interpolation (\(interpolator)) is not available on this server's SwarmUI workers; send \"none\" (or num_interpolated_frames 0) and raise frames_per_second instead"
            )
        }
        _ = try f.bool("adjust_fps_for_interpolation")  // meaningful only with interpolation, which is refused above
        if let quality = try f.choice("video_quality", ["low", "medium", "high", "maximum"]), quality != "high" {
            throw FalFieldError(
                "video_quality",
                "this server writes SwarmUI's h264 MP4 at one quality, fal's \"high\"; send \"high\" or leave it out"
            )
        }
        if let mode = try f.choice("video_write_mode", ["fast", "balanced", "small"]), mode != "balanced" {
            throw FalFieldError(
                "video_write_mode",
                "this server writes SwarmUI's h264 MP4 one way, fal's \"balanced\"; send \"balanced\" or leave it out"
            )
        }
        for flag in ["enable_safety_checker", "enable_output_safety_checker"] where try f.bool(flag) == true {
            throw FalFieldError(flag, "this server has no safety checker; send false or leave it out")
        }
        if try f.bool("enable_prompt_expansion") == true {
            throw FalFieldError("enable_prompt_expansion", "this server does not rewrite prompts; send false or leave it out")
        }
        if self == .imageToVideoLoRA, let list = try f.array("loras") {
            for (index, item) in list.enumerated() { loras.append(try Self.lora(item, index: index)) }
        }
        video["format"] = "h264-mp4"
        input["video"] = .object(video)
        // The acceleration LoRA is an image-to-video one: text-to-video keeps its preset's own T2V LoRA pair, or none.
        if self != .textToVideo || !accelerated { input["loras"] = .array(self == .textToVideo ? [] : loras) }
        if !params.isEmpty { input["params"] = .object(params) }
        return .object(input)
    }

    /// fal's `{path, scale, transformer}` as our `{name, weight, confinement}`: `path` names a LoRA the workers have.
    private static func lora(_ item: JSONValue, index: Int) throws(FalFieldError) -> JSONValue {
        let field = "loras.\(index)"
        guard let object = item.objectValue else { throw FalFieldError(field, "must be an object {\"path\", \"scale\", \"transformer\"}") }
        let f = FalFields(object, prefix: field + ".")
        let path = try f.requiredString("path")
        if path.contains("://") {
            throw FalFieldError(
                field + ".path",
                "workers load LoRAs by name, not URL: install it once with the job input {\"action\": \"download_model\", \"url\": ..., \"model_type\": \"LoRA\"} and pass its name here"
            )
        }
        let confinement: String
        switch try f.choice("transformer", ["high", "low", "both"]) ?? "high" {
        case "low": confinement = "videoswap"
        case "both": confinement = "everywhere"
        default: confinement = "video"
        }
        if let unknown = object.keys.sorted().first(where: { !["path", "scale", "transformer", "weight_name"].contains($0) }) {
            throw FalFieldError(
                field + "." + unknown,
                "extra field not permitted; a LoRA is {\"path\", \"scale\", \"transformer\"}",
                type: "value_error.extra"
            )
        }
        if try f.string("weight_name") != nil {
            throw FalFieldError(field + ".weight_name", "not supported: name the LoRA file itself in path")
        }
        return ["name": .string(path), "weight": .double(try f.number("scale", in: -4...4) ?? 1), "confinement": .string(confinement)]
    }

    /// fal's output, `{video: {url, content_type, file_name, file_size}, seed, prompt}`, from a completed job's
    /// `{files: [{url, content_type, name, bytes}], seed}`; nil when the job produced no file.
    static func output(of job: JobRecord) -> JSONValue? {
        guard let file = job.output?["files"]?.arrayValue?.first?.objectValue, let url = file["url"] else { return nil }
        var fields: [String: JSONValue] = [
            "video": [
                "url": url,
                "content_type": file["content_type"] ?? "video/mp4",
                "file_name": file["name"] ?? .null,
                "file_size": file["bytes"] ?? .null,
            ],
            "seed": job.output?["seed"] ?? .null,
        ]
        if let prompt = job.input["prompt"] { fields["prompt"] = prompt }
        return .object(fields)
    }
}

/// Typed reads of a fal request body; errors name the field as fal's `loc` would.
struct FalFields {
    let values: [String: JSONValue]
    let prefix: String

    init(_ values: [String: JSONValue], prefix: String = "") {
        self.values = values
        self.prefix = prefix
    }

    private func raw(_ key: String) -> JSONValue? {
        guard let value = values[key], !value.isNull else { return nil }
        return value
    }

    func string(_ key: String) throws(FalFieldError) -> String? {
        guard let value = raw(key) else { return nil }
        guard let text = value.stringValue else {
            throw FalFieldError(prefix + key, "str type expected, got \(value.typeName)", type: "type_error.str")
        }
        return text
    }

    func requiredString(_ key: String) throws(FalFieldError) -> String {
        guard let text = try string(key), !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw FalFieldError(prefix + key, "field required", type: "value_error.missing")
        }
        return text
    }

    func choice(_ key: String, _ options: [String]) throws(FalFieldError) -> String? {
        guard let text = try string(key) else { return nil }
        guard options.contains(text) else {
            throw FalFieldError(
                prefix + key,
                "unexpected value '\(text)'; permitted: \(options.map { "'\($0)'" }.joined(separator: ", "))",
                type: "value_error.const"
            )
        }
        return text
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws(FalFieldError) -> Int? {
        guard let value = raw(key) else { return nil }
        guard let number = value.intValue else { throw FalFieldError(prefix + key, "value is not a valid integer", type: "type_error.integer") }
        guard range.contains(number) else {
            throw FalFieldError(
                prefix + key,
                "ensure this value is between \(range.lowerBound) and \(range.upperBound) (got \(number))",
                type: "value_error.number"
            )
        }
        return number
    }

    func number(_ key: String, in range: ClosedRange<Double>) throws(FalFieldError) -> Double? {
        guard let value = raw(key) else { return nil }
        guard let number = value.doubleValue, number.isFinite else {
            throw FalFieldError(prefix + key, "value is not a valid number", type: "type_error.float")
        }
        guard range.contains(number) else {
            throw FalFieldError(
                prefix + key,
                "ensure this value is between \(range.lowerBound) and \(range.upperBound) (got \(number))",
                type: "value_error.number"
            )
        }
        return number
    }

    func bool(_ key: String) throws(FalFieldError) -> Bool? {
        guard let value = raw(key) else { return nil }
        guard case .bool(let flag) = value else {
            throw FalFieldError(prefix + key, "value could not be parsed to a boolean", type: "type_error.bool")
        }
        return flag
    }

    func array(_ key: String) throws(FalFieldError) -> [JSONValue]? {
        guard let value = raw(key) else { return nil }
        guard let list = value.arrayValue else { throw FalFieldError(prefix + key, "value is not a valid list", type: "type_error.list") }
        return list
    }
}
