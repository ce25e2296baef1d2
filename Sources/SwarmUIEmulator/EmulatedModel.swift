import Foundation
import SwarmCore

/// A model file the emulator pretends to have.
public struct EmulatedModel: Sendable, Hashable {
    /// Name relative to its model folder, with extension (`Wan/x.safetensors`).
    public var name: String
    /// `Stable-Diffusion`, `LoRA`, `VAE`, `Clip`...
    public var subtype: String
    /// Architecture id, nil when SwarmUI could not identify the file (common for GGUF).
    public var architecture: String?
    public var standardWidth: Int
    public var standardHeight: Int

    public init(name: String, subtype: String = "Stable-Diffusion", architecture: String?, standardWidth: Int = 1024, standardHeight: Int = 1024) {
        self.name = name
        self.subtype = subtype
        self.architecture = architecture
        self.standardWidth = standardWidth
        self.standardHeight = standardHeight
    }

    public static let defaults: [EmulatedModel] = [
        EmulatedModel(name: "OfficialStableDiffusion/sd_xl_base_1.0.safetensors", architecture: "stable-diffusion-xl-v1-base"),
        EmulatedModel(
            name: "Wan/wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
            architecture: "wan-2_2-image2video-14b",
            standardWidth: 960,
            standardHeight: 960
        ),
        EmulatedModel(
            name: "Wan/wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors",
            architecture: "wan-2_2-image2video-14b",
            standardWidth: 960,
            standardHeight: 960
        ),
        EmulatedModel(
            name: "Wan/wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
            architecture: "wan-2_1-text2video-14b",
            standardWidth: 960,
            standardHeight: 960
        ),
        EmulatedModel(
            name: "Wan/wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors",
            architecture: "wan-2_1-text2video-14b",
            standardWidth: 960,
            standardHeight: 960
        ),
        EmulatedModel(
            name: "Wan22/Wan2.2-Lightning_I2V-A14B-4steps-lora_HIGH_fp16.safetensors",
            subtype: "LoRA",
            architecture: "wan-2_1-text2video-14b/lora"
        ),
        EmulatedModel(
            name: "Wan22/Wan2.2-Lightning_I2V-A14B-4steps-lora_LOW_fp16.safetensors",
            subtype: "LoRA",
            architecture: "wan-2_1-text2video-14b/lora"
        ),
        EmulatedModel(name: "Wan/wan_2.1_vae.safetensors", subtype: "VAE", architecture: "wan-21-vae"),
        // The models of the image's presets (builder/presets.json), at the names they use.
        EmulatedModel(name: "Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf", architecture: nil, standardWidth: 832, standardHeight: 480),
        EmulatedModel(name: "Wan2.2-I2V-A14B-LowNoise-Q4_K_M.gguf", architecture: nil, standardWidth: 832, standardHeight: 480),
        EmulatedModel(name: "wan22EnhancedNSFWCameraPrompt_nsfwFASTMOVEV2Q8H.gguf", architecture: nil, standardWidth: 832, standardHeight: 480),
        EmulatedModel(name: "wan22EnhancedNSFWCameraPrompt_nsfwFASTMOVEV2Q8L.gguf", architecture: nil, standardWidth: 832, standardHeight: 480),
        EmulatedModel(
            name: "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
            subtype: "LoRA",
            architecture: "wan-2_1-text2video-14b/lora"
        ),
        EmulatedModel(name: "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors", subtype: "LoRA", architecture: "wan-2_1-text2video-14b/lora"),
        // The text-to-video preset's: SwarmUI reads the T2V GGUFs' class from the sidecar the worker writes.
        EmulatedModel(name: "Wan2.2-T2V-A14B-HighNoise-Q4_K_M.gguf", architecture: "wan-2_1-text2video-14b", standardWidth: 832, standardHeight: 480),
        EmulatedModel(name: "Wan2.2-T2V-A14B-LowNoise-Q4_K_M.gguf", architecture: "wan-2_1-text2video-14b", standardWidth: 832, standardHeight: 480),
        EmulatedModel(
            name: "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
            subtype: "LoRA",
            architecture: "wan-2_1-text2video-14b/lora"
        ),
        EmulatedModel(
            name: "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors",
            subtype: "LoRA",
            architecture: "wan-2_1-text2video-14b/lora"
        ),
    ]

    /// Models of different subtypes live in different name spaces.
    var key: String { EmulatedModel.key(subtype: subtype, name: name) }

    static func key(subtype: String, name: String) -> String { "\(subtype)|\(name)" }

