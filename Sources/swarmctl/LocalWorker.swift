import AsyncHTTPClient
import ControlPlane
import JobProtocol
import Logging
import NIOSSL
import ServiceLifecycle
import SwarmCore
import SwarmUIEmulator
import Worker

import Foundation

/// `swarmctl serve --local-worker`: a worker in the same process group, pulling from this server over loopback like
/// any remote worker. It attaches to the SwarmUI at `SWARMUI_API_URL` when one answers there (a local GPU), or else
/// runs the SwarmUI emulator on that address, and says so loudly: its outputs are placeholders.
struct LocalWorkerService: Service {
    /// Its environment, and the emulator's output size.
    let settings: ServeConfiguration.LocalWorker
    /// The control plane's port, once it listens.
    let serverPort: AsyncStream<Int>
    /// Registered with the server as an in-process worker key.
    let workerKey: Secret
    let dataDirectory: String
    /// `https` when the server runs TLS.
    var scheme = "http"
    let logger: Logger

    func run() async throws {
        var ports = serverPort.makeAsyncIterator()
        guard let port = await ports.next() else { return }
        var environment = settings.environment
        let swarmUIURL = (try? WorkerConfiguration(environment: environment, attach: true).swarmUIURL) ?? "http://127.0.0.1:7801"
        environment.merge([
            "SWARMUI_ATTACH": "1", "SWARMUI_API_URL": swarmUIURL,
            "SWARM_QUEUE_URL": "\(scheme)://127.0.0.1:\(port)/v2/swarmui",
            "SWARM_WORKER_KEY": workerKey.value,
            "SWARM_WORKER_ID": environment["SWARM_WORKER_ID"].flatMap { $0.isEmpty ? nil : $0 } ?? "local-worker",
            "VOLUME_PATH": environment["VOLUME_PATH"].flatMap { $0.isEmpty ? nil : $0 }
                ?? (dataDirectory as NSString).appendingPathComponent("local-worker"),
        ]) { _, override in override }
        let configuration = try WorkerConfiguration(environment: environment)

        var queueConfiguration = HTTPQueueClient.httpClientConfiguration()
        if scheme == "https" {
            // The server is this process, over loopback: its certificate names the public host, not 127.0.0.1, and
            // may come from a CA this machine does not trust.
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .none
            queueConfiguration.tlsConfiguration = tls
        }
        let queueHTTP = HTTPClient(eventLoopGroupProvider: .singleton, configuration: queueConfiguration)
        let swarmHTTP = SwarmUIClientBackend.makeHTTPClient(configuration)
        let outcome: Result<Void, any Error>
        do {
            try await run(configuration: configuration, port: port, queueHTTP: queueHTTP, swarmHTTP: swarmHTTP)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        try? await queueHTTP.shutdown()
        try? await swarmHTTP.shutdown()
        try outcome.get()
    }

    private func run(configuration: WorkerConfiguration, port: Int, queueHTTP: HTTPClient, swarmHTTP: HTTPClient) async throws {
        let swarmUIURL = configuration.swarmUIURL
        let swarm = SwarmUIClientBackend(configuration: configuration, httpClient: swarmHTTP, logger: logger)
        var services: [any Service] = []
        if try await Self.answers(swarm) {
            logger.info("local worker: attaching to the SwarmUI at \(swarmUIURL)")
        } else {
            guard let emulatorPort = URLComponents(string: swarmUIURL)?.port else {
                throw LocalWorkerError("no SwarmUI answers at \(swarmUIURL), and it has no port for the emulator to listen on")
            }
            logger.warning(
                """
                local worker: NO SwarmUI answers at \(swarmUIURL): running the SwarmUI EMULATOR there instead. \
                Jobs complete with placeholder images and videos, not real generations. Start SwarmUI (or set \
                SWARMUI_API_URL) for real ones.
                """
            )
            let emulator = SwarmUIEmulator(
                configuration: .init(stepDuration: .milliseconds(50), largeOutputBytes: settings.emulatorOutputBytes),
                outputRoot: (configuration.volumePath as NSString).appendingPathComponent("emulator/Output")
            )
            services.append(emulator.application(host: "127.0.0.1", port: emulatorPort, logger: logger) { _ in })
            // Stopped after the worker and before the emulator: the emulator's server waits for open connections, and
            // the worker's pooled keep-alive connections to it would otherwise hold its shutdown forever.
            services.append(HTTPClientCloser(client: swarmHTTP))
        }
        let worker = WorkerApplication(
            configuration: configuration,
            swarm: swarm,
            queue: HTTPQueueClient(endpoints: configuration.queue!, httpClient: queueHTTP, logger: logger),
            httpClient: queueHTTP,
            logger: logger
        )
        services += try worker.services()
        logger.info("local worker \(configuration.queue!.workerID) pulling from \(scheme)://127.0.0.1:\(port)/v2/swarmui")
        // A nested group: the parent's graceful shutdown reaches it, and it stops the worker before the emulator.
        try await ServiceGroup(services: services, logger: logger).run()
    }

    /// Whether anything SwarmUI-like answers (even "still loading" counts: it is there, just not ready).
    private static func answers(_ swarm: SwarmUIClientBackend) async throws -> Bool {
        do {
            _ = try await swarm.readiness(requiring: .none)
            return true
        } catch {
            return false
        }
    }
}

/// Shuts an HTTP client down when graceful shutdown reaches it.
private struct HTTPClientCloser: Service {
    let client: HTTPClient

    func run() async throws {
        try? await gracefulShutdown()
        try? await client.shutdown()
    }
}

struct LocalWorkerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
