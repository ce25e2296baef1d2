import SwarmCore

/// A job's `input`, validated: what the worker will do, or why it will not.
public enum JobAction: Sendable, Hashable {
    case generate(GenerateRequest)
    case listModels(path: String, depth: Int, subtype: String)
    case describeModel(name: String, subtype: String)
    case downloadModel(url: String, type: String, name: String, metadata: JSONValue?)
    case editModelMetadata(model: String, subtype: String, changes: [String: JSONValue])
    case keepAlive(duration: Duration, interval: Duration)
}

public enum GenerationMode: String, Sendable, Hashable {
    case textToImage = "text-to-image"
    case imageToImage = "image-to-image"
    case imageToVideo = "image-to-video"
    case textToVideo = "text-to-video"
}

public struct GenerateRequest: Sendable, Hashable {
    public var mode: GenerationMode
    public var images: Int
    public var seed: Int
    /// SwarmUI parameters, ready to send (route argument `images` excluded).
    public var parameters: [String: JSONValue]
    /// An `init_image` given as an http(s) URL, which the worker fetches before generating.
    public var initImageURL: String?
}

/// A field of the job input that is wrong, and what would be right.
public struct InputError: Error, Sendable, Hashable, CustomStringConvertible {
    public var field: String
    public var problem: String

    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }

    public var description: String { "input.\(field): \(problem)" }
}

/// Turns a job's `input` into a `JobAction`, checking every field before anything runs.
public struct JobInputParser: Sendable {
    public var presets: Presets

    public static let actions = ["generate", "list_models", "describe_model", "download_model", "edit_model_metadata", "keep_alive"]
    static let subtypes = ["Stable-Diffusion", "LoRA", "VAE", "Embedding", "ControlNet", "Clip", "ClipVision"]
    static let videoFormats = ["h264-mp4", "h265-mp4", "webm", "webp", "gif", "gif-hd", "prores"]
    static let videoResolutions = ["Image", "Image Aspect, Model Res", "Model Preferred"]
    /// LoRA section confinement names and SwarmUI's ids for them (swarmui.md §7).
    static let confinements: [String: Int] = ["everywhere": 0, "base": 5, "refiner": 1, "video": 2, "videoswap": 3]

    public init(presets: Presets) {
        self.presets = presets
    }

    public func parse(_ input: JSONValue) throws(InputError) -> JobAction {
        guard var fields = input.objectValue else {
            throw InputError(field: "", problem: "the input must be a JSON object, got \(input.typeName)")
        }
        let action = try Fields(fields).string("action") ?? "generate"
        switch action {
        case "generate":
            if let presetName = try Fields(fields).string("preset") {
                guard let preset = presets.named(presetName) else {
                    let known = presets.names.joined(separator: ", ")
                    throw InputError(field: "preset", problem: "unknown preset '\(presetName)'; known presets: \(known.isEmpty ? "none" : known)")
                }
                fields = Presets.merge(preset, under: fields)
            }
            return .generate(try parseGenerate(Fields(fields)))
        case "list_models":
            let f = Fields(fields)
            return .listModels(path: try f.string("path") ?? "", depth: try f.int("depth", in: 1...20) ?? 2, subtype: try subtype(f))
        case "describe_model":
            let f = Fields(fields)
            return .describeModel(name: try f.requiredString("model_name"), subtype: try subtype(f))
        case "download_model":
            let f = Fields(fields)
            let url = try f.requiredString("url")
            guard url.hasPrefix("https://") || url.hasPrefix("http://") else {
                throw InputError(field: "url", problem: "must start with https:// (or http://)")
            }
            let name = try f.requiredString("model_name")
            guard !name.contains(".."), !name.hasPrefix("/") else {
                throw InputError(field: "model_name", problem: "must be a relative name inside the model folder, without '..'")
            }
            let type = try f.string("model_type") ?? "Stable-Diffusion"
            guard Self.subtypes.contains(type) else {
                throw InputError(field: "model_type", problem: "must be one of \(Self.subtypes.joined(separator: ", "))")
            }
            let metadata = fields["metadata"]
            if let metadata, metadata.objectValue == nil, metadata.stringValue == nil, !metadata.isNull {
                throw InputError(field: "metadata", problem: "must be an object or a JSON string, got \(metadata.typeName)")
            }
            return .downloadModel(url: url, type: type, name: name, metadata: metadata)
        case "edit_model_metadata":
            let f = Fields(fields)
            let model = try f.requiredString("model_name")
            guard let changes = fields["metadata"]?.objectValue, !changes.isEmpty else {
                throw InputError(
                    field: "metadata",
                    problem: "must be a non-empty object of the fields to change (title, author, type, description, ...)"
                )
            }
            return .editModelMetadata(model: model, subtype: try subtype(f), changes: changes)
        case "keep_alive":
            let f = Fields(fields)
            let duration = try f.int("duration", in: 1...86_400) ?? 3600
            let interval = try f.int("interval", in: 1...3600) ?? 30
            guard interval <= duration else {
                throw InputError(field: "interval", problem: "must not exceed duration (\(duration) s)")
            }
            return .keepAlive(duration: .seconds(duration), interval: .seconds(interval))
        default:
            throw InputError(field: "action", problem: "unknown action '\(action)'; use one of \(Self.actions.joined(separator: ", "))")
        }
    }