    /// The model object of ListModels/DescribeModel (swarmui.md §5.6).
    var json: JSONValue {
        let special: String = name.hasSuffix(".gguf") ? "gguf" : (name.contains("fp8_scaled") ? "fp8_scaled" : "")
        return [
            "name": .string(name), "title": .null, "author": .null, "description": "",
            "preview_image": .string("/ViewSpecial/\(subtype)/\(name)?editid=0"), "loaded": false,
            "architecture": architecture.map(JSONValue.string) ?? .null,
            "class": architecture.map(JSONValue.string) ?? .null,
            "compat_class": architecture.map(JSONValue.string) ?? .null,
            "resolution": .string("\(standardWidth)x\(standardHeight)"),
            "standard_width": .int(standardWidth), "standard_height": .int(standardHeight),
            "license": .null, "date": .null, "prediction_type": .null, "usage_hint": .null, "trigger_phrase": .null,
            "merged_from": .null, "tags": .null, "is_supported_model_format": true, "is_negative_embedding": false,
            "lora_default_weight": "", "lora_default_confinement": "", "local": true, "time_created": 0,
            "time_modified": 0, "hash": "", "hash_sha256": "", "special_format": .string(special),
        ]
    }
}

extension SwarmUIEmulator {
    static let subtypes = ["Stable-Diffusion", "LoRA", "VAE", "Embedding", "ControlNet", "Clip", "ClipVision"]

    func modelObjects(subtype: String) -> [JSONValue] {
        models.filter { $0.key.hasPrefix(subtype + "|") }.map(\.value)
            .sorted { ($0["name"]?.stringValue ?? "") < ($1["name"]?.stringValue ?? "") }
    }

    /// SwarmUI's generation-time matching (§7): exact (case/space-insensitive, `.safetensors` optional), else the
    /// shortest name containing the text.
    func matchModel(_ text: String, subtype: String = "Stable-Diffusion") -> String? {
        let names = modelObjects(subtype: subtype).compactMap { $0["name"]?.stringValue }
        func simple(_ s: String) -> String { s.lowercased().replacingOccurrences(of: " ", with: "") }
        let wanted = simple(text)
        if let exact = names.first(where: { simple($0) == wanted || simple($0) == wanted + ".safetensors" }) {
            return exact
        }
        return names.filter { simple($0).contains(wanted) }.min { $0.count < $1.count }
    }

    /// DescribeModel's lookup: the exact key, `.safetensors` may be omitted.
    func exactModel(_ name: String, subtype: String) -> JSONValue? {
        models[EmulatedModel.key(subtype: subtype, name: name)]
            ?? models[EmulatedModel.key(subtype: subtype, name: name + ".safetensors")]
    }

    func listModels(path: String, depth: Int, subtype: String) -> JSONValue {
        let prefix = path.isEmpty ? "" : (path.hasSuffix("/") ? path : path + "/")
        let depth = min(max(depth, 1), 20)
        var folders: Set<String> = []
        var files: [JSONValue] = []
        for model in modelObjects(subtype: subtype) {
            guard let name = model["name"]?.stringValue, name.hasPrefix(prefix) else { continue }
            let rest = name.dropFirst(prefix.count).split(separator: "/")
            if rest.count > 1 { folders.insert(String(rest[0])) }
            if rest.count <= depth { files.append(model) }
        }
        return ["folders": .array(folders.sorted().map(JSONValue.string)), "files": .array(files)]
    }

    /// EditModelMetadata (§5.8): overwrites every text field with what was sent.
    func editModel(_ name: String, subtype: String, arguments: [String: JSONValue]) -> Bool {
        let key = EmulatedModel.key(subtype: subtype, name: name)
        guard case .object(var model)? = models[key] else { return false }
        for field in ["title", "author", "description", "usage_hint", "date", "license", "trigger_phrase", "prediction_type"] {
            let text = arguments[field].flatMap(\.looseString) ?? ""
            model[field] = text.isEmpty ? .null : .string(text)
        }
        if let type = arguments["type"].flatMap(\.looseString), !type.isEmpty {
            model["architecture"] = .string(type)
            model["class"] = .string(type)
        }
        for field in ["standard_width", "standard_height"] {
            if let value = arguments[field].flatMap(\.looseInt), value > 0 { model[field] = .int(value) }
        }
        let tags = (arguments["tags"].flatMap(\.looseString) ?? "").split(separator: ",").map {
            JSONValue.string($0.trimmingCharacters(in: .whitespaces))
        }
        model["tags"] = tags.isEmpty ? .null : .array(tags)
        model["is_negative_embedding"] = .bool(arguments["is_negative_embedding"].flatMap(\.looseBool) ?? false)
        model["lora_default_weight"] = .string(arguments["lora_default_weight"].flatMap(\.looseString) ?? "")
        model["lora_default_confinement"] = .string(arguments["lora_default_confinement"].flatMap(\.looseString) ?? "")
        models[key] = .object(model)
        return true
    }

