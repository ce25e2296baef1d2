import Fleet
import Foundation
import HummingbirdCore
import HummingbirdTLS
import Logging
import Storage
import SwarmCore
import VastAI

/// Everything `swarmctl serve` runs with, read from its flags and environment by `init(flags:environment:)` and
/// nowhere else. `buildApplication` takes `controlPlane`, the fleet's service takes `fleet`.
///
/// A flag outranks its environment variable, which outranks the default; an empty variable counts as unset. The
/// variables are listed in `.env.example`: `SWARM_API_KEYS`, `SWARM_WORKER_KEYS`, `SWARM_WEBHOOK_SECRET`, output
/// storage (`SWARM_STORAGE` and the variables `StorageConfiguration` reads), `SWARM_STORAGE_SECRET`,
/// `SWARM_PUBLIC_URL`, `SWARM_TLS_CERT`/`SWARM_TLS_KEY`, `SWARM_FAL_KEY_ENV`, `SWARM_FAL_URL`, `SWARM_SPILL_AFTER`,
/// `SWARM_SPILL_BUDGET_PER_DAY`, `SWARM_EMULATOR_OUTPUT_BYTES` (`--local-worker`), the fleet's `VAST_API_KEY`,
/// `VAST_API_URL`, `SWARM_FLEET_SIZE`, `SWARM_FLEET_GPU`, `SWARM_FLEET_MAX_DPH`, `SWARM_FLEET_DISK_GB`,
/// `SWARM_FLEET_IMAGE`, `SWARM_FLEET_TEMPLATE`, `SWARM_BUDGET_PER_DAY`, `SWARM_HEARTBEAT_TIMEOUT`, the scaler's
/// `SWARM_WORKERS_MIN`, `SWARM_WORKERS_MAX`, `SWARM_IDLE_TIMEOUT`, `SWARM_SCALER_TYPE`, `SWARM_SCALER_VALUE`,
/// `SWARM_KEEP_WARM`, and `LOG_LEVEL`. A `--local-worker` reads its own variables (`WorkerConfiguration`).
public struct ServeConfiguration: Sendable {
    /// Where the server listens, and whether through TLS.
    public var listen: Listen
    /// Holds the SQLite database (unless `database` says otherwise), the storage secret and local outputs.
    public var dataDirectory: String
    public var database: DatabaseLocation
    /// The routes and their background services: endpoints, leases, keys, webhooks, limits, output storage, fal.ai.
    public var controlPlane: ControlPlaneConfiguration
    /// The vast.ai fleet and its scaler; nil without `VAST_API_KEY`.
    public var fleet: FleetSettings?
    /// `--local-worker`: also run a worker in this process (wired by the caller through `additionalServices`).
    public var localWorker: LocalWorker?
    public var logLevel: Logger.Level

    /// The worker `--local-worker` runs beside the server.
    public struct LocalWorker: Sendable {
        /// serve's environment, which the worker reads as its own (`WorkerConfiguration`) under the settings that
        /// point it at this server.
        public var environment: [String: String]
        /// `SWARM_EMULATOR_OUTPUT_BYTES`: makes every output of the SwarmUI emulator it runs when no SwarmUI answers
        /// that large, to exercise multipart uploads.
        public var emulatorOutputBytes: Int?
    }

    /// The address, and the TLS files of `--tls-cert`/`--tls-key` (or `SWARM_TLS_CERT`/`SWARM_TLS_KEY`).
    public struct Listen: Sendable {
        public var host: String
        public var port: Int
        /// HTTPS when set.
        public var tls: TLSFiles?

        public var scheme: String { tls == nil ? "http" : "https" }

        /// Whether `host` only accepts connections from this machine.
        public var isLoopback: Bool { host == "localhost" || host == "::1" || host.hasPrefix("127.") }

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
    }

