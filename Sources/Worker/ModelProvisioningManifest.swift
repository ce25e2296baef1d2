import SwarmCore

import Foundation

/// The models the image's presets need (`builder/models.json`, `SWARM_MODELS_FILE`); builder/README.md documents
/// each field. Parsed by hand so an operator learns which entry and which field is wrong.
public struct ModelManifest: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        /// The name presets and SwarmUI use.
        public var name: String
        /// SwarmUI's model subtype (`Stable-Diffusion`, `LoRA`, ...).
        public var subtype: String
        /// Folder under `Models/`.
        public var folder: String
        /// Path inside `folder`.
        public var file: String
        public var url: String
        /// For the disk check and progress until the server says; exact only when `sizeExact`.
        public var sizeBytes: Int64
        public var sizeExact: Bool
        /// Lowercase hex, or nil when no digest is published.
        public var sha256: String?
        /// The variable holding the token to send (one of `WorkerConfiguration.modelTokenVariables`).
        public var tokenEnv: String?
        public var tokenRequired: Bool
        /// SwarmUI architecture id for a `.swarm.json` sidecar, for files SwarmUI cannot classify itself (GGUF).
        public var architecture: String?
        public var role: String

        public init(
            name: String,
            subtype: String,
            folder: String,
            file: String,
            url: String,
            sizeBytes: Int64,
            sizeExact: Bool = false,
            sha256: String? = nil,
            tokenEnv: String? = nil,
            tokenRequired: Bool = false,
            architecture: String? = nil,
            role: String = ""
        ) {
            self.name = name
            self.subtype = subtype
            self.folder = folder
            self.file = file
            self.url = url
            self.sizeBytes = sizeBytes
            self.sizeExact = sizeExact
            self.sha256 = sha256
            self.tokenEnv = tokenEnv
            self.tokenRequired = tokenRequired
            self.architecture = architecture
            self.role = role
        }

        /// `<folder>/<file>`, relative to `Models/`.
        public var relativePath: String { folder + "/" + file }

        /// SwarmUI reads metadata from `<model path without extension>.swarm.json` (swarmui.md §8).
        public var sidecarRelativePath: String {
            let name = file.split(separator: "/").last.map(String.init) ?? file
            let stem = name.contains(".") ? String(name[..<name.lastIndex(of: ".")!]) : name
            let directory = file.contains("/") ? String(file[..<file.lastIndex(of: "/")!]) + "/" : ""
            return folder + "/" + directory + stem + ".swarm.json"
        }
    }

    public var models: [Entry]

    public init(models: [Entry]) { self.models = models }

    /// Folders under `Models/` SwarmUI scans for each subtype (swarmui.md §8); the first is where it downloads to.
    public static let folders: [String: [String]] = [
        "Stable-Diffusion": ["Stable-Diffusion", "diffusion_models", "unet", "tensorrt"],
        "LoRA": ["Lora"],
        "VAE": ["VAE"],
        "Clip": ["text_encoders", "clip"],
        "ClipVision": ["clip_vision"],
        "ControlNet": ["controlnet", "model_patches"],
        "Embedding": ["Embeddings"],
    ]

    public static func load(path: String) throws(ModelProvisioningError) -> ModelManifest {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .manifestInvalid(source: path, problems: ["cannot read the file (SWARM_MODELS_FILE)"])
        }
        return try ModelManifest(json: data, source: path)
    }

    public init(json data: Data, source: String) throws(ModelProvisioningError) {
        guard let root = JSONValue.parse(data) else { throw .manifestInvalid(source: source, problems: ["not valid JSON"]) }
        guard let list = root["models"]?.arrayValue else {
            throw .manifestInvalid(source: source, problems: ["expected {\"schema\": 1, \"models\": [...]}"])
        }
        if let schema = root["schema"], schema.intValue != 1 {
            throw .manifestInvalid(source: source, problems: ["schema \(schema.jsonString()) is not supported (this worker reads schema 1)"])
        }
        var problems: [String] = []
        var entries: [Entry] = []
        var destinations = Set<String>()
        for (index, value) in list.enumerated() {
            var parser = EntryParser(value: value, label: "models[\(index)]")
            if let entry = parser.parse() {
                if !destinations.insert(entry.relativePath).inserted {
                    parser.problems.append("\(parser.label): another entry already writes \(entry.relativePath)")
                }
                entries.append(entry)
            }
            problems += parser.problems
        }
        if !problems.isEmpty { throw .manifestInvalid(source: source, problems: problems) }
        models = entries
    }
}

