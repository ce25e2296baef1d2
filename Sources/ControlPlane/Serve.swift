import AsyncHTTPClient
import Fleet
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL
import JobStore
import Logging
import ServiceLifecycle
import Storage
import SwarmCore
import Synchronization
import UnixSignals
import VastAI

/// `swarmctl serve`'s flags, as parsed; `ServeSettings` combines them with the environment.
public struct ServeOptions: Sendable {
    public var host: String
    public var port: Int
    public var dataDirectory: String
    /// A `postgres://` (or `postgresql://`) URL, optionally with `sslmode=` and `schema=` query parameters; SQLite in
    /// `dataDirectory` when nil.
    public var databaseURL: String?
    /// Endpoints besides `swarmui`.
    public var endpoints: [String]
    public var leaseTimeout: Duration
    public var maxAttempts: Int
    /// Also run a worker in this process (wired by the caller through `additionalServices`).
    public var localWorker: Bool
    /// The vast.ai fleet, on when `VAST_API_KEY` is set.
    public var fleet = FleetOptions()
    /// PEM files of the server's certificate chain and private key (`--tls-cert`/`--tls-key`): serve HTTPS.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// The environment variable holding the fal.ai key (`--fal-key-env`), and fal's queue URL (`--fal-url`).
    public var falKeyEnv: String?
    public var falURL: String?
    /// `--spill-after` (e.g. "2m") and `--spill-budget-per-day` (dollars), as given.
    public var spillAfter: String?
    public var spillBudgetPerDay: String?

    public init(
        host: String = "127.0.0.1",
        port: Int = 8288,
        dataDirectory: String = "./.swarm",
        databaseURL: String? = nil,
        endpoints: [String] = [],
        leaseTimeout: Duration = .seconds(60),
        maxAttempts: Int = 3,
        localWorker: Bool = false
    ) {
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.databaseURL = databaseURL
        self.endpoints = endpoints
        self.leaseTimeout = leaseTimeout
        self.maxAttempts = maxAttempts
        self.localWorker = localWorker
    }
}

/// The database that keeps jobs, keys and the fleet: a SQLite file or a PostgreSQL server.
public enum DatabaseLocation: Sendable, Hashable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(url: Secret)

    /// `--database` when given, else `<data-dir>/swarm.db`.
    public init(dataDirectory: String, databaseURL: String?) throws(ServeError) {
        guard let url = databaseURL, !url.isEmpty else {
            self = .sqlite(path: (dataDirectory as NSString).appendingPathComponent("swarm.db"))
            return
        }
        if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
            self = .postgres(url: Secret(url))
        } else if url.hasPrefix("sqlite://") || url.hasPrefix("file:") || url.hasSuffix(".db") || url.hasSuffix(".sqlite") {
            let path = url.replacingOccurrences(of: "sqlite://", with: "").replacingOccurrences(of: "file:", with: "")
            self = .sqlite(path: path)
        } else {
            throw ServeError("--database: '\(url.prefix(16))…' is neither a postgres:// URL nor a SQLite file path (*.db, sqlite://PATH)")
        }
    }

    /// Says which storage without the password a PostgreSQL URL may hold.
    public var description: String {
        switch self {
        case .sqlite(let path): return "SQLite \(path)"
        case .postgres(let url):
            guard var components = URLComponents(string: url.value) else { return "PostgreSQL" }
            if components.password != nil { components.password = "<redacted>" }
            return "PostgreSQL \(components.string ?? "")"
        }
    }

    /// Opens the store, creating the SQLite directory. Migrations are not applied yet: a PostgreSQL store must be
    /// running first. Its services (the connection pool) come back, to be run before anything uses the store.
    public func open(logger: Logger) throws -> (store: any ControlPlaneStore, services: [any Service]) {
        switch self {
        case .sqlite(let path):
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                do {
                    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                } catch {
                    throw ServeError("cannot create the data directory \(directory): \(error.localizedDescription)")
                }
            }
            return (try SQLiteJobStore(path: path), [])
        case .postgres(let url):
            // `schema=NAME` in the query keeps this server's tables apart from others on the same database.
            let schema = URLComponents(string: url.value)?.queryItems?.first { $0.name == "schema" }?.value
            let store = try PostgresJobStore(configuration: .init(url: url.value, schema: schema), logger: logger)
            return (store, [store])
        }
    }

    /// Runs `body` with the store open, migrated and (for PostgreSQL) its pool running; for one-shot commands.
    public func withStore<T: Sendable>(logger: Logger, _ body: @Sendable (any ControlPlaneStore) async throws -> T) async throws -> T {
        let (store, services) = try open(logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for service in services { group.addTask { try await service.run() } }
            defer { group.cancelAll() }
            try await store.migrate()
            return try await body(store)
        }
    }
}