    /// Reads and checks every setting; an error names the flag (and variable) at fault and what to give instead.
    public init(flags: ServeFlags, environment: [String: String]) throws(ServeError) {
        let env = ServeEnvironment(variables: environment)
        guard (0...65_535).contains(flags.port) else { throw ServeError("--port: \(flags.port) is not a TCP port (0-65535)") }
        guard flags.maxAttempts >= 1 else { throw ServeError("--max-attempts: must be at least 1") }
        guard flags.leaseTimeout >= 5 else {
            throw ServeError("--lease-timeout: must be at least 5 seconds (workers ping every 10 s by default)")
        }
        for name in flags.endpoints where !Self.isValidEndpointName(name) {
            throw ServeError("--endpoint: '\(name)' must be 1-64 letters, digits, '-' or '_'")
        }
        let outputs: StorageConfiguration
        do {
            outputs = try StorageConfiguration(environment: environment, dataDirectory: flags.dataDir)
        } catch {
            throw ServeError("output storage: \(error.message)")
        }
        let signingSecret: Secret
        if let value = env["SWARM_STORAGE_SECRET"] {
            signingSecret = Secret(value)
        } else {
            signingSecret = try OutputStorageSettings.persistentSecret(in: flags.dataDir)
        }
        dataDirectory = flags.dataDir
        database = try SharedSettings.database(dataDirectory: flags.dataDir, flag: flags.database, environment: environment)
        fleet = try Self.fleet(flags.fleet, env)
        listen = Listen(
            host: flags.host,
            port: flags.port,
            tls: try TLSFiles(certificate: flags.tlsCert ?? env["SWARM_TLS_CERT"], key: flags.tlsKey ?? env["SWARM_TLS_KEY"])
        )
        controlPlane = ControlPlaneConfiguration(
            endpoints: Set(flags.endpoints),
            leaseTimeout: .seconds(flags.leaseTimeout),
            maxAttempts: flags.maxAttempts,
            clientKeys: env.keys("SWARM_API_KEYS"),
            workerKeys: env.keys("SWARM_WORKER_KEYS"),
            webhooks: .init(secret: env["SWARM_WEBHOOK_SECRET"].map(Secret.init)),
            outputs: OutputStorageSettings(configuration: outputs, signingSecret: signingSecret, publicURL: env["SWARM_PUBLIC_URL"])
        )
        controlPlane.scheme = listen.scheme
        controlPlane.publicURL = (flags.fleet.publicURL ?? env["SWARM_PUBLIC_URL"]).map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        controlPlane.fal = try Self.fal(flags, env)
        localWorker =
            flags.localWorker
            ? LocalWorker(
                environment: environment,
                emulatorOutputBytes: try env.value(nil, "--local-worker", "SWARM_EMULATOR_OUTPUT_BYTES")
            ) : nil
        logLevel = (env["LOG_LEVEL"]?.lowercased()).flatMap(Logger.Level.init(rawValue:)) ?? .info
    }

    static func isValidEndpointName(_ name: String) -> Bool {
        (1...64).contains(name.count) && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }

