import Fleet
import Foundation
import JobProtocol
import JobStore
import SwarmCore
import VastAI

/// The endpoint's workers in RunPod's `/health` states, plus `stopped` (fleet instances stopped by the scaler, disk
/// kept), and what a queued job is waiting for when no worker is ready.
struct WorkerAvailability: Sendable, Hashable {
    var idle = 0
    var running = 0
    /// Workers pinging but not READY yet, and fleet instances whose worker has not pinged yet.
    var initializing = 0
    /// RunPod counts workers held back by its capacity; the fleet has none (vast.ai capacity shows as a missing offer).
    var throttled = 0
    var unhealthy = 0
    var stopped = 0
    /// Seconds until the soonest starting worker should be READY; nil: none is starting.
    var estimatedStart: Double?
    /// Whether a vast.ai fleet is recorded (so a worker will be started for queued jobs).
    var fleetKnown = false

    /// Seconds for a resumed instance to boot, when nothing else is starting.
    var resumeSeconds = ColdStart().bootSeconds

    /// - Parameter coldStart: serve's fleet's download and boot (`FleetSettings.coldStart`); nil: `ColdStart`'s defaults.
    static func read(
        store: any ControlPlaneStore,
        endpoint: String,
        leaseTimeout: Duration,
        now: Date,
        coldStart: ColdStart? = nil
    ) async throws -> WorkerAvailability {
        var result = WorkerAvailability()
        // A worker that has not pinged within a lease is gone; the store keeps it only for the record.
        let horizon = now.addingTimeInterval(-leaseTimeout.seconds)
        let workers = try await store.workers(endpoint: endpoint).filter { $0.lastSeen >= horizon }
        for worker in workers {
            switch worker.report?.stage?.name {
            case .error?: result.unhealthy += 1
            case nil, .ready?: if worker.jobIDs.isEmpty { result.idle += 1 } else { result.running += 1 }
            default: result.initializing += 1
            }
        }
        let records = try await store.fleetInstances().filter { $0.state == .active }
        result.fleetKnown = !records.isEmpty
        let live = Set(workers.map(\.id))
        var estimate = StartEstimate(coldStart: coldStart ?? ColdStart())
        result.resumeSeconds = estimate.resumeSeconds
        if records.contains(where: { $0.stoppedAt == nil && $0.resumedAt == nil && !live.contains($0.label) }) {
            estimate.measuredRental = StartEstimate.measured(try await store.instanceCosts(overlapping: now.addingTimeInterval(-7 * 86_400), now))
        }
        for record in records {
            if record.stoppedAt != nil {
                result.stopped += 1
                continue
            }
            let resumed = record.resumedAt.map { resumed in (record.lastPing ?? .distantPast) <= resumed } ?? false
            guard !live.contains(record.label) || resumed else { continue }
            if !live.contains(record.label) { result.initializing += 1 }
            let left =
                resumed
                ? estimate.resumeSeconds - now.timeIntervalSince(record.resumedAt ?? now)
                : estimate.rentalSeconds - now.timeIntervalSince(record.createdAt)
            result.estimatedStart = min(result.estimatedStart ?? .infinity, max(0, left))
        }
        return result
    }

    var healthJSON: JSONValue {
        [
            "idle": .int(idle), "running": .int(running), "initializing": .int(initializing), "throttled": .int(throttled),
            "unhealthy": .int(unhealthy), "stopped": .int(stopped),
        ]
    }

    /// Added to a queued job's status when no worker is ready and the fleet will start one: `workerStatus` and
    /// `estimatedStartSeconds` (fields RunPod does not have; its own stay as they are).
    func annotate(_ status: JSONValue, job: JobRecord) -> JSONValue {
        guard job.status == .inQueue, idle + running == 0, case .object(var fields) = status else { return status }
        if let estimatedStart {
            fields["workerStatus"] = "starting"
            fields["estimatedStartSeconds"] = .int(Int(estimatedStart.rounded(.up)))
        } else if stopped > 0 {
            fields["workerStatus"] = "starting"
            fields["estimatedStartSeconds"] = .int(Int(resumeSeconds))
        } else if fleetKnown || initializing > 0 {
            fields["workerStatus"] = "starting"
        } else {
            // No fleet: RunPod's shape alone, as before the scaler.
            return status
        }
        return .object(fields)
    }
}
