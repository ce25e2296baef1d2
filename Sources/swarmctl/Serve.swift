import ArgumentParser
import ControlPlane
import Foundation
import JobStore
import Logging
import ServiceLifecycle

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the queue: RunPod's client and worker API under /v2/{endpoint}.",
        discussion: """
            Storage is SQLite in <data-dir>/swarm.db unless --database gives a postgres:// URL. Keys come from \
            SWARM_API_KEYS and SWARM_WORKER_KEYS (comma-separated) and from 'swarmctl keys create'; without a client key the \
            server only listens on loopback (client routes ask for a key once a client key exists, worker routes once any key does). SWARM_WEBHOOK_SECRET signs webhooks (X-Swarm-Signature: sha256=<hex HMAC>).
            """
    )

    @OptionGroup var flags: ServeFlags

    func run() async throws {
        var configuration: ServeConfiguration
        do {
            configuration = try ServeConfiguration(flags: flags, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError(error.description)
        }
        var logger = Logger(label: "swarmctl.serve")
        logger.logLevel = configuration.logLevel
        var additionalServices: [any Service] = []
        let (serverPort, portContinuation) = AsyncStream<Int>.makeStream()
        if let localWorker = configuration.localWorker {
            // A key of its own, accepted as a worker key without closing a server that has no keys otherwise.
            let workerKey = APIKey.generate(scope: .worker)
            configuration.controlPlane.inProcessWorkerKeys.append(workerKey)
            additionalServices.append(
                LocalWorkerService(
                    settings: localWorker,
                    serverPort: serverPort,
                    workerKey: workerKey,
                    dataDirectory: configuration.dataDirectory,
                    scheme: configuration.listen.scheme,
                    logger: logger
                )
            )
        }
        do {
            try await runControlPlane(configuration: configuration, logger: logger, additionalServices: additionalServices) { port in
                portContinuation.yield(port)
                portContinuation.finish()
            }
        } catch {
            // Errors here are the operator's to fix (a port in use, a bad database URL, missing keys): say them plainly.
            printError("swarmctl serve: \(error)")
            throw ExitCode.failure
        }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