    /// fal.ai for the `fal` provider: `--fal-key-env NAME` (or `SWARM_FAL_KEY_ENV`) names the variable holding the key,
    /// so the key itself never appears in a command line; `--fal-url` (or `SWARM_FAL_URL`) defaults to fal's queue.
    static func fal(_ flags: ServeFlags, _ env: ServeEnvironment) throws(ServeError) -> FalForwardSettings? {
        guard let name = flags.falKeyEnv ?? env["SWARM_FAL_KEY_ENV"] else { return nil }
        guard let key = env[name] else {
            throw ServeError("--fal-key-env (SWARM_FAL_KEY_ENV): the variable \(name) is unset or empty; export the fal.ai key in it")
        }
        let url = flags.falURL ?? env["SWARM_FAL_URL"] ?? "https://queue.fal.run"
        guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
            throw ServeError("--fal-url (SWARM_FAL_URL): '\(url)' is not an http(s) URL, e.g. https://queue.fal.run")
        }
        var settings = FalForwardSettings(url: url, key: Secret(key))
        if let after = flags.spillAfter ?? env["SWARM_SPILL_AFTER"] {
            guard let duration = parseSpillDuration(after), duration > .zero else {
                throw ServeError("--spill-after (SWARM_SPILL_AFTER): '\(after)' is not a duration; write e.g. 90s, 2m or 1h")
            }
            let budgetText = flags.spillBudgetPerDay ?? env["SWARM_SPILL_BUDGET_PER_DAY"]
            guard let budgetText, let budget = Double(budgetText), budget >= 0 else {
                throw ServeError(
                    "--spill-budget-per-day (SWARM_SPILL_BUDGET_PER_DAY): spill-over needs a daily budget in dollars, e.g. 20 (got \(budgetText ?? "none"))"
                )
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

    /// The fleet `serve` keeps on vast.ai: nil when `VAST_API_KEY` is unset.
    static func fleet(_ flags: FleetFlags, _ env: ServeEnvironment) throws(ServeError) -> FleetSettings? {
        guard env.variables["VAST_API_KEY"].map({ !$0.trimmingCharacters(in: .whitespaces).isEmpty }) == true else { return nil }
        let vast: VastAIClient.Configuration
        do {
            vast = try VastAIClient.Configuration(environment: env.variables)
        } catch {
            throw ServeError("VAST_API_KEY: \(error)")
        }
        let size = try env.value(flags.fleetSize, "--fleet-size", "SWARM_FLEET_SIZE") ?? 1
        guard size >= 0 else { throw ServeError("--fleet-size (SWARM_FLEET_SIZE): must be 0 or more") }
        let diskGB = try env.value(flags.disk, "--disk", "SWARM_FLEET_DISK_GB") ?? 100
        guard diskGB > 0 else { throw ServeError("--disk (SWARM_FLEET_DISK_GB): must be more than 0 GB") }
        let gpus =
            flags.gpus.isEmpty ? (env["SWARM_FLEET_GPU"] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } : flags.gpus
        let filter = OfferFilter(gpuNames: gpus, diskGB: diskGB, maxDPH: try env.value(flags.maxDPH, "--max-dph", "SWARM_FLEET_MAX_DPH"))

        let source: CreateInstanceRequest.Source
        // A flag outranks both variables; of the variables, the template wins (.env.example).
        switch (flags.image, flags.template, env["SWARM_FLEET_TEMPLATE"], env["SWARM_FLEET_IMAGE"]) {
        case (.some, .some, _, _): throw ServeError("--image and --template: give one, not both")
        case (let image?, nil, _, _): source = .image(image)
        case (nil, let template?, _, _), (nil, nil, let template?, _): source = .template(hashID: template)
        case (nil, nil, nil, let image?): source = .image(image)
        case (nil, nil, nil, nil):
            throw ServeError(
                "VAST_API_KEY is set, so the fleet is on: give the worker's --image (or SWARM_FLEET_IMAGE) or a --template hash (or SWARM_FLEET_TEMPLATE)"
            )
        }
        let fleetLabel = try SharedSettings.fleetLabel(flag: flags.fleetLabel, environment: env.variables)
        guard let publicURL = flags.publicURL ?? env["SWARM_PUBLIC_URL"], let url = URL(string: publicURL),
            url.scheme == "http" || url.scheme == "https", url.host != nil
        else {
            throw ServeError(
                "VAST_API_KEY is set, so the fleet is on: give --public-url (or SWARM_PUBLIC_URL), the http(s) URL instances reach this server at"
            )
        }
        var base = publicURL
        while base.hasSuffix("/") { base.removeLast() }
        let budgetPerDay = try env.value(flags.budgetPerDay, "--budget-per-day", "SWARM_BUDGET_PER_DAY")
        if let budgetPerDay, budgetPerDay <= 0 { throw ServeError("--budget-per-day (SWARM_BUDGET_PER_DAY): must be more than 0 dollars") }
        let policy = FleetPolicy(
            desiredSize: size,
            labelPrefix: fleetLabel,
            heartbeatTimeout: .seconds(try env.value(flags.heartbeatTimeout, "--heartbeat-timeout", "SWARM_HEARTBEAT_TIMEOUT") ?? 300),
            startWarning: .seconds(flags.startWarn * 60),
            startReplaceAfter: flags.startReplace.map { .seconds($0 * 60) },
            rebootGrace: .seconds(flags.rebootGrace),
            budgetPerDay: budgetPerDay
        )
        let scaler = try Self.scaler(flags.scaler, env, fleetSize: size, sizeGiven: flags.fleetSize != nil || env["SWARM_FLEET_SIZE"] != nil)
        var secrets: [String: Secret] = [:]
        for name in FleetSettings.modelTokenVariables { if let value = env[name] { secrets[name] = Secret(value) } }
        for name in flags.instanceEnv {
            guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }), !name.first!.isNumber else {
                throw ServeError("--instance-env: '\(name)' is not an environment variable name")
            }
            guard !["SWARM_WORKER_KEY", "SWARM_WORKER_ID", "SWARM_QUEUE_URL"].contains(name) else {
                throw ServeError("--instance-env: \(name) is set by the fleet itself for each instance")
            }
            guard let value = env[name] else { throw ServeError("--instance-env \(name): serve's environment has no \(name) to pass on") }
            secrets[name] = Secret(value)
        }
        return FleetSettings(
            vast: vast,
            policy: policy,
            filter: filter,
            source: source,
            diskGB: diskGB,
            queueURL: base + "/v2/swarmui",
            download: DownloadEstimate(totalGB: flags.downloadGB),
            roundInterval: .seconds(flags.fleetInterval),
            instanceSecrets: secrets,
            scaler: scaler
        )
    }