/// A `serve` setting that cannot work, said so that an operator can fix it.
public struct ServeError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Everything `serve` runs with: flags plus environment, read here and nowhere else.
///
/// Environment: `SWARM_API_KEYS` and `SWARM_WORKER_KEYS` (comma-separated client and worker keys),
/// `SWARM_WEBHOOK_SECRET` (signs webhooks, see `WebhookSignature`), output storage (`SWARM_STORAGE` and the variables
/// `StorageConfiguration` reads), `SWARM_STORAGE_SECRET` (signs local file links) and `SWARM_PUBLIC_URL` (the
/// control plane as workers and clients reach it, for those links).
public struct ServeSettings: Sendable {
    public var options: ServeOptions
    public var storage: DatabaseLocation
    public var configuration: ControlPlaneConfiguration
    public var fleet: FleetSettings?
    /// HTTPS when set: from `--tls-cert`/`--tls-key`, else `SWARM_TLS_CERT`/`SWARM_TLS_KEY`.
    public var tls: TLSFiles?

    public init(options: ServeOptions, environment: [String: String] = ProcessInfo.processInfo.environment) throws(ServeError) {
        guard (0...65_535).contains(options.port) else { throw ServeError("--port: \(options.port) is not a TCP port (0-65535)") }
        guard options.maxAttempts >= 1 else { throw ServeError("--max-attempts: must be at least 1") }
        guard options.leaseTimeout >= .seconds(5) else {
            throw ServeError("--lease-timeout: must be at least 5 seconds (workers ping every 10 s by default)")
        }
        for name in options.endpoints where !Self.isValidEndpointName(name) {
            throw ServeError("--endpoint: '\(name)' must be 1-64 letters, digits, '-' or '_'")
        }
        let keys = { (variable: String) in
            (environment[variable] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map(
                Secret.init
            )
        }
        let variable = { (name: String) in environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        let outputs: StorageConfiguration
        do {
            outputs = try StorageConfiguration(environment: environment, dataDirectory: options.dataDirectory)
        } catch {
            throw ServeError("output storage: \(error.message)")
        }
        let signingSecret: Secret
        if let value = variable("SWARM_STORAGE_SECRET") {
            signingSecret = Secret(value)
        } else {
            signingSecret = try OutputStorageSettings.persistentSecret(in: options.dataDirectory)
        }
        self.options = options
        self.storage = try DatabaseLocation(dataDirectory: options.dataDirectory, databaseURL: options.databaseURL)
        self.fleet = try FleetSettings(options: options.fleet, environment: environment)
        self.tls = try TLSFiles(
            certificate: options.tlsCertificate ?? variable("SWARM_TLS_CERT"),
            key: options.tlsKey ?? variable("SWARM_TLS_KEY")
        )
        self.configuration = ControlPlaneConfiguration(
            endpoints: Set(options.endpoints),
            leaseTimeout: options.leaseTimeout,
            maxAttempts: options.maxAttempts,
            clientKeys: keys("SWARM_API_KEYS"),
            workerKeys: keys("SWARM_WORKER_KEYS"),
            webhooks: .init(secret: variable("SWARM_WEBHOOK_SECRET").map(Secret.init)),
            outputs: OutputStorageSettings(
                configuration: outputs,
                signingSecret: signingSecret,
                publicURL: variable("SWARM_PUBLIC_URL")
            )
        )
        configuration.scheme = tls == nil ? "http" : "https"
        configuration.publicURL = (options.fleet.publicURL ?? variable("SWARM_PUBLIC_URL")).map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        configuration.fal = try Self.falSettings(options: options, variable: variable)
    }

    /// fal.ai for the `fal` provider: `--fal-key-env NAME` (or `SWARM_FAL_KEY_ENV`) names the variable holding the key,
    /// so the key itself never appears in a command line; `--fal-url` (or `SWARM_FAL_URL`) defaults to fal's queue.
    static func falSettings(options: ServeOptions, variable: (String) -> String?) throws(ServeError) -> FalForwardSettings? {
        guard let name = options.falKeyEnv ?? variable("SWARM_FAL_KEY_ENV") else { return nil }
        guard let key = variable(name) else { throw ServeError("--fal-key-env: the variable \(name) is unset or empty; export the fal.ai key in it") }
        let url = options.falURL ?? variable("SWARM_FAL_URL") ?? "https://queue.fal.run"
        guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
            throw ServeError("--fal-url: '\(url)' is not an http(s) URL, e.g. https://queue.fal.run")
        }
        var settings = FalForwardSettings(url: url, key: Secret(key))
        if let after = options.spillAfter ?? variable("SWARM_SPILL_AFTER") {
            guard let duration = parseSpillDuration(after), duration > .zero else {
                throw ServeError("--spill-after: '\(after)' is not a duration; write e.g. 90s, 2m or 1h")
            }
            let budgetText = options.spillBudgetPerDay ?? variable("SWARM_SPILL_BUDGET_PER_DAY")
            guard let budgetText, let budget = Double(budgetText), budget >= 0 else {
                throw ServeError("--spill-budget-per-day: spill-over needs a daily budget in dollars, e.g. 20 (got \(budgetText ?? "none"))")
            }
            settings.spill = SpillSettings(after: duration, budgetPerDay: budget)
        }
        return settings
    }

    /// "90s", "2m", "1h" or plain seconds.
    static func parseSpillDuration(_ text: String) -> Duration? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard let last = trimmed.last else { return nil }
        let (number, scale) = units[last].map { (String(trimmed.dropLast()), $0) } ?? (trimmed, 1)
        guard let value = Double(number), value.isFinite else { return nil }
        return .milliseconds(Int64(value * scale * 1000))
    }

