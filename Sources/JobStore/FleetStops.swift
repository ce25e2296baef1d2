import Foundation
import JobProtocol
import SwarmCore

/// Migration 9 in both databases (issue 23): each warm stop of an instance, so that its stopped time is billed at
/// the storage price and its running time at `$/h`; the storage price itself, kept at rental; the queue's creation
/// order per endpoint, for the oldest queued jobs; and each worker's attempts by end, for its idle time.
let fleetStopHistoryStatements = [
    "ALTER TABLE fleet_instances ADD COLUMN storage_dph DOUBLE PRECISION",
    "CREATE TABLE fleet_stops (instance_id BIGINT NOT NULL, stopped_at BIGINT NOT NULL, resumed_at BIGINT, PRIMARY KEY (instance_id, stopped_at))",
    "CREATE INDEX jobs_queued_order ON jobs (endpoint, created_at, seq) WHERE status = '\(JobStatus.inQueue.rawValue)'",
    "CREATE INDEX job_attempts_worker ON job_attempts (worker_id, ended_at)",
]

extension FleetTables {
    public func recordFleetStop(id: Int, at time: Date) async throws(JobStoreError) {
        try await fleetExecute(
            "record the stop of fleet instance \(id)",
            "INSERT INTO fleet_stops (instance_id, stopped_at) VALUES ($1, $2) ON CONFLICT (instance_id, stopped_at) DO NOTHING",
            [ColumnValue(id), ColumnValue(time)]
        )
    }

    public func recordFleetResume(id: Int, at time: Date) async throws(JobStoreError) {
        try await fleetExecute(
            "record the resume of fleet instance \(id)",
            "UPDATE fleet_stops SET resumed_at = $1 WHERE instance_id = $2 AND resumed_at IS NULL",
            [ColumnValue(time), ColumnValue(id)]
        )
    }

    public func fleetWorkersIdleSince() async throws(JobStoreError) -> [String: Date] {
        let rows = try await fleetQuery(
            "read fleet workers' last activity",
            "SELECT f.label, (SELECT MAX(a.ended_at) FROM job_attempts a WHERE a.worker_id = f.label), r.ready_at "
                + "FROM fleet_instances f LEFT JOIN fleet_worker_ready r ON r.label = f.label WHERE f.removed_at IS NULL",
            [],
            columns: [.text, .integer, .integer]
        )
        var since: [String: Date] = [:]
        for row in rows {
            guard let label = row[0].string, let latest = [row[1].date, row[2].date].compactMap({ $0 }).max() else { continue }
            since[label] = latest
        }
        return since
    }

    public func fleetStops(overlapping start: Date, _ end: Date) async throws(JobStoreError) -> [Int: [InstanceBilling.Stop]] {
        // A stop still open when its instance was destroyed stays open: the instance's removal ends it.
        let rows = try await fleetQuery(
            "list fleet stops",
            "SELECT s.instance_id, s.stopped_at, s.resumed_at FROM fleet_stops s JOIN fleet_instances f ON f.id = s.instance_id "
                + "WHERE s.stopped_at < $1 AND (s.resumed_at IS NULL OR s.resumed_at > $2) AND (f.removed_at IS NULL OR f.removed_at > $2) "
                + "ORDER BY s.instance_id, s.stopped_at",
            [ColumnValue(end), ColumnValue(start)],
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
