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

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port = 8288
    @Option(help: "Directory for the SQLite database.") var dataDir = "./.swarm"
    @Option(help: "Database URL: postgres://user:pass@host/db[?sslmode=disable&schema=NAME], or a SQLite file.") var database: String?
    @Option(name: .customLong("endpoint"), help: "An endpoint to serve besides 'swarmui' (repeatable).") var endpoints: [String] = []
    @Option(help: "Seconds a taken job stays leased without a ping naming it.") var leaseTimeout = 60
    @Option(help: "Takes after which a job whose lease keeps expiring fails.") var maxAttempts = 3
    @Flag(help: "Also run a worker in this process.") var localWorker = false
    @Option(help: "Serve HTTPS with this PEM certificate chain (or SWARM_TLS_CERT); needs --tls-key.") var tlsCert: String?
    @Option(help: "The PEM private key of --tls-cert (or SWARM_TLS_KEY).") var tlsKey: String?
    @Option(help: "Environment variable holding the fal.ai key, e.g. FAL_KEY (or SWARM_FAL_KEY_ENV): enables provider \"fal\".")
    var falKeyEnv: String?
    @Option(help: "fal.ai's queue API (or SWARM_FAL_URL; default https://queue.fal.run).") var falURL: String?
    @Option(help: "Forward an auto job to fal.ai once it would wait longer than this for a READY worker, e.g. 2m (or SWARM_SPILL_AFTER).")
    var spillAfter: String?
    @Option(help: "Dollars per UTC day spill-over may spend on fal.ai (or SWARM_SPILL_BUDGET_PER_DAY); needed with --spill-after.")
    var spillBudgetPerDay: String?
    @OptionGroup(title: "vast.ai fleet (on when VAST_API_KEY is set)") var fleet: FleetFlags

    var options: ServeOptions {
        var options = ServeOptions(
            host: host,
            port: port,
            dataDirectory: dataDir,
            databaseURL: database,
            endpoints: endpoints,
            leaseTimeout: .seconds(leaseTimeout),
            maxAttempts: maxAttempts,
            localWorker: localWorker
        )
        options.fleet = fleet.options
        options.tlsCertificate = tlsCert
        options.tlsKey = tlsKey
        options.falKeyEnv = falKeyEnv
        options.falURL = falURL
        options.spillAfter = spillAfter
        options.spillBudgetPerDay = spillBudgetPerDay
        return options
    }

    func run() async throws {
        var settings: ServeSettings
        do {
            settings = try ServeSettings(options: options)
        } catch {
            throw ValidationError(error.description)
        }
        var logger = Logger(label: "swarmctl.serve")
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        var additionalServices: [any Service] = []
        let (serverPort, portContinuation) = AsyncStream<Int>.makeStream()
        if localWorker {
            // A key of its own, accepted as a worker key without closing a server that has no keys otherwise.
            let workerKey = APIKey.generate(scope: .worker)
            settings.configuration.inProcessWorkerKeys.append(workerKey)
            additionalServices.append(
                LocalWorkerService(
                    serverPort: serverPort,
                    workerKey: workerKey,
                    dataDirectory: dataDir,
                    scheme: settings.tls == nil ? "http" : "https",
                    logger: logger
                )
            )
        }
        do {
            try await runControlPlane(settings: settings, logger: logger, additionalServices: additionalServices) { port in
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
