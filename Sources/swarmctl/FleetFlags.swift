import ArgumentParser
import ControlPlane

/// `serve`'s fleet flags; unset ones fall back to the environment named in each help text.
struct FleetFlags: ParsableArguments {
    @Option(help: "vast.ai instances to keep (env SWARM_FLEET_SIZE, default 1); 'swarmctl instance up N|down' overrides it until 'instance up'.")
    var fleetSize: Int?
    @Option(name: .customLong("gpu"), help: "A GPU model to rent, e.g. 'RTX 5090' (repeatable; env SWARM_FLEET_GPU, comma-separated; default any).")
    var gpus: [String] = []
    @Option(help: "Highest price per instance, $/h including disk (env SWARM_FLEET_MAX_DPH).") var maxDPH: Double?
    @Option(help: "The worker's docker image, repo/name:tag.") var image: String?
    @Option(help: "A vast.ai template hash to start instances from, instead of --image.") var template: String?
    @Option(help: "Disk per instance, GB (env SWARM_FLEET_DISK_GB, default 100).") var disk: Double?
    @Option(help: "Label prefix of the fleet's instances; others with it are destroyed as orphans.") var fleetLabel = "swarm"
    @Option(help: "Dollars per UTC day the fleet may spend; no new instance past it.") var budgetPerDay: Double?
    @Option(help: "Seconds without a worker ping after which an instance counts as dead.") var heartbeatTimeout = 300
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

    var options: FleetOptions {
        var options = FleetOptions()
        options.size = fleetSize
        options.gpus = gpus
        options.maxDPH = maxDPH
        options.image = image
        options.template = template
        options.diskGB = disk
        options.labelPrefix = fleetLabel
        options.budgetPerDay = budgetPerDay
        options.heartbeatTimeout = .seconds(heartbeatTimeout)
        options.startWarning = .seconds(startWarn * 60)
        options.startReplaceAfter = startReplace.map { .seconds($0 * 60) }
        options.publicURL = publicURL
        options.downloadGB = downloadGB
        options.roundInterval = .seconds(fleetInterval)
        options.rebootGrace = .seconds(rebootGrace)
        options.instanceEnv = instanceEnv
        options.scaler = scaler.override
        return options
    }
}