/// Reads one manifest entry, collecting every problem rather than stopping at the first.
private struct EntryParser {
    let value: JSONValue
    var label: String
    var problems: [String] = []

    init(value: JSONValue, label: String) {
        self.value = value
        self.label = label
    }

    mutating func parse() -> Entry? {
        guard value.objectValue != nil else {
            problems.append("\(label): expected an object, got \(value.typeName)")
            return nil
        }
        if let name = value["name"]?.stringValue { label += " ('\(name)')" }
        let name = string("name"), subtype = string("subtype"), folder = string("folder"), file = string("file"), url = string("url")
        let size = integer("size_bytes")
        let sizeExact = bool("size_exact"), tokenRequired = bool("token_required")
        let sha256 = optionalString("sha256")?.lowercased(), tokenEnv = optionalString("token_env")
        let architecture = optionalString("architecture"), role = optionalString("role") ?? ""

        if let subtype, let folder {
            if let allowed = ModelManifest.folders[subtype] {
                if !allowed.contains(folder) {
                    fail("folder", "'\(folder)' is not one SwarmUI scans for \(subtype) (\(allowed.joined(separator: ", ")))")
                }
            } else {
                fail("subtype", "'\(subtype)' is not a SwarmUI model subtype (\(ModelManifest.folders.keys.sorted().joined(separator: ", ")))")
            }
        }
        if let file, !Self.isSafeRelativePath(file) { fail("file", "'\(file)' must be a relative path without '..'") }
        if let url {
            let parsed = URL(string: url)
            if parsed?.host == nil || !["http", "https"].contains(parsed?.scheme?.lowercased() ?? "") {
                fail("url", "'\(url)' is not an http(s) URL")
            }
        }
        if let size, size <= 0 { fail("size_bytes", "must be positive") }
        if let sha256, sha256.count != 64 || !sha256.allSatisfy(\.isHexDigit) { fail("sha256", "must be 64 hex digits or null") }
        if let tokenEnv, !WorkerConfiguration.modelTokenVariables.contains(tokenEnv) {
            fail("token_env", "'\(tokenEnv)' is not a token the worker reads (\(WorkerConfiguration.modelTokenVariables.joined(separator: ", ")))")
        }
        if tokenRequired == true, tokenEnv == nil { fail("token_required", "is true but token_env names no variable") }

        guard let name, let subtype, let folder, let file, let url, let size, let sizeExact, let tokenRequired, problems.isEmpty else { return nil }
        return Entry(
            name: name,
            subtype: subtype,
            folder: folder,
            file: file,
            url: url,
            sizeBytes: Int64(size),
            sizeExact: sizeExact,
            sha256: sha256,
            tokenEnv: tokenEnv,
            tokenRequired: tokenRequired,
            architecture: architecture,
            role: role
        )
    }

    /// Folder names and file paths: no absolute paths, no `..`, no empty components.
    static func isSafeRelativePath(_ path: String) -> Bool {
        !path.hasPrefix("/") && path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != ".." && $0 != "." }
    }

    private mutating func fail(_ field: String, _ message: String) {
        problems.append("\(label): `\(field)` \(message)")
    }

    private mutating func string(_ field: String) -> String? {
        guard let raw = value[field] else {
            fail(field, "is missing")
            return nil
        }
        guard let text = raw.stringValue, !text.isEmpty else {
            fail(field, "must be a non-empty string, got \(raw.jsonString())")
            return nil
        }
        if field == "folder", !Self.isSafeRelativePath(text) {
            fail(field, "'\(text)' must be a folder name under Models/")
            return nil
        }
        return text
    }

    private mutating func optionalString(_ field: String) -> String? {
        guard let raw = value[field], !raw.isNull else { return nil }
        guard let text = raw.stringValue, !text.isEmpty else {
            fail(field, "must be a non-empty string or null, got \(raw.jsonString())")
            return nil
        }
        return text
    }

    private mutating func integer(_ field: String) -> Int? {
        guard let raw = value[field] else {
            fail(field, "is missing")
            return nil
        }
        guard let number = raw.intValue else {
            fail(field, "must be a whole number of bytes, got \(raw.jsonString())")
            return nil
        }
        return number
    }

    /// Absent means false: both flags only ever add requirements.
    private mutating func bool(_ field: String) -> Bool? {
        guard let raw = value[field], !raw.isNull else { return false }
        guard let flag = raw.boolValue else {
            fail(field, "must be true or false, got \(raw.jsonString())")
            return nil
        }
        return flag
    }
}

private typealias Entry = ModelManifest.Entry