    private func subtype(_ f: Fields) throws(InputError) -> String {
        let value = try f.string("subtype") ?? "Stable-Diffusion"
        guard Self.subtypes.contains(value) else {
            throw InputError(field: "subtype", problem: "must be one of \(Self.subtypes.joined(separator: ", "))")
        }
        return value
    }

    private func parseGenerate(_ f: Fields) throws(InputError) -> GenerateRequest {
        var p: [String: JSONValue] = [:]
        let prompt = try f.requiredString("prompt", maxLength: 20_000, allowEmpty: false)
        p["prompt"] = .string(prompt)
        if let negative = try f.string("negative_prompt", maxLength: 20_000) { p["negativeprompt"] = .string(negative) }
        let seed = try f.int("seed", in: -1...4_294_967_295) ?? -1
        p["seed"] = .int(seed)
        if let steps = try f.int("steps", in: 1...500) { p["steps"] = .int(steps) }
        if let cfg = try f.number("cfg_scale", in: 0...100) { p["cfgscale"] = .double(cfg) }
        for side in ["width", "height"] {
            if let value = try f.int(side, in: 64...4096) {
                guard value % 16 == 0 else {
                    throw InputError(field: side, problem: "must be a multiple of 16 (got \(value)); 832 or 480 suit Wan 2.2")
                }
                p[side] = .int(value)
            }
        }
        let images = try f.int("images", in: 1...16) ?? 1

        let video = try f.object("video")
        // A data URL carries the whole picture: allow what the queue's body limit allows.
        let initImage = try f.string("init_image", maxLength: 48 << 20)
        var initImageURL: String?
        if let initImage {
            if initImage.hasPrefix("data:image/") && initImage.contains(";base64,") {
                p["initimage"] = .string(initImage)
            } else if initImage.hasPrefix("https://") || initImage.hasPrefix("http://") {
                // http too: a control plane on a private network or loopback links its own uploads (`/v2/{endpoint}/inputs`) that way.
                initImageURL = initImage
            } else {
                throw InputError(field: "init_image", problem: "must be an https:// (or http://) URL or a data:image/...;base64, URL")
            }
        }

        let mode: GenerationMode
        var model = try f.string("model")
        if let video {
            let v = Fields(video, prefix: "video.")
            let videoModel = try v.string("model")
            let swapModel = try v.string("swap_model")
            let swapPercent = try v.number("swap_percent", in: 0...1)
            let frames = try v.int("frames", in: 1...1000)
            let fps = try v.int("fps", in: 1...1024)
            let format = try v.string("format")
            if let format, !Self.videoFormats.contains(format) {
                throw InputError(field: "video.format", problem: "must be one of \(Self.videoFormats.joined(separator: ", "))")
            }
            if initImage != nil {
                mode = .imageToVideo
                guard let videoModel else {
                    throw InputError(field: "video.model", problem: "required for image-to-video (the Wan 2.2 high-noise model)")
                }
                p["videomodel"] = .string(videoModel)
                if let swapModel { p["videoswapmodel"] = .string(swapModel) }
                if let swapPercent { p["videoswappercent"] = .double(swapPercent) }
                if let frames { p["videoframes"] = .int(frames) }
                if let fps { p["videofps"] = .int(fps) }
                if let steps = try v.int("steps", in: 1...200) { p["videosteps"] = .int(steps) }
                if let cfg = try v.number("cfg", in: 1...100) { p["videocfg"] = .double(cfg) }
                if let format { p["videoformat"] = .string(format) }
                let resolution = try v.string("resolution") ?? "Image"
                guard Self.videoResolutions.contains(resolution) else {
                    throw InputError(field: "video.resolution", problem: "must be one of \(Self.videoResolutions.joined(separator: ", "))")
                }
                p["videoresolution"] = .string(resolution)
                // Keep the picture as it is: the image stage is skipped and only the video models run.
                p["initimagecreativity"] = .int(0)
                model = model ?? videoModel
            } else {
                mode = .textToVideo
                // A text-to-video model is the base model itself; its low-noise partner runs as a step-swap refiner.
                guard let t2vModel = model ?? videoModel else {
                    throw InputError(field: "video.model", problem: "required for text-to-video (or give `model`)")
                }
                model = t2vModel
                if let swapModel {
                    p["refinermodel"] = .string(swapModel)
                    p["refinermethod"] = "StepSwap"
                    p["refinercontrolpercentage"] = .double(swapPercent ?? 0.5)
                }
                if let frames { p["textvideoframes"] = .int(frames) }
                if let fps { p["videofps"] = .int(fps) }
                if let steps = try v.int("steps", in: 1...200) { p["steps"] = .int(steps) }
                if let cfg = try v.number("cfg", in: 1...100) { p["cfgscale"] = .double(cfg) }
                if let format { p["videoformat"] = .string(format) }
            }
            try v.rejectUnknown(["model", "swap_model", "swap_percent", "frames", "fps", "steps", "cfg", "format", "resolution"])
        } else {
            mode = initImage == nil ? .textToImage : .imageToImage
            if initImage != nil { p["initimagecreativity"] = .double(0.6) }
        }
        guard let model, !model.isEmpty else {
            throw InputError(field: "model", problem: "required: the model to generate with (see action list_models), or a preset that sets it")
        }
        p["model"] = .string(model)

        if let loras = try f.array("loras"), !loras.isEmpty {
            var names: [JSONValue] = [], weights: [JSONValue] = [], sections: [JSONValue] = []
            for (index, item) in loras.enumerated() {
                guard let object = item.objectValue else {
                    throw InputError(field: "loras[\(index)]", problem: "must be an object {\"name\", \"weight\", \"confinement\"}")
                }
                let l = Fields(object, prefix: "loras[\(index)].")
                names.append(.string(try l.requiredString("name")))
                weights.append(.double(try l.number("weight", in: -10...10) ?? 1))
                sections.append(.int(try confinement(l)))
                try l.rejectUnknown(["name", "weight", "confinement"])
            }
            p["loras"] = .array(names)
            p["loraweights"] = .array(weights)
            p["lorasectionconfinement"] = .array(sections)
        }

        if let raw = try f.object("params") {
            for (key, value) in raw { p[key] = value }
        }
        p.removeValue(forKey: "images")
        try f.rejectUnknown([
            "action", "preset", "prompt", "negative_prompt", "model", "seed", "steps", "cfg_scale", "width", "height", "images",
            "init_image", "video", "loras", "params",
            // Where the control plane sends the job (vastai, auto); decided before the job reaches a worker.
            "provider",
        ])
        return GenerateRequest(mode: mode, images: images, seed: seed, parameters: p, initImageURL: initImageURL)
    }