    /// The scaler flags (or their variables) over the defaults. Without them the fleet keeps `--fleet-size`
    /// instances, as before the scaler (min = max = size); `--fleet-size` with `--workers-min|--workers-max` is refused
    /// as ambiguous.
    static func scaler(_ flags: ScalerFlags, _ env: ServeEnvironment, fleetSize: Int, sizeGiven: Bool) throws(ServeError) -> ScalerSettings {
        var given = ScalerOverride(
            workersMin: try env.value(flags.workersMin, "--workers-min", "SWARM_WORKERS_MIN"),
            workersMax: try env.value(flags.workersMax, "--workers-max", "SWARM_WORKERS_MAX"),
            idleTimeout: try env.value(flags.idleTimeout, "--idle-timeout", "SWARM_IDLE_TIMEOUT"),
            scalerValue: try env.value(flags.scalerValue, "--scaler-value", "SWARM_SCALER_VALUE"),
            keepWarm: try env.value(flags.keepWarm, "--keep-warm", "SWARM_KEEP_WARM")
        )
        given.scaler = flags.scaler
        if given.scaler == nil, let text = env["SWARM_SCALER_TYPE"] {
            // RunPod spells the types QUEUE_DELAY and REQUEST_COUNT.
            guard let type = ScalerType(rawValue: text.lowercased().replacingOccurrences(of: "_", with: "-")) else {
                throw ServeError("SWARM_SCALER_TYPE: '\(text)' is not queue-delay or request-count (RunPod's QUEUE_DELAY, REQUEST_COUNT) (--scaler)")
            }
            given.scaler = type
        }
        if sizeGiven, given.workersMin != nil || given.workersMax != nil {
            throw ServeError(
                "--fleet-size (SWARM_FLEET_SIZE) and --workers-min/--workers-max (SWARM_WORKERS_MIN/SWARM_WORKERS_MAX): give one; --fleet-size N means --workers-min N --workers-max N"
            )
        }
        // `--fleet-size 0` keeps no instance at all, as before the scaler.
        var base = ScalerSettings(workersMin: fleetSize, workersMax: fleetSize)
        // A lone --workers-max N scales between 0 and N, RunPod's default minimum; a lone --workers-min raises the max.
        if given.workersMax != nil, given.workersMin == nil { base.workersMin = 0 }
        if let min = given.workersMin, given.workersMax == nil { base.workersMax = max(min, base.workersMax) }
        let settings = given.applied(to: base)
        if let problem = settings.problem {
            // The problem names flags; the value may have come from the variable.
            let variables = Self.scalerVariables.filter { problem.contains($0.flag) }.map(\.variable)
            throw ServeError(problem + (variables.isEmpty ? "" : " (the flag, or \(variables.joined(separator: ", ")))"))
        }
        return settings
    }

    /// The scaler flags and their variables (RunPod's workersMin, workersMax, idleTimeout, scalerType, scalerValue).
    static let scalerVariables: [(flag: String, variable: String)] = [
        ("--workers-min", "SWARM_WORKERS_MIN"), ("--workers-max", "SWARM_WORKERS_MAX"), ("--idle-timeout", "SWARM_IDLE_TIMEOUT"),
        ("--scaler-value", "SWARM_SCALER_VALUE"), ("--keep-warm", "SWARM_KEEP_WARM"),
    ]
}

/// `serve`'s environment as the reader sees it: an empty variable counts as unset.
/// What the other `swarmctl` commands (`keys`, `costs`, `instance`) share with `serve`, read the same way, so that they
/// open the database and find the instances `serve` made from the same flags or variables.
public enum SharedSettings {
    /// `--database`, else `SWARM_DATABASE_URL`, else the SQLite file in `dataDirectory`.
    public static func database(dataDirectory: String, flag: String?, environment: [String: String]) throws(ServeError) -> DatabaseLocation {
        try DatabaseLocation(dataDirectory: dataDirectory, databaseURL: flag ?? ServeEnvironment(variables: environment)["SWARM_DATABASE_URL"])
    }

    /// `--fleet-label`, else `SWARM_FLEET_LABEL`, else "swarm": the prefix of the fleet's instance labels.
    public static func fleetLabel(flag: String?, environment: [String: String]) throws(ServeError) -> String {
        let label = flag ?? ServeEnvironment(variables: environment)["SWARM_FLEET_LABEL"] ?? "swarm"
        guard !label.isEmpty, label.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            throw ServeError("--fleet-label (SWARM_FLEET_LABEL): '\(label)' must be letters, digits, '-' or '_'")
        }
        return label
    }
}

struct ServeEnvironment {
    let variables: [String: String]

    subscript(_ name: String) -> String? { variables[name].flatMap { $0.isEmpty ? nil : $0 } }

    /// The flag's value when given, else the variable's; a variable that does not parse is an error naming both.
    func value<T: LosslessStringConvertible>(_ flagValue: T?, _ flag: String, _ variable: String) throws(ServeError) -> T? {
        if let flagValue { return flagValue }
        guard let text = self[variable] else { return nil }
        guard let parsed = T(text) else { throw ServeError("\(variable): '\(text)' is not a number (\(flag))") }
        return parsed
    }

    /// Comma-separated keys.
    func keys(_ name: String) -> [Secret] {
        (variables[name] ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map(Secret.init)
    }
}