    func addModel(_ model: EmulatedModel) -> Bool {
        guard models[model.key] == nil else { return false }
        models[model.key] = model.json
        return true
    }

    /// ListT2IParams (§5.5), a representative subset of the parameter list.
    func t2iParamsJSON() -> JSONValue {
        func param(
            _ id: String,
            _ name: String,
            _ type: String,
            _ defaultValue: JSONValue,
            group: String,
            min: Double = 0,
            max: Double = 0,
            featureFlag: JSONValue = .null
        ) -> JSONValue {
            [
                "name": .string(name), "id": .string(id), "description": "", "type": .string(type), "subtype": .null,
                "default": defaultValue, "min": .double(min), "max": .double(max), "view_min": .double(min),
                "view_max": .double(max), "step": 1, "values": .null, "value_names": .null, "examples": .null,
                "visible": true, "advanced": false, "feature_flag": featureFlag, "toggleable": false, "priority": 0,
                "group": .string(group), "always_retain": false, "do_not_save": false, "do_not_preview": false,
                "view_type": "normal", "extra_hidden": false, "can_sectionalize": false, "nonreusable": false,
                "depend_non_default": false,
            ]
        }
        let list: [JSONValue] = [
            param("prompt", "Prompt", "text", "", group: "Core Parameters"),
            param("negativeprompt", "Negative Prompt", "text", "", group: "Core Parameters"),
            param("images", "Images", "integer", 1, group: "Core Parameters", min: 1, max: 10000),
            param("seed", "Seed", "integer", -1, group: "Core Parameters", min: -1, max: 4_294_967_295),
            param("steps", "Steps", "integer", 20, group: "Sampling", min: 0, max: 500),
            param("cfgscale", "CFG Scale", "decimal", 7, group: "Sampling", min: 0, max: 100),
            param("model", "Model", "model", "", group: "Core Parameters"),
            param("width", "Width", "integer", 512, group: "Resolution", min: 64, max: 16384),
            param("height", "Height", "integer", 512, group: "Resolution", min: 64, max: 16384),
            param("donotsave", "Do Not Save", "boolean", false, group: "Swarm Internal"),
            param("videomodel", "Video Model", "model", "", group: "Image To Video", featureFlag: "video"),
            param("videoswapmodel", "Video Swap Model", "model", "", group: "Image To Video", featureFlag: "video"),
            param("videoframes", "Video Frames", "integer", 25, group: "Image To Video", min: 1, max: 1000, featureFlag: "video"),
            param("videosteps", "Video Steps", "integer", 20, group: "Image To Video", min: 1, max: 200, featureFlag: "video"),
            param("videocfg", "Video CFG", "decimal", 7, group: "Image To Video", min: 1, max: 100, featureFlag: "video"),
            param("videofps", "Video FPS", "integer", 24, group: "Image To Video", min: 1, max: 1024, featureFlag: "video"),
            param("videoformat", "Video Format", "dropdown", "h264-mp4", group: "Image To Video", featureFlag: "video"),
            param("textvideoframes", "Text2Video Frames", "integer", 25, group: "Text To Video", min: 1, max: 1000),
        ]
        var byType: [String: JSONValue] = [:]
        for subtype in Self.subtypes {
            byType[subtype] = .array(
                modelObjects(subtype: subtype).map { model in
                    [model["name"] ?? .null, model["architecture"] ?? .null]
                }
            )
        }
        return [
            "list": .array(list), "groups": [], "models": .object(byType), "model_compat_classes": [:],
            "model_classes": [:], "wildcards": [], "param_edits": .null,
        ]
    }
}

extension JSONValue {
    /// SwarmUI reads arguments with `.ToString()` and parses them, so `20` and `"20"` are the same.
    var looseString: String? {
        switch self {
        case .string(let value): value
        case .int(let value): String(value)
        case .double(let value): String(value)
        case .bool(let value): value ? "true" : "false"
        default: nil
        }
    }

    var looseInt: Int? {
        if case .string(let text) = self { return Int(text.trimmingCharacters(in: .whitespaces)) }
        return intValue
    }

    var looseDouble: Double? {
        if case .string(let text) = self { return Double(text.trimmingCharacters(in: .whitespaces)) }
        return doubleValue
    }

    var looseBool: Bool? {
        switch self {
        case .bool(let value): value
        case .string(let text): text.lowercased() == "true" ? true : (text.lowercased() == "false" ? false : nil)
        default: nil
        }
    }
}