    private func confinement(_ l: Fields) throws(InputError) -> Int {
        guard let value = l.raw("confinement") else { return 0 }
        let names = Self.confinements.keys.sorted().joined(separator: ", ")
        if let name = value.stringValue, let id = Self.confinements[name] { return id }
        if let id = value.intValue, [-1, 0, 1, 2, 3, 4, 5, 6].contains(id) { return id }
        throw InputError(field: l.prefix + "confinement", problem: "must be one of \(names), or a SwarmUI section id 0-6")
    }
}

/// Typed reads of one JSON object, producing errors that name the field (with its path).
struct Fields {
    let values: [String: JSONValue]
    let prefix: String

    init(_ values: [String: JSONValue], prefix: String = "") {
        self.values = values
        self.prefix = prefix
    }

    func raw(_ key: String) -> JSONValue? {
        guard let value = values[key], !value.isNull else { return nil }
        return value
    }

    func string(_ key: String, maxLength: Int = 4096) throws(InputError) -> String? {
        guard let value = raw(key) else { return nil }
        guard let text = value.stringValue else { throw InputError(field: prefix + key, problem: "must be a string, got \(value.typeName)") }
        guard text.count <= maxLength else { throw InputError(field: prefix + key, problem: "is longer than \(maxLength) characters") }
        return text
    }

