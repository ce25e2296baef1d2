import Foundation
import JobProtocol
import SwarmCore

/// Migration 9 in both databases (issue 23): each warm stop of an instance, so that its stopped time is billed at
/// the storage price and its running time at `$/h`; the storage price itself, kept at rental; and the queue's
/// creation order per endpoint, for the oldest queued jobs.
let fleetStopHistoryStatements = [
    "ALTER TABLE fleet_instances ADD COLUMN storage_dph DOUBLE PRECISION",
    "CREATE TABLE fleet_stops (instance_id BIGINT NOT NULL, stopped_at BIGINT NOT NULL, resumed_at BIGINT, PRIMARY KEY (instance_id, stopped_at))",
    "CREATE INDEX jobs_queued_order ON jobs (endpoint, created_at, seq) WHERE status = '\(JobStatus.inQueue.rawValue)'",
]

extension FleetTables {
    public func recordFleetStop(id: Int, at time: Date) async throws(JobStoreError) {
        try await fleetExecute(
            "record the stop of fleet instance \(id)",
            "INSERT INTO fleet_stops (instance_id, stopped_at) VALUES ($1, $2) ON CONFLICT (instance_id, stopped_at) DO NOTHING",
            [FleetValue(id), FleetValue(time)]
        )
    }

    public func recordFleetResume(id: Int, at time: Date) async throws(JobStoreError) {
        try await fleetExecute(
            "record the resume of fleet instance \(id)",
            "UPDATE fleet_stops SET resumed_at = $1 WHERE instance_id = $2 AND resumed_at IS NULL",
            [FleetValue(time), FleetValue(id)]
        )
    }

    public func fleetStops(overlapping start: Date, _ end: Date) async throws(JobStoreError) -> [Int: [InstanceBilling.Stop]] {
        let rows = try await fleetQuery(
            "list fleet stops",
            "SELECT instance_id, stopped_at, resumed_at FROM fleet_stops WHERE stopped_at < $1 AND (resumed_at IS NULL OR resumed_at > $2) "
                + "ORDER BY instance_id, stopped_at",
            [FleetValue(end), FleetValue(start)],
            columns: [.integer, .integer, .integer]
        )
        var stops: [Int: [InstanceBilling.Stop]] = [:]
        for row in rows {
            guard let id = row[0].int, let stopped = row[1].date else { continue }
            stops[id, default: []].append(InstanceBilling.Stop(stoppedAt: stopped, resumedAt: row[2].date))
        }
        return stops
    }
}
