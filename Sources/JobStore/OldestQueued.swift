import Foundation
import GRDB
import JobProtocol
import PostgresNIO

/// The oldest queued jobs (the scaler's queue delay, the spill-over's candidates), read in creation order from the
/// partial index `jobs_queued_order` (migration 9), however long the queue. The status is a literal so that both
/// planners can match the index's condition.
let oldestQueuedSQL =
    "SELECT \(JobRow.columns) FROM jobs WHERE endpoint = $1 AND status = '\(JobStatus.inQueue.rawValue)' ORDER BY created_at, seq LIMIT $2"

extension SQLiteJobStore {
    public func oldestQueuedJobs(endpoint: String, limit: Int) async throws(JobStoreError) -> [JobRecord] {
        try JobCursor.checkLimit(limit)
        let rows = try await read("list the oldest queued jobs") { db in
            try db.cachedStatement(sql: oldestQueuedSQL.replacingOccurrences(of: "$", with: "?")).rows([.text(endpoint), .integer(Int64(limit))]) {
                columns in (row: try JobRow(columns), position: Int64(0))
            }
        }
        return try JobCursor.page(rows, limit: limit).jobs
    }
}

extension PostgresJobStore {
    public func oldestQueuedJobs(endpoint: String, limit: Int) async throws(JobStoreError) -> [JobRecord] {
        try JobCursor.checkLimit(limit)
        let rows = try await timed("list the oldest queued jobs") {
            var binds = PostgresBindings()
            binds.append(endpoint)
            binds.append(Int64(limit))
            var rows: [(row: JobRow, position: Int64)] = []
            for try await row in try await self.client.query(PostgresQuery(unsafeSQL: oldestQueuedSQL, binds: binds), logger: self.logger) {
                rows.append((row: try JobRow(postgres: row), position: 0))
            }
            return rows
        }
        return try JobCursor.page(rows, limit: limit).jobs
    }
}
