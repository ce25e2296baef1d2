import Foundation
import Logging
import VastAI

extension FleetSettings {
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
    func scaling(store: DatabaseFleetStore, logger: Logger) -> FleetScaling {
        let settings = self
        let lastProblem = LastProblem()
        return FleetScaling(
            settings: {
                let (effective, problem) = settings.effectiveScaler(stored: try await store.scalerOverride())
                if let problem, await lastProblem.changed(to: problem) { logger.error("\(problem)") }
                return effective
            },
            load: { try await store.fleetLoad() },
            // The download at 500 Mb/s, a typical host (48 GB: about 13 minutes, the "about 15").
            coldStart: ColdStart(downloadSeconds: Double(settings.download.totalBytes) * 8 / 500e6, bootSeconds: 90),
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