    static func isValidEndpointName(_ name: String) -> Bool {
        (1...64).contains(name.count) && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }

    /// The HTTP server: HTTP/1.1, inside TLS when certificate files are set.
    public func serverBuilder() throws(ServeError) -> HTTPServerBuilder {
        guard let tls else { return .http1() }
        do {
            return try .tls(tlsConfiguration: tls.configuration())
        } catch let error as ServeError {
            throw error
        } catch {
            throw ServeError("TLS: cannot use \(tls.certificate) and \(tls.key): \(error)")
        }
    }

    /// Whether `host` only accepts connections from this machine.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }
}

/// `swarmctl serve`: opens the store, refuses to expose an unauthenticated API beyond loopback, and runs the
/// control plane until SIGTERM or SIGINT, then shuts down gracefully.
///
/// - Parameter additionalServices: extension point for `--local-worker`: services run beside the control plane in one
///   service group, started after it and, on SIGTERM or SIGINT, shut down before it (so that a local worker can
///   finish and report its job while the server still answers).
/// - Parameter onServerRunning: called with the bound port once the server accepts connections.
public func runControlPlane(
    settings: ServeSettings,
    logger: Logger,
    additionalServices: [any Service] = [],
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws {
    let (store, storeServices) = try settings.storage.open(logger: logger)
    let options = settings.options
    // Whether the client API asks for keys (`KeyRing`): worker keys alone, such as the fleet's, leave it open.
    let clientKeysExist = Mutex(settings.configuration.environmentKeyScopes.contains(.client))
    let (serverRunning, serverRunningContinuation) = AsyncStream<Void>.makeStream()
    let fleet = try settings.fleet.map { fleetSettings throws(ServeError) in
        return FleetService(settings: fleetSettings, store: DatabaseFleetStore(store: store), serverRunning: serverRunning, logger: logger)
    }
    let scheme = settings.tls == nil ? "http" : "https"
    if settings.tls == nil, !ServeSettings.isLoopback(options.host) {
        // Keys and results would cross the network in clear text; fal and RunPod clients only speak https anyway.
        logger.warning(
            "serving plain HTTP on \(options.host), beyond this machine: API keys and results cross the network unencrypted. Give --tls-cert/--tls-key (or SWARM_TLS_CERT/SWARM_TLS_KEY), or put a TLS proxy in front"
        )
        FileHandle.standardError.write(
            Data(
                "swarmctl serve: warning: plain HTTP on \(options.host) without TLS; pass --tls-cert and --tls-key (or SWARM_TLS_CERT/SWARM_TLS_KEY) or a TLS proxy\n"
                    .utf8
            )
        )
    }
    var app = buildApplication(
        configuration: settings.configuration,
        store: store,
        server: ApplicationConfiguration(address: .hostname(options.host, port: options.port), serverName: "swarmctl"),
        serverBuilder: try settings.serverBuilder(),
        logger: logger,
        additionalServices: storeServices,
        webFleetClient: settings.fleet.map { VastAIClient(configuration: $0.vast, logger: logger) },
        fleetStart: settings.fleet?.coldStart,
        onServerRunning: { port in
            let endpoints = settings.configuration.endpoints.sorted().joined(separator: ", ")
            let keys = clientKeysExist.withLock { $0 } ? "API keys required" : "no client API keys exist, open to this machine only"
            // Unbuffered even into a pipe, so that a supervising process sees it at once.
            let line =
                "swarmctl serve: listening on \(scheme)://\(options.host):\(port)/v2/{endpoint} (endpoints: \(endpoints)); storage: \(settings.storage); outputs: \(settings.configuration.outputs.map(String.init(describing:)) ?? "inline"); \(keys)\n"
            FileHandle.standardOutput.write(Data(line.utf8))
            serverRunningContinuation.yield()
            serverRunningContinuation.finish()
            await onServerRunning(port)
        }
    )
    if let fleetSettings = settings.fleet {
        app.beforeServerStarts { try await fleetSettings.checkTemplate(logger: logger) }
    }
    // After buildApplication's migration, which needs the store's services running (so not before `run`).
    app.beforeServerStarts {
        guard !clientKeysExist.withLock({ $0 }) else { return }
        let stored = try await KeyRing.storedScopes(in: store).contains(.client)
        clientKeysExist.withLock { $0 = stored }
        if !stored, !ServeSettings.isLoopback(options.host) {
            throw ServeError(
                "refusing to listen on \(options.host) without client API keys: anyone who can reach it could submit jobs and read their results "
                    + "(worker keys, such as the fleet's, do not close the client API). Create keys with 'swarmctl keys create --scope client' "
                    + "and '--scope worker', set SWARM_API_KEYS / SWARM_WORKER_KEYS, or listen on 127.0.0.1"
            )
        }
    }
    let group = ServiceGroup(
        configuration: .init(
            services: [app] + additionalServices + (fleet.map { [$0] } ?? []),
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
    )
    try await group.run()
}

/// The server certificate chain and key files of `serve --tls-cert/--tls-key`, checked to be both given and readable.
public struct TLSFiles: Sendable, Hashable {
    public var certificate: String
    public var key: String

    /// Nil when neither is given; an error when only one is.
    public init?(certificate: String?, key: String?) throws(ServeError) {
        switch (certificate, key) {
        case (nil, nil): return nil
        case (nil, _?): throw ServeError("--tls-key needs --tls-cert (SWARM_TLS_CERT): the certificate chain, PEM")
        case (_?, nil): throw ServeError("--tls-cert needs --tls-key (SWARM_TLS_KEY): the certificate's private key, PEM")
        case (let certificate?, let key?):
            for (flag, path) in [("--tls-cert", certificate), ("--tls-key", key)] where !FileManager.default.isReadableFile(atPath: path) {
                throw ServeError("\(flag): cannot read \(path)")
            }
            self.certificate = certificate
            self.key = key
        }
    }

    /// A server configuration from the PEM files; a file that is not PEM of the right kind is named in the error.
    public func configuration() throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate)
        } catch {
            throw ServeError("--tls-cert: \(certificate) holds no PEM certificate (\(error))")
        }
        guard !chain.isEmpty else { throw ServeError("--tls-cert: \(certificate) holds no PEM certificate") }
        let privateKey: NIOSSLPrivateKey
        do {
            privateKey = try NIOSSLPrivateKey(file: key, format: .pem)
        } catch {
            throw ServeError("--tls-key: \(key) holds no PEM private key (\(error))")
        }
        return TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
    }
}
