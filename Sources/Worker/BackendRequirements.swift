import SwarmCore

/// What SwarmUI's backend must offer before the worker takes jobs: a backend turns RUNNING even when a ComfyUI node
/// pack failed to import (SwarmUI only logs it), and then every Wan job would fail at its first step.
public struct BackendRequirements: Sendable, Hashable {
    /// Ids `GetCurrentStatus` must list in `supported_features`.
    public var features: [String]
    /// Node types `ComfyGetNodeTypesForBackend` must list for the running ComfyUI backend(s).
    public var nodeTypes: [String]

    public init(features: [String] = [], nodeTypes: [String] = []) {
        self.features = features
        self.nodeTypes = nodeTypes
    }

    public static let none = BackendRequirements()

    /// What the presets' jobs use. SwarmUI's own node pack (SwarmKSampler, which SwarmUI reports as the
    /// `variation_seed` feature, and SwarmSaveAnimationWS) is needed by every video workflow it builds; `gguf`
    /// (UnetLoaderGGUF of ComfyUI-GGUF) by a `.gguf` model; WanImageToVideo by the Wan 2.2 image-to-video path.
    public init(presets: Presets) {
        var features: [String] = []
        var nodes: [String] = []
        let inputs = presets.all.map(\.input)
        let models = presets.requiredModels.filter { $0.subtype == "Stable-Diffusion" }.map(\.name)
        let usesVideo = inputs.contains { $0["video"] != nil }
        let usesVariationSeed = inputs.contains { $0["params"]?["variationseed"] != nil }
        if usesVideo || usesVariationSeed {
            features.append("variation_seed")
            nodes.append("SwarmKSampler")
        }
        if usesVideo {
            features.append("video")
            nodes += ["SwarmSaveAnimationWS", "WanImageToVideo"]
        }
        if models.contains(where: { $0.lowercased().hasSuffix(".gguf") }) {
            features.append("gguf")
            nodes.append("UnetLoaderGGUF")
        }
        self.init(features: features, nodeTypes: nodes)
    }

    /// What `features` and `nodeTypes` lack of these requirements, each with its fix; nil when nothing is missing.
    /// `nodeTypes` nil means they were not asked for (no node type required).
    public func shortfall(features present: some Sequence<String>, nodeTypes presentNodes: Set<String>?) -> String? {
        let have = Set(present)
        let missingFeatures = features.filter { !have.contains($0) }
        let missingNodes = presentNodes.map { nodes in nodeTypes.filter { !nodes.contains($0) } } ?? []
        guard !missingFeatures.isEmpty || !missingNodes.isEmpty else { return nil }
        var parts: [String] = []
        if !missingFeatures.isEmpty { parts.append("supported_features lacks \(missingFeatures.joined(separator: ", "))") }
        if !missingNodes.isEmpty { parts.append("ComfyUI has no node type \(missingNodes.joined(separator: ", "))") }
        let fixes = Set(missingFeatures.compactMap { Self.fixes[$0] } + missingNodes.compactMap { Self.fixes[$0] })
        return "SwarmUI's backend runs, but \(parts.joined(separator: "; ")), which the presets' jobs need. "
            + fixes.sorted().joined(separator: " ")
    }

    static let ggufFix =
        "ComfyUI-GGUF's nodes did not load: look in SwarmUI's log for the import error of DLNodes/ComfyUI-GGUF (its `gguf` Python package, or a ComfyUI it does not fit)."
    static let swarmNodesFix =
        "SwarmUI's own ComfyUI nodes (ExtraNodes/SwarmComfyExtra) did not import: SwarmUI's log names the error, usually a ComfyUI older than SwarmUI expects (comfy_api.latest); use the image's pinned ComfyUI."
    static let wanFix = "ComfyUI has no Wan 2.2 image-to-video node: it is too old for Wan 2.2; use the image's pinned ComfyUI."
    static let fixes: [String: String] = [
        "gguf": ggufFix, "UnetLoaderGGUF": ggufFix,
        "variation_seed": swarmNodesFix, "SwarmKSampler": swarmNodesFix, "SwarmSaveAnimationWS": swarmNodesFix,
        "video": wanFix, "WanImageToVideo": wanFix,
    ]
}
