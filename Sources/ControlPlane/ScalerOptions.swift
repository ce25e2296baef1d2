import Fleet
import Foundation
import Logging
import VastAI

extension FleetSettings {
    /// `serve`'s scaler flags over the defaults. Without them the fleet keeps `--fleet-size` instances, as before
    /// the scaler (min = max = size); `--fleet-size` with `--workers-min|--workers-max` is refused as ambiguous.
    static func scalerSettings(_ flags: ScalerOverride, fleetSize: Int, sizeGiven: Bool) throws(ServeError) -> ScalerSettings {
        if sizeGiven, flags.workersMin != nil || flags.workersMax != nil {
            throw ServeError(
                "--fleet-size (SWARM_FLEET_SIZE) and --workers-min/--workers-max: give one; --fleet-size N means --workers-min N --workers-max N"
            )
        }
        // `--fleet-size 0` keeps no instance at all, as before the scaler.
        var base = ScalerSettings(workersMin: fleetSize, workersMax: fleetSize)
        // A lone --workers-max N scales between 0 and N, RunPod's default minimum; a lone --workers-min raises the max.
        if flags.workersMax != nil, flags.workersMin == nil { base.workersMin = 0 }
        if let min = flags.workersMin, flags.workersMax == nil { base.workersMax = max(min, base.workersMax) }
        let settings = flags.applied(to: base)
        if let problem = settings.problem { throw ServeError(problem) }
        return settings
    }

    /// The settings in force: serve's, with what `swarmctl instance scale` stored on top. A stored combination that
    /// does not hold with serve's flags (a stored --workers-min above serve's --workers-max) falls back to serve's,
    /// with the reason.
    public func effectiveScaler(stored: ScalerOverride?) -> (settings: ScalerSettings, problem: String?) {
        guard let stored, !stored.isEmpty else { return (scaler, nil) }
        let merged = stored.applied(to: scaler)
        if let problem = merged.problem {
            return (
                scaler, "the settings stored with 'swarmctl instance scale' (\(stored.flags)) do not hold with serve's: \(problem); serve's apply"
            )
        }
        return (merged, nil)
    }
}

extension FleetSettings {
    /// The scaler's inputs from the database: serve's settings under what `instance scale` stored, and the queue.
    public func scaling(store: DatabaseFleetStore, logger: Logger) -> FleetScaling {
        let settings = self
        let lastProblem = LastProblem()
        return FleetScaling(
            settings: {
                let (effective, problem) = settings.effectiveScaler(stored: try await store.scalerOverride())
                if let problem, await lastProblem.changed(to: problem) { logger.error("\(problem)") }
                return effective
            },
            load: { try await store.fleetLoad() },
            coldStart: settings.coldStart,
            diskGB: settings.diskGB
        )
    }
}

/// A problem logged once per change, not every round.
private actor LastProblem {
    private var last: String?
    func changed(to problem: String) -> Bool {
        defer { last = problem }
        return problem != last
    }
}
