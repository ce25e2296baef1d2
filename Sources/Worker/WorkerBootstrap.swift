import AsyncHTTPClient
import JobProtocol
import Logging
import SwarmCore

import Foundation

/// What has to be on the volume before SwarmUI can start: SwarmUI itself (copied from the image's seed) and the
/// models the presets use (downloaded). Separate from `WorkerApplication` so it can run before anything else.
public enum WorkerBootstrap {
    /// Seeds SwarmUI (when the worker launches it), downloads the manifest's missing models and checks that every
    /// model a preset names is in place. The stage reads PROVISIONING, then DOWNLOADING with byte counts while
    /// files download, and STARTING_APP when done (SwarmUI is next); on failure it reads ERROR with the reason and
    /// whether another try can help, and this throws.
    /// Attached to a SwarmUI run elsewhere, the volume holds none of SwarmUI, so only the downloads apply.
    public static func prepareVolume(
        configuration: WorkerConfiguration,
        state: WorkerState,
        logger: Logger
    ) async throws(VolumePreparationError) {
        await state.setStage(.provisioning)
        await state.markBoot("process start")
        do throws(VolumePreparationError) {
            let launches = configuration.swarmUIMode != .attach
            if launches {
                let seed = SwarmUISeed(seedPath: configuration.swarmUISeed, installPath: configuration.swarmUIFolder)
                do {
                    _ = try await FileSystem.offload(orIfCancelled: .copyFailed(detail: "cancelled")) { () throws(SwarmUISeedError) in
                        try seed.ensureInstalled(logger: logger)
                    }
                } catch {
                    throw .seed(error)
                }
                await state.markBoot("seed check")
            }
            // Before any download: SWARM_PRESETS decides which models to fetch, and a name it gets wrong fails now.
            let presets: Presets
            do {
                presets = try configuration.loadPresets()
            } catch {
                throw .presets(error)
            }
            // The GPU check (seconds, once per GPU and image) runs alongside the downloads, off the critical path.
            async let speedups: Void = launches ? ComfyUISpeedups(configuration: configuration).apply(logger: logger) : ()
            if let manifestPath = configuration.modelsFile {
                let throttle = Throttle(every: .seconds(10))
                do {
                    let summary = try await provisionModels(
                        configuration: configuration,
                        manifestPath: manifestPath,
                        presets: configuration.presetNames == nil ? nil : presets,
                        logger: logger
                    ) { progress in
                        await state.setStage(.downloading(DownloadProgress(doneBytes: progress.done, totalBytes: progress.total)))
                        guard throttle.ready() else { return }
                        logger.info(
                            "downloading models: \(formatBytes(progress.done)) of \(formatBytes(progress.total)) (\(String(format: "%.1f", progress.percent))%)",
                            metadata: ["files": "\(progress.files.filter { $0.state != .done }.map(\.summary).joined(separator: "; "))"]
                        )
                    }
                    logger.info(
                        "models in place",
                        metadata: ["downloaded": "\(summary.downloaded.count)", "already_present": "\(summary.alreadyPresent.count)"]
                    )
                } catch {
                    throw .models(error)
                }
                await state.markBoot("models")
            }
            await speedups
            if launches { await state.markBoot("GPU check") }
            if launches {
                let missing = missingPresetModels(presets, modelsRoot: configuration.modelsPath)
                if !missing.isEmpty { throw .models(.presetModelsMissing(models: missing, modelsRoot: configuration.modelsPath)) }
                await state.markBoot("preset models")
            }
        } catch {
            await state.setStage(.error(WorkerFailure(reason: error.description, kind: error.failureKind)))
            throw error
        }
        await state.setStage(.startingApp)
    }

    /// The manifest's missing models, downloaded under `configuration.modelsPath`; `swarm-worker models sync` and
    /// `prepareVolume` share it. With `presets` (those SWARM_PRESETS chooses), only the models they need.
    public static func provisionModels(
        configuration: WorkerConfiguration,
        manifestPath: String,
        presets: Presets? = nil,
        logger: Logger,
        progress: @escaping @Sendable (ModelDownloadProgress) async -> Void
    ) async throws(ModelProvisioningError) -> ModelProvisioner.Summary {
        var manifest = try ModelManifest.load(path: manifestPath)
        if let presets { manifest = manifest.limited(to: presets) }
        let httpClient = ModelProvisioner.makeHTTPClient(connections: configuration.modelDownloadConnectionsTotal)
        let provisioner = ModelProvisioner(
            manifest: manifest,
            modelsRoot: configuration.modelsPath,
            tokens: configuration.modelTokens,
            httpClient: httpClient,
            options: .init(
                concurrency: configuration.modelDownloadConcurrency,
                connections: configuration.modelDownloadConnections,
                totalConnections: configuration.modelDownloadConnectionsTotal
            ),
            logger: logger
        )
        let outcome: Result<ModelProvisioner.Summary, ModelProvisioningError>
        do {
            outcome = .success(try await provisioner.provision(progress: progress))
        } catch {
            outcome = .failure(error)
        }
        try? await httpClient.shutdown()
        return try outcome.get()
    }

    /// Preset models not found in any folder SwarmUI scans for their subtype (`.safetensors` may be left off a name,
    /// as SwarmUI allows).
    static func missingPresetModels(_ presets: Presets, modelsRoot: String) -> [String] {
        presets.requiredModels.filter { model in
            let folders = ModelManifest.folders[model.subtype] ?? []
            let candidates = [model.name, model.name + ".safetensors"]
            return !folders.contains { folder in
                candidates.contains { FileSystem.info(modelsRoot + "/" + folder + "/" + $0) != nil }
            }
        }.map(\.name)
    }
}

public enum VolumePreparationError: Error, Sendable, CustomStringConvertible {
    case seed(SwarmUISeedError)
    case presets(PresetsError)
    case models(ModelProvisioningError)

    public var description: String {
        switch self {
        case .seed(let error): error.description
        case .presets(let error): error.description
        case .models(let error): error.description
        }
    }

    /// Permanent when no restart and no other machine can help: the operator must change a setting first.
    public var failureKind: WorkerFailure.Kind {
        switch self {
        case .seed(.noSeed), .presets: .permanent
        case .seed(.copyFailed): .transient
        case .models(let error): error.failureKind
        }
    }
}

extension ModelProvisioningError {
    /// A missing or refused token, too small a disk or a bad manifest fails the same way everywhere; a broken
    /// transfer may not.
    var failureKind: WorkerFailure.Kind {
        switch self {
        case .manifestInvalid, .tokensMissing, .notEnoughDisk, .refused, .presetModelsMissing, .unloadableGGUF: .permanent
        case .transfer, .checksumMismatch, .fileSystem, .cancelled: .transient
        case .gaveUp(_, _, let last): last.failureKind
        case .several(let errors): errors.contains { $0.failureKind == .permanent } ? .permanent : .transient
        }
    }
}