    func requiredString(_ key: String, maxLength: Int = 4096, allowEmpty: Bool = false) throws(InputError) -> String {
        guard let text = try string(key, maxLength: maxLength) else { throw InputError(field: prefix + key, problem: "is required (a string)") }
        guard allowEmpty || !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw InputError(field: prefix + key, problem: "must not be empty")
        }
        return text
    }

    func int(_ key: String, in range: ClosedRange<Int>) throws(InputError) -> Int? {
        guard let value = raw(key) else { return nil }
        guard let number = value.intValue else {
            throw InputError(
                field: prefix + key,
                problem: "must be a whole number, got \(value.typeName == "number" ? "\(value.jsonString())" : value.typeName)"
            )
        }
        guard range.contains(number) else {
            throw InputError(field: prefix + key, problem: "must be between \(range.lowerBound) and \(range.upperBound), got \(number)")
        }
        return number
    }

    func number(_ key: String, in range: ClosedRange<Double>) throws(InputError) -> Double? {
        guard let value = raw(key) else { return nil }
        guard let number = value.doubleValue, number.isFinite else {
            throw InputError(field: prefix + key, problem: "must be a number, got \(value.typeName)")
        }
        guard range.contains(number) else {
            throw InputError(
                field: prefix + key,
                problem: "must be between \(Self.format(range.lowerBound)) and \(Self.format(range.upperBound)), got \(Self.format(number))"
            )
        }
        return number
    }

    func object(_ key: String) throws(InputError) -> [String: JSONValue]? {
        guard let value = raw(key) else { return nil }
        guard let object = value.objectValue else { throw InputError(field: prefix + key, problem: "must be an object, got \(value.typeName)") }
        return object
    }

    func array(_ key: String) throws(InputError) -> [JSONValue]? {
        guard let value = raw(key) else { return nil }
        guard let array = value.arrayValue else { throw InputError(field: prefix + key, problem: "must be an array, got \(value.typeName)") }
        return array
    }

    /// A misspelt field would otherwise be ignored silently (as SwarmUI ignores unknown params); say so instead.
    func rejectUnknown(_ known: Set<String>) throws(InputError) {
        if let unknown = values.keys.sorted().first(where: { !known.contains($0) }) {
            throw InputError(
                field: prefix + unknown,
                problem: "unknown field; allowed: \(known.sorted().joined(separator: ", ")) (raw SwarmUI parameters go in `params`)"
            )
        }
    }

    private static func format(_ value: Double) -> String {
        value.rounded() == value ? String(Int(value)) : String(value)
    }
}

import Foundation
