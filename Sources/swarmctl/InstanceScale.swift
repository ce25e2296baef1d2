import ArgumentParser
import ControlPlane
import Fleet
import Foundation
import VastAI

extension ScalerType: ExpressibleByArgument {}

/// RunPod's scaler settings as flags, shared by `serve` and `instance scale`; unset ones are nil.
struct ScalerFlags: ParsableArguments {
    @Option(help: "Workers kept even without jobs (default: --fleet-size; 0 lets the fleet scale to zero).") var workersMin: Int?
    @Option(help: "Most workers at once (default: --fleet-size).") var workersMax: Int?
    @Option(help: "Seconds a ready worker may sit without a job before it is scaled down (default 300).") var idleTimeout: Double?
    @Option(
        help:
            "queue-delay: add a worker when a job waited more than --scaler-value seconds; request-count: ceil(jobs / --scaler-value) workers (default queue-delay)."
    )
    var scaler: ScalerType?
    @Option(help: "Seconds (queue-delay) or jobs per worker (request-count), at least 1 (default 4).") var scalerValue: Double?
    @Option(help: "Most stopped instances kept (disk and models kept, storage billed) for a resume in seconds; 0: scale-down destroys (default 1).")
    var keepWarm: Int?

    var override: ScalerOverride {
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

extension InstanceCommand {
    struct Scale: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change the fleet's scaler (workers min/max, idle timeout, scaler type and value, keep-warm) without restarting serve.",
            discussion: """
                The flags given are stored in the database and outrank serve's own until '--reset'; a running serve \
                follows them within one round. Without flags, prints what is stored.
                """
        )
        @OptionGroup var context: Context
        @OptionGroup var flags: ScalerFlags
        @Flag(help: "Forget what 'instance scale' stored: serve's flags apply again.") var reset = false

        func run() async throws {
            let given = flags.override
            if reset, !given.isEmpty { throw ValidationError("--reset: give it alone") }
            // Checked against the defaults here (serve checks the result against its own flags too).
            if let problem = given.applied(
                to: ScalerSettings(workersMin: given.workersMin ?? 0, workersMax: max(1, given.workersMax ?? given.workersMin ?? 1))
            ).problem {
                throw ValidationError(problem)
            }
            let reset = reset
            let stored = try await context.withFleet { fleet in
                if reset {
                    try await fleet.setScalerOverride(nil)
                    return ScalerOverride()
                }
                let merged = (try await fleet.scalerOverride() ?? ScalerOverride()).merging(given)
                if !given.isEmpty { try await fleet.setScalerOverride(merged) }
                return merged
            }
            if stored.isEmpty {
                print("scaler: serve's flags apply (nothing stored)")
            } else {
                print("scaler: \(stored.flags) over serve's flags; a running serve follows within one round")
            }
        }
    }
}
