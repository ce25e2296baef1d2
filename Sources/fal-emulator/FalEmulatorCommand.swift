import ArgumentParser
import FalEmulator
import Foundation
import Logging
import LoopbackServer

/// fal.ai's queue API stand-in as a process, for tests that run `swarmctl serve` with `--fal-url` pointing here.
/// Steer it through `/emulator/...` (fail-next, latency) and read what it charged at `/emulator/charges`.
@main
struct FalEmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fal-emulator",
        abstract: "Serves fal.ai's queue API for the Wan 2.2 apps, with a CDN of real output files."
    )

    @Option(help: "Address to bind.") var host = "127.0.0.1"
    @Option(help: "Port to bind; 0 picks a free one.") var port = 8792
    @Option(help: "The key accepted as 'Authorization: Key <key>'.") var key = "emulated-fal-key"
    @Option(name: .customLong("queue-ms"), help: "Milliseconds a request reads IN_QUEUE.") var queueMilliseconds = 300
    @Option(name: .customLong("run-ms"), help: "Milliseconds a request reads IN_PROGRESS.") var runMilliseconds = 500
    @Option(name: .customLong("output-bytes"), help: "Size of each output video.") var outputBytes = 256 << 10
    @Option(help: "Directory for the output files (a temporary one by default).") var directory: String?

    func run() async throws {
        var logger = Logger(label: "fal-emulator")
        logger.logLevel = .warning
        let emulator = try FalEmulator(
            configuration: .init(
                key: key,
                queueTime: .milliseconds(queueMilliseconds),
                runTime: .milliseconds(runMilliseconds),
                outputBytes: outputBytes,
                directory: directory
            )
        )
        try await serveEmulator(emulator, name: "fal.ai emulator", host: host, port: port, logger: logger)
    }
}
