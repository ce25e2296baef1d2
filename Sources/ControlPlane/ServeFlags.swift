import Fleet
import ArgumentParser
import VastAI

/// `swarmctl serve`'s flags, as parsed. Only `ServeConfiguration.init(flags:environment:)` reads them: unset ones fall
/// back to the environment variable named in each help text, then to the default.
public struct ServeFlags: ParsableArguments {
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0 picks a free one).") var port = 8288
    @Option(help: "Directory for the SQLite database.") var dataDir = "./.swarm"
    @Option(help: "Database URL: postgres://user:pass@host/db[?sslmode=disable&schema=NAME], or a SQLite file (or SWARM_DATABASE_URL).") var database:
        String?
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

    public init() {}
}

/// `serve`'s fleet flags; unset ones fall back to the environment named in each help text.
public struct FleetFlags: ParsableArguments {
    @Option(help: "vast.ai instances to keep (env SWARM_FLEET_SIZE, default 1); 'swarmctl instance up N|down' overrides it until 'instance up'.")
    var fleetSize: Int?
    @Option(name: .customLong("gpu"), help: "A GPU model to rent, e.g. 'RTX 5090' (repeatable; env SWARM_FLEET_GPU, comma-separated; default any).")
    var gpus: [String] = []
    @Option(help: "Highest price per instance, $/h including disk (env SWARM_FLEET_MAX_DPH).") var maxDPH: Double?
    @Option(help: "The worker's docker image, repo/name:tag (env SWARM_FLEET_IMAGE).") var image: String?
    @Option(
        help: "A vast.ai template hash to start instances from, instead of --image (env SWARM_FLEET_TEMPLATE, which wins over SWARM_FLEET_IMAGE)."
    )
    var template: String?
    @Option(help: "Disk per instance, GB (env SWARM_FLEET_DISK_GB, default 100).") var disk: Double?
    @Option(help: "Label prefix of the fleet's instances; others with it are destroyed as orphans (default swarm).") var fleetLabel: String?
    @Option(help: "Dollars per UTC day the fleet may spend; no new instance past it (env SWARM_BUDGET_PER_DAY).") var budgetPerDay: Double?
    @Option(help: "Seconds without a worker ping after which an instance counts as dead (env SWARM_HEARTBEAT_TIMEOUT, default 300).")
    var heartbeatTimeout: Int?
    @Option(help: "Minutes after which a start that is not READY gets a warning.") var startWarn = 20
    @Option(help: "Minutes after which a start that is not READY is replaced (default: never).") var startReplace: Int?
    @Option(help: "This server's URL as instances reach it, e.g. https://queue.example.com (env SWARM_PUBLIC_URL).") var publicURL: String?
    @Option(help: "GB a new instance downloads (image and models), for ranking offers.") var downloadGB: Double = 48
    @Option(help: ArgumentHelp("Seconds between fleet rounds.", visibility: .hidden)) var fleetInterval: Double = 15
    @Option(help: ArgumentHelp("Seconds a rebooted instance gets to come back.", visibility: .hidden)) var rebootGrace: Double = 300
    @Option(
        help:
            "An environment variable of serve's to pass to every instance as a secret (repeatable); CIVITAI_API_TOKEN and HUGGINGFACE_API_TOKEN are passed whenever set."
    )
    var instanceEnv: [String] = []
    @OptionGroup(title: "Scaler (RunPod's; 'swarmctl instance scale' overrides it)") var scaler: ScalerFlags

    public init() {}
}

extension ScalerType: ExpressibleByArgument {}

/// RunPod's scaler settings as flags, shared by `serve` (where unset ones fall back to the environment) and
/// `instance scale`; unset ones are nil.
public struct ScalerFlags: ParsableArguments {
    @Option(help: "Workers kept even without jobs (serve: env SWARM_WORKERS_MIN; default: --fleet-size; 0 lets the fleet scale to zero).")
    var workersMin: Int?
    @Option(help: "Most workers at once (serve: env SWARM_WORKERS_MAX; default: --fleet-size).") var workersMax: Int?
    @Option(help: "Seconds a ready worker may sit without a job before it is scaled down (serve: env SWARM_IDLE_TIMEOUT; default 300).")
    var idleTimeout: Double?
    @Option(
        help:
            "queue-delay: add a worker when a job waited more than --scaler-value seconds; request-count: ceil(jobs / --scaler-value) workers (serve: env SWARM_SCALER_TYPE; default queue-delay)."
    )
    var scaler: ScalerType?
    @Option(help: "Seconds (queue-delay) or jobs per worker (request-count), at least 1 (serve: env SWARM_SCALER_VALUE; default 4).")
    var scalerValue: Double?
    @Option(
        help:
            "Most stopped instances kept (disk and models kept, storage billed) for a resume in seconds; 0: scale-down destroys (serve: env SWARM_KEEP_WARM; default 1)."
    )
    var keepWarm: Int?

    public init() {}

    /// The flags given, as `instance scale` stores them.
    public var override: ScalerOverride {
        ScalerOverride(
            workersMin: workersMin,
            workersMax: workersMax,
            idleTimeout: idleTimeout,
            scaler: scaler,
            scalerValue: scalerValue,
            keepWarm: keepWarm
        )
    }
}
