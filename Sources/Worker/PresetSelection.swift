import Foundation

extension Presets {
    /// Only the presets `names` lists (`SWARM_PRESETS`); nil keeps them all. A name the file lacks is an error that
    /// lists the names there are, so a typo fails at start rather than at the first job.
    public func selecting(_ selection: [String]?) throws(PresetsError) -> Presets {
        guard let selection else { return self }
        let unknown = selection.filter { named($0) == nil }
        guard unknown.isEmpty else {
            throw PresetsError(
                detail: "SWARM_PRESETS names \(unknown.map { "'\($0)'" }.joined(separator: ", ")), which the presets file does not have; "
                    + "it has \(names.joined(separator: ", "))"
            )
        }
        return Presets(all.filter { selection.contains($0.name) })
    }
}

extension ModelManifest {
    /// The entries `presets` need: the diffusion models and LoRAs they name, and every entry of another subtype (the
    /// text encoder and VAE all Wan presets share). A diffusion model or LoRA no selected preset names is left out,
    /// so a worker for one preset does not download the others'.
    public func limited(to presets: Presets) -> ModelManifest {
        let named = Set(presets.requiredModels.map { "\($0.subtype)/\($0.name)" })
        return ModelManifest(
            models: models.filter { entry in
                guard entry.subtype == "Stable-Diffusion" || entry.subtype == "LoRA" else { return true }
                return named.contains("\(entry.subtype)/\(entry.name)") || named.contains("\(entry.subtype)/\(entry.file)")
            }
        )
    }
}

extension WorkerConfiguration {
    /// The presets file (or the built-in presets), limited to `SWARM_PRESETS` when it is set.
    public func loadPresets() throws(PresetsError) -> Presets {
        try Presets.load(path: presetsFile).selecting(presetNames)
    }

    /// The presets `SWARM_PRESETS` chooses, or nil when it is unset (then the whole manifest is downloaded).
    public func chosenPresets() throws(PresetsError) -> Presets? {
        presetNames == nil ? nil : try loadPresets()
    }
}
