import ArgumentParser
import Logging
import SwarmCore
import Synchronization
import Worker

import Foundation

/// `swarm-worker models list|sync`: the worker's model provisioning on its own, for a person on the box.
struct Models: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "List or download the models in the manifest (SWARM_MODELS_FILE) under $VOLUME_PATH/SwarmUI/Models; with SWARM_PRESETS, only those presets' models.",
        subcommands: [ModelsList.self, ModelsSync.self]
    )
}

/// Options both model subcommands share.
struct ModelsOptions: ParsableArguments {
    @OptionGroup var common: CommonOptions

    @Option(help: "The models manifest; defaults to SWARM_MODELS_FILE.")
    var manifest: String?

    /// The configuration, the manifest path and the presets SWARM_PRESETS chooses (nil: all), or exit 2 saying what
    /// to set.
    func load() throws -> (WorkerConfiguration, String, Presets?) {
        let configuration = try common.loadConfiguration()
        guard let path = manifest ?? configuration.modelsFile else {
            FileHandle.standardError.write(Data("swarm-worker: no models manifest: set SWARM_MODELS_FILE or pass --manifest\n".utf8))
            throw ExitCode(2)
        }
        do {
            return (configuration, path, try configuration.chosenPresets())
        } catch {
            FileHandle.standardError.write(Data("swarm-worker: \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

struct ModelsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Show each model as present, partial or missing, with sizes.")

    @OptionGroup var options: ModelsOptions

    func run() async throws {
        let (configuration, path, presets) = try options.load()
        var manifest = try loadManifest(path)
        if let presets { manifest = manifest.limited(to: presets) }
        let statuses = ModelProvisioner.status(of: manifest, modelsRoot: configuration.modelsPath)
        for model in statuses {
            let state: String =
                switch model.status {
                case .present(let bytes): "present  \(formatBytes(bytes))"
                case .partial(let bytes): "partial  \(formatBytes(bytes)) of \(estimate(model.entry))"
                case .missing: "missing  \(estimate(model.entry))"
                }
            print("\(state.padding(toLength: 34, withPad: " ", startingAt: 0)) \(model.entry.relativePath)")
        }
        let remaining = statuses.reduce(0) { $0 + $1.remainingBytes }
        // Models/ may not exist yet; its nearest existing parent is on the same disk.
        var probe = URL(fileURLWithPath: configuration.modelsPath)
        while !FileManager.default.fileExists(atPath: probe.path), probe.path != "/" { probe.deleteLastPathComponent() }
        let free = (try? ModelProvisioner.freeSpace(at: probe.path)).map(formatBytes) ?? "unknown"
        let missing = statuses.filter { $0.remainingBytes > 0 }.count
        print("\(missing) of \(statuses.count) to download, about \(formatBytes(remaining)); \(free) free under \(configuration.volumePath)")
    }

    private func estimate(_ entry: ModelManifest.Entry) -> String {
        (entry.sizeExact ? "" : "~") + formatBytes(entry.sizeBytes)
    }
}

struct ModelsSync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Download the missing models (resuming partial files), verify them and write SwarmUI sidecars."
    )

    @OptionGroup var options: ModelsOptions

    func run() async throws {
        let (configuration, path, presets) = try options.load()
        let logger = SwarmLogging.bootstrap(level: configuration.logLevel, label: "swarm-worker.models", redacting: configuration.secrets)
        let throttle = Throttle(every: .seconds(2))
        let announced = Announced()
        do {
            let summary = try await WorkerBootstrap.provisionModels(
                configuration: configuration,
                manifestPath: path,
                presets: presets,
                logger: logger
            ) { progress in
                for file in progress.files where file.state == .done && announced.first(file.name) {
                    print("done     \(file.name) (\(formatBytes(file.total)))")
                }
                guard throttle.ready() else { return }
                for file in progress.files where file.state == .downloading || file.state == .verifying {
                    print("         \(file.summary)")
                }
                print("total    \(String(format: "%.1f", progress.percent))% (\(formatBytes(progress.done)) of \(formatBytes(progress.total)))")
            }
            for name in summary.alreadyPresent { print("present  \(name)") }
            print(
                "models in place under \(configuration.modelsPath): \(summary.downloaded.count) downloaded (\(formatBytes(summary.bytes))), "
                    + "\(summary.alreadyPresent.count) already there"
            )
        } catch {
            print("FAIL \(error)")
            throw ExitCode(1)
        }
    }
}

/// Remembers which names were printed, so each finished file gets one line.
private final class Announced: Sendable {
    private let names = Mutex<Set<String>>([])
    func first(_ name: String) -> Bool { names.withLock { $0.insert(name).inserted } }
}

private func loadManifest(_ path: String) throws -> ModelManifest {
    do {
        return try ModelManifest.load(path: path)
    } catch {
        print("FAIL \(error)")
        throw ExitCode(1)
    }
}
