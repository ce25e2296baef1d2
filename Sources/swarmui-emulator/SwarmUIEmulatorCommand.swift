import ArgumentParser
import Foundation
import Logging
import LoopbackServer
import SwarmUIEmulator

/// SwarmUI stand-in for machines without a GPU. Accepts SwarmUI's launch flags so `launch-linux.sh` can exec it.
@main
struct SwarmUIEmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarmui-emulator",
        abstract: "Serves SwarmUI's API with deterministic fake outputs (no GPU needed)."
    )

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to bind; 0 picks a free one.")
    var port = 7801

    @Option(name: .customLong("launch_mode"), help: "Accepted for launch-linux.sh compatibility; ignored.")
    var launchMode: String?

    @Option(name: .customLong("data-dir"), help: "Folder whose Output/ receives generated files (default: current folder).")
    var dataDirectory: String?

    @Option(name: .customLong("loading-seconds"), help: "Seconds the backend reports loading after start.")
    var loadingSeconds: Double = 0

    @Option(name: .customLong("step-ms"), help: "Milliseconds per sampling step.")
    var stepMilliseconds = 10

    @Option(name: .customLong("large-output-bytes"), help: "Make every output file exactly this large.")
    var largeOutputBytes: Int?

    @Flag(name: .customLong("backend-errored"), help: "Start with an errored backend.")
    var backendErrored = false

    @Option(name: .customLong("drop-feature"), help: "Leave this feature out of supported_features (repeatable), e.g. gguf.")
    var droppedFeatures: [String] = []

    @Option(name: .customLong("drop-node"), help: "Leave this node type out of ComfyGetNodeTypesForBackend (repeatable).")
    var droppedNodeTypes: [String] = []

    @Option(name: .customLong("required-token"), help: "Require 'Authorization: Bearer <token>' (Network.RequiredAuthorization).")
    var requiredToken: String?

    func run() async throws {
        var logger = Logger(label: "swarmui-emulator")
        logger.logLevel = .warning
        let root = dataDirectory ?? FileManager.default.currentDirectoryPath
        let configuration = SwarmUIEmulator.Configuration(
            loadingTime: .milliseconds(Int64(loadingSeconds * 1000)),
            stepDuration: .milliseconds(stepMilliseconds),
            backendErrored: backendErrored,
            requiredBearerToken: requiredToken,
            largeOutputBytes: largeOutputBytes,
            dataDirectory: root,
            allowsCrash: true,
            droppedFeatures: Set(droppedFeatures),
            droppedNodeTypes: Set(droppedNodeTypes)
        )
        let emulator = SwarmUIEmulator(configuration: configuration, outputRoot: root + "/Output")
        try await serveEmulator(emulator, name: "SwarmUI emulator", host: host, port: port, logger: logger)
    }
}
