import ArgumentParser
import Foundation
import Logging
import LoopbackServer
import SwarmCore
import VastAIEmulator

/// vast.ai's REST API stand-in as a process, for tests that run `swarmctl serve` as a child with
/// `VAST_API_URL` pointing here. Steer it through `/emulator/...` (fault, rate-limit, take-offer, finish-loading, log, state).
@main
struct VastAIEmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vastai-emulator",
        abstract: "Serves vast.ai's REST API with emulated offers and instances (no account needed)."
    )

    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(help: "Port to bind; 0 picks a free one.") var port = 8791
    @Option(name: .customLong("api-key"), help: "The key accepted as 'Authorization: Bearer <key>'.") var apiKey = "emulated-vast-key"
    @Option(name: .customLong("null-ms"), help: "Milliseconds a new instance reads as null.") var nullMilliseconds = 2_000
    @Option(name: .customLong("created-ms"), help: "Milliseconds in 'created'.") var createdMilliseconds = 3_000
    @Option(name: .customLong("loading-ms"), help: "Milliseconds in 'loading' (the image pull).") var loadingMilliseconds = 10_000
    @Option(name: .customLong("reboot-ms"), help: "Milliseconds in 'rebooting'.") var rebootMilliseconds = 3_000
    @Option(name: .customLong("log-delay-ms"), help: "Milliseconds before a requested log appears at its result_url.") var logDelayMilliseconds =
        1_000
    @Option(help: "JSON file: image reference → what its instances run (entrypoint, cmd, env, paths, port_variables, env_file).")
    var images: String?
    @Option(help: "Directory for the instances that run an image (each gets <id>/workspace, console.log).") var instancesDir: String?
    @Option(help: "JSON file: a list of template records (hash_id, image, tag, runtype, onstart, env).") var templates: String?
    @Flag(help: "Keep rented offers in search results (creating on them still fails), as vast's lagging index does.")
    var listsTakenOffers = false

    func run() async throws {
        var logger = Logger(label: "vastai-emulator")
        logger.logLevel = .warning
        let imageTable =
            try images.map { try JSONDecoder().decode([String: EmulatedImage].self, from: Data(contentsOf: URL(fileURLWithPath: $0))) } ?? [:]
        guard imageTable.isEmpty || instancesDir != nil else { throw ValidationError("--images needs --instances-dir") }
        let templateList: [JSONValue] =
            try templates.map { path throws -> [JSONValue] in
                guard let list = JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: path)))?.arrayValue else {
                    throw ValidationError("--templates: \(path) is not a JSON list")
                }
                return list
            } ?? []
        let emulator = VastAIEmulator(
            configuration: .init(
                apiKey: apiKey,
                nullAfterCreate: .milliseconds(nullMilliseconds),
                createdTime: .milliseconds(createdMilliseconds),
                loadingTime: .milliseconds(loadingMilliseconds),
                rebootTime: .milliseconds(rebootMilliseconds),
                logUploadDelay: .milliseconds(logDelayMilliseconds),
                images: imageTable,
                instancesDirectory: instancesDir,
                templates: templateList,
                listsTakenOffers: listsTakenOffers
            )
        )
        try await serveEmulator(emulator, name: "vast.ai emulator", host: host, port: port, logger: logger)
    }
}
