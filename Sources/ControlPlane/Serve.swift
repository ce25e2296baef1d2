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

/// `swarmctl serve`: opens the store, refuses to expose an unauthenticated API beyond loopback, and runs the
/// control plane until SIGTERM or SIGINT, then shuts down gracefully.
///
/// - Parameter additionalServices: extension point for `--local-worker`: services run beside the control plane in one
///   service group, started after it and, on SIGTERM or SIGINT, shut down before it (so that a local worker can
///   finish and report its job while the server still answers).
/// - Parameter onServerRunning: called with the bound port once the server accepts connections.
public func runControlPlane(
    configuration: ServeConfiguration,
    logger: Logger,
    additionalServices: [any Service] = [],
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) async throws {
    let (store, storeServices) = try configuration.database.open(logger: logger)
    let listen = configuration.listen
    // Whether the client API asks for keys (`KeyRing`): worker keys alone, such as the fleet's, leave it open.
    let clientKeysExist = Mutex(configuration.controlPlane.environmentKeyScopes.contains(.client))
    let (serverRunning, serverRunningContinuation) = AsyncStream<Void>.makeStream()
    let fleet = configuration.fleet.map { fleetSettings in
        FleetService(settings: fleetSettings, store: DatabaseFleetStore(store: store), serverRunning: serverRunning, logger: logger)
    }
    if listen.tls == nil, !listen.isLoopback {
        // Keys and results would cross the network in clear text; fal and RunPod clients only speak https anyway.
        logger.warning(
            "serving plain HTTP on \(listen.host), beyond this machine: API keys and results cross the network unencrypted. Give --tls-cert/--tls-key (or SWARM_TLS_CERT/SWARM_TLS_KEY), or put a TLS proxy in front"
        )
        FileHandle.standardError.write(
            Data(
                "swarmctl serve: warning: plain HTTP on \(listen.host) without TLS; pass --tls-cert and --tls-key (or SWARM_TLS_CERT/SWARM_TLS_KEY) or a TLS proxy\n"
                    .utf8
            )
        )
    }
    var app = buildApplication(
        configuration: configuration.controlPlane,
        store: store,
        server: ApplicationConfiguration(address: .hostname(listen.host, port: listen.port), serverName: "swarmctl"),
        serverBuilder: try listen.serverBuilder(),
        logger: logger,
        additionalServices: storeServices,
        webFleetClient: configuration.fleet.map { VastAIClient(configuration: $0.vast, logger: logger) },
        fleetStart: configuration.fleet?.coldStart,
        onServerRunning: { port in
            let endpoints = configuration.controlPlane.endpoints.sorted().joined(separator: ", ")
            let keys = clientKeysExist.withLock { $0 } ? "API keys required" : "no client API keys exist, open to this machine only"
            // Unbuffered even into a pipe, so that a supervising process sees it at once.
            let line =
                "swarmctl serve: listening on \(listen.scheme)://\(listen.host):\(port)/v2/{endpoint} (endpoints: \(endpoints)); storage: \(configuration.database); outputs: \(configuration.controlPlane.outputs.map(String.init(describing:)) ?? "inline"); \(keys)\n"
            FileHandle.standardOutput.write(Data(line.utf8))
            serverRunningContinuation.yield()
            serverRunningContinuation.finish()
            await onServerRunning(port)
        }
    )
    if let fleetSettings = configuration.fleet {
        app.beforeServerStarts { try await fleetSettings.checkTemplate(logger: logger) }
    }
    // After buildApplication's migration, which needs the store's services running (so not before `run`).
    app.beforeServerStarts {
        guard !clientKeysExist.withLock({ $0 }) else { return }
        let stored = try await KeyRing.storedScopes(in: store).contains(.client)
        clientKeysExist.withLock { $0 = stored }
        if !stored, !listen.isLoopback {
            throw ServeError(
                "refusing to listen on \(listen.host) without client API keys: anyone who can reach it could submit jobs and read their results "
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
            for (flag, path) in [("--tls-cert (SWARM_TLS_CERT)", certificate), ("--tls-key (SWARM_TLS_KEY)", key)]
            where !FileManager.default.isReadableFile(atPath: path) {
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
