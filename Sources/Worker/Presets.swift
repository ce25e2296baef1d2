import SwarmCore

import Foundation

/// Named bundles of job-input fields, shipped with the image (`presets.json`); a job's own fields override them.
public struct Presets: Sendable, Hashable {
    public struct Preset: Sendable, Hashable {
        public var name: String
        public var description: String
        public var input: [String: JSONValue]
    }

    private var byName: [String: Preset]

    public init(_ presets: [Preset]) {
        byName = Dictionary(presets.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
    }

    public var names: [String] { byName.keys.sorted() }
    public func named(_ name: String) -> [String: JSONValue]? { byName[name]?.input }
    public var all: [Preset] { names.compactMap { byName[$0] } }

    /// Every model a preset names, by SwarmUI subtype, so the worker can check they are present before taking jobs.
    public var requiredModels: [(subtype: String, name: String)] {
        var result: [(String, String)] = []
        for preset in all {
            for key in ["model"] { if let name = preset.input[key]?.stringValue { result.append(("Stable-Diffusion", name)) } }
            for key in ["model", "swap_model"] {
                if let name = preset.input["video"]?[key]?.stringValue { result.append(("Stable-Diffusion", name)) }
            }
            for lora in preset.input["loras"]?.arrayValue ?? [] {
                if let name = lora["name"]?.stringValue { result.append(("LoRA", name)) }
            }
        }
        var seen = Set<String>()
        return result.filter { seen.insert("\($0.0)/\($0.1)").inserted }
    }

    /// Parses `{"presets": {"<name>": {"description": "...", "input": {...}}}}`.
    public init(json data: Data) throws(PresetsError) {
        guard let root = JSONValue.parse(data), let table = root["presets"]?.objectValue else {
            throw PresetsError(detail: "expected {\"presets\": {\"<name>\": {\"input\": {...}}}}")
        }
        var presets: [Preset] = []
        for (name, value) in table {
            guard let input = value["input"]?.objectValue else { throw PresetsError(detail: "preset '\(name)' has no `input` object") }
            presets.append(Preset(name: name, description: value["description"]?.stringValue ?? "", input: input))
        }
        self.init(presets)
    }

    /// The presets file at `path`, or the one built into the worker.
    public static func load(path: String?) throws(PresetsError) -> Presets {
        let data: Data
        if let path {
            guard let contents = FileManager.default.contents(atPath: path) else {
                throw PresetsError(detail: "cannot read \(path) (SWARM_PRESETS_FILE)")
            }
            data = contents
        } else {
            data = Data(builtInPresetsJSON.utf8)
        }
        return try Presets(json: data)
    }

    /// The job's fields over the preset's: objects (`video`, `params`) merge key by key, anything else is replaced.
    static func merge(_ preset: [String: JSONValue], under job: [String: JSONValue]) -> [String: JSONValue] {
        var merged = preset
        for (key, value) in job {
            if case .object(let base)? = merged[key], case .object(let override) = value {
                merged[key] = .object(base.merging(override) { _, new in new })
            } else {
                merged[key] = value
            }
        }
        merged.removeValue(forKey: "preset")
        return merged
    }
}

public struct PresetsError: Error, Sendable, CustomStringConvertible {
    public var detail: String
    public var description: String { "presets: \(detail)" }
}
