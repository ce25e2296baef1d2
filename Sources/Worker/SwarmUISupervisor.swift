import Logging
import ServiceLifecycle
import Subprocess
import SwarmCore
import Synchronization

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// What the supervisor knows about the SwarmUI process, for readiness (fail fast) and for pings (the log tail).
public actor SwarmUIProcessMonitor {
    public private(set) var failure: String?
    public private(set) var restarts = 0
    private var tail: [String] = []
    private let tailLength = 40

    public init() {}

    func record(_ line: String) {
        tail.append(line)
        if tail.count > tailLength { tail.removeFirst(tail.count - tailLength) }
    }

    func fail(_ reason: String) { failure = reason }
    func restarted() { restarts += 1 }

    /// The last lines SwarmUI printed, oldest first.
    public var lastLines: [String] { tail }
}

/// Launches SwarmUI with `launch-linux.sh` in its own process group, streams its output into the worker log,
/// restarts it with backoff when it dies, and on graceful shutdown sends SIGTERM to the whole group and waits.
///
/// SwarmUI gets `environment` only (the allow-list of `SwarmUIEnvironment`), and every line it prints passes through
/// `redactor` before it reaches the log, the pings' tail or `/health`: a token SwarmUI or ComfyUI echoes from its own
/// settings is scrubbed too.
///
/// A SwarmUI that dies before it was ever ready is not restarted: the install is broken and a restart loop would
/// only hide why. The worker reports the reason and exits.
public struct SwarmUISupervisor: Service {
    public var folder: String
    public var host: String
    public var port: Int
    public var monitor: SwarmUIProcessMonitor
    public var state: WorkerState
    public var environment: [String: String]
    public var redactor: SecretRedactor
    public var logger: Logger
    public var restartBackoff = Backoff(initial: .seconds(1), maximum: .seconds(60))
    /// Added to `environment` at each launch (read then: the volume is prepared after this is made).
    public var launchEnvironment: @Sendable () -> [String: String] = { [:] }

    public init(
        folder: String,
        host: String,
        port: Int,
        monitor: SwarmUIProcessMonitor,
        state: WorkerState,
        environment: [String: String],
        redactor: SecretRedactor,
        logger: Logger
    ) {
        self.folder = folder
        self.host = host
        self.port = port
        self.monitor = monitor
        self.state = state
        self.environment = environment
        self.redactor = redactor
        self.logger = logger
    }

    public func run() async throws {
        let script = folder + "/launch-linux.sh"
        guard FileManager.default.fileExists(atPath: script) else {
            let reason =
                "\(script) not found: is SwarmUI installed on the volume (VOLUME_PATH), or should the worker attach to a running one (--attach)?"
            await monitor.fail(reason)
            throw SupervisorError(reason: reason)
        }
        var failures = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let clock = ContinuousClock()
            let launched = clock.now
            logger.info("launching SwarmUI: \(script) --launch_mode none --host \(host) --port \(port)")
            let (status, stoppedByUs) = try await launchOnce(script: script)
            if stoppedByUs {
                logger.info("SwarmUI stopped (\(status))")
                return
            }
            let lastLines = await monitor.lastLines.suffix(5).joined(separator: " | ")
            guard await state.swarmUIEverReady else {
                let reason = "SwarmUI exited during start (\(status)); last output: \(lastLines)"
                await monitor.fail(reason)
                throw SupervisorError(reason: reason)
            }
            await state.swarmUILost()
            await monitor.restarted()
            // A SwarmUI that ran a good while before dying starts the backoff over.
            failures = clock.now - launched > .seconds(300) ? 0 : failures + 1
            let delay = restartBackoff.delay(attempt: failures - 1)
            logger.error("SwarmUI died (\(status)); restarting in \(delay.milliseconds) ms. Last output: \(lastLines)")
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) }
        }
    }

    private func launchOnce(script: String) async throws -> (TerminationStatus, Bool) {
        var options = PlatformOptions()
        // Its own session and process group: SIGTERM reaches SwarmUI, dotnet and ComfyUI together.
        options.createSession = true
        options.teardownSequence = [.gracefulShutDown(allowedDurationToNextStep: .seconds(20))]
        let stoppedByUs = Mutex(false)
        let monitor = monitor
        let logger = logger
        let redactor = redactor
        // The allow-listed environment, plus what the speed-ups set at this launch (read now: the volume is prepared
        // after the supervisor is made).
        let launchEnvironment = Dictionary(
            environment.merging(self.launchEnvironment()) { _, launch in launch }.compactMap { name, value in
                Environment.Key(rawValue: name).map { ($0, value) }
            },
            uniquingKeysWith: { _, last in last }
        )
        let result = try await Subprocess.run(
            .name("bash"),
            arguments: [script, "--launch_mode", "none", "--host", host, "--port", String(port)],
            environment: .custom(launchEnvironment),
            workingDirectory: FilePath(folder),
            platformOptions: options,
            input: .none,
            output: .sequence,
            error: .sequence
        ) { execution in
            await state.markBoot("SwarmUI launched")
            return try await withGracefulShutdownHandler {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    // Drain both pipes to the end so SwarmUI's last words are logged, even during shutdown.
                    group.addTask {
                        for try await raw in execution.standardOutput.strings() {
                            let line = redactor.redact(raw)
                            await monitor.record(line)
                            logger.info("[swarmui] \(line)")
                        }
                    }
                    group.addTask {
                        for try await raw in execution.standardError.strings() {
                            let line = redactor.redact(raw)
                            await monitor.record(line)
                            logger.warning("[swarmui] \(line)")
                        }
                    }
                    try await group.waitForAll()
                }
            } onGracefulShutdown: {
                stoppedByUs.withLock { $0 = true }
                try? execution.send(signal: .terminate, toProcessGroup: true)
            }
        }
        return (result.terminationStatus, stoppedByUs.withLock { $0 })
    }
}

public struct SupervisorError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

import Foundation
