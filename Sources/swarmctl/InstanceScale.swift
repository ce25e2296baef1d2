import ArgumentParser
import ControlPlane
import Fleet
import Foundation
import VastAI

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
