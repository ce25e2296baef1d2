import GRDB
import JobProtocol
import SwarmCore

import Foundation

/// The job store in one SQLite file (GRDB, WAL mode): for a single `serve` process. Writes go through GRDB's one
/// writer connection, so a read-then-write inside `write` is never interleaved with another and needs no row locks.
public final class SQLiteJobStore: JobStore, RuleBackedJobStore {
    private let writer: any DatabaseWriter
    /// Names the database in errors: the file path, or "memory".
    private let location: String
    private let work = WorkSignal()
    private let groupCommit: GroupCommit

    /// Opens (creating if needed) the database file at `path`. Call `migrate()` before use.
    public convenience init(path: String) throws(JobStoreError) {
        var configuration = Configuration()
        // Another process (a `swarmctl` command) may hold the write lock for a moment.
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in
            // SQLite checkpoints inside the commit that crosses this many log pages, on the one writer, and its two
            // fsyncs stall every queued write. A longer log than the default 1,000 pages is checkpointed less often
            // and copies back little more each time, because most of its pages are the same hot index pages written
            // again (see `checkpointPages`).
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(Self.checkpointPages)")
        }
        do {
            self.init(writer: try DatabasePool(path: path, configuration: configuration), location: path)
        } catch {
            throw JobStoreError(.unavailable, operation: "open", detail: "cannot open SQLite database \(path): \(Self.describe(error))")
        }
    }

    /// Log pages (4 KiB each) between checkpoints: the -wal file stays under about 64 MiB. Each checkpoint stalls
    /// the writer for two fsyncs; at 4,000 pages a 16,000-job benchmark run made 87 fdatasync calls, at 16,000 pages 27.
    static let checkpointPages = 16_000

    /// A private database in memory, gone with the store: for tests and throwaway runs. Call `migrate()` before use.
    public static func inMemory() throws(JobStoreError) -> SQLiteJobStore {
        do {
            return SQLiteJobStore(writer: try DatabaseQueue(), location: "memory")
        } catch {
            throw JobStoreError(.unavailable, operation: "open", detail: "cannot create an in-memory SQLite database: \(describe(error))")
        }
    }

    private init(writer: any DatabaseWriter, location: String) {
        self.writer = writer
        self.location = location
        self.groupCommit = GroupCommit(writer: writer)
    }

    deinit { work.finishAll() }

    public func migrate() async throws(JobStoreError) {
        do {
            try Self.migrator().migrate(writer)
        } catch {
            throw failure("migrate", error)
        }
    }

    /// Versioned migrations, recorded by GRDB in `grdb_migrations`; each is applied once, in order. Never edit one
    /// that shipped: add the next.
    private static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("1 jobs, stream, stops, workers, keys") { db in
            // `seq` is the queue position (FIFO and listing order); it is set right after insert, see `moveToBack`.
            try db.execute(
                sql: """
                    CREATE TABLE jobs (
                        id TEXT PRIMARY KEY NOT NULL,
                        seq INTEGER UNIQUE,
                        endpoint TEXT NOT NULL,
                        status TEXT NOT NULL,
                        input TEXT NOT NULL,
                        webhook TEXT,
                        execution_timeout_ms INTEGER NOT NULL,
                        ttl_ms INTEGER NOT NULL,
                        low_priority INTEGER NOT NULL,
                        s3_config TEXT,
                        output TEXT,
                        error TEXT,
                        worker_id TEXT,
                        attempts INTEGER NOT NULL,
                        created_at INTEGER NOT NULL,
                        started_at INTEGER,
                        finished_at INTEGER,
                        lease_expires_at INTEGER,
                        webhook_attempts TEXT NOT NULL,
                        webhook_delivered INTEGER NOT NULL,
                        webhook_gave_up INTEGER NOT NULL DEFAULT 0
                    );
                    CREATE INDEX jobs_queue ON jobs (endpoint, status, low_priority, seq);
                    CREATE INDEX jobs_listing ON jobs (endpoint, seq);
                    CREATE INDEX jobs_status_lease ON jobs (status, lease_expires_at);
                    CREATE INDEX jobs_status_finished ON jobs (status, finished_at);
                    CREATE TABLE job_stream (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                        output TEXT NOT NULL
                    );
                    CREATE INDEX job_stream_job ON job_stream (job_id);
                    CREATE TABLE job_stops (
                        worker_id TEXT NOT NULL,
                        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                        PRIMARY KEY (worker_id, job_id)
                    );
                    CREATE INDEX job_stops_job ON job_stops (job_id);
                    CREATE TABLE workers (
                        id TEXT PRIMARY KEY NOT NULL,
                        endpoint TEXT NOT NULL,
                        last_seen INTEGER NOT NULL,
                        job_ids TEXT NOT NULL,
                        report TEXT
                    );
                    CREATE TABLE api_keys (
                        id TEXT PRIMARY KEY NOT NULL,
                        scope TEXT NOT NULL,
                        hash TEXT NOT NULL UNIQUE,
                        label TEXT,
                        created_at INTEGER NOT NULL,
                        revoked_at INTEGER
                    );
                    """
            )
        }
        migrator.registerMigration("2 expiry and webhook indexes") { db in
            for statement in expiryIndexStatements { try db.execute(sql: statement) }
        }
        migrator.registerMigration("3 fleet instances") { db in
            for statement in fleetTableStatements { try db.execute(sql: statement) }
        }
        migrator.registerMigration("4 partial lease and finish indexes") { db in
            for statement in partialStatusIndexStatements { try db.execute(sql: statement) }
        }
        migrator.registerMigration("5 one index of running jobs") { db in
            for statement in runningIndexStatements { try db.execute(sql: statement) }
        }
        migrator.registerMigration("6 provider and fal.ai request of each job") { db in
            for statement in providerColumnStatements(real: "REAL") { try db.execute(sql: statement) }
        }
        migrator.registerMigration("7 job attempts and instance readiness for costs") { db in
            for statement in costTableStatements { try db.execute(sql: statement) }
        }
        migrator.registerMigration("8 fleet warm stop") { db in
            for statement in fleetStopStatements { try db.execute(sql: statement) }
        }
        migrator.registerMigration("9 fleet stop history, storage price, queued order") { db in
            for statement in fleetStopHistoryStatements { try db.execute(sql: statement) }
        }
        return migrator
    }

    // MARK: Clients

    public func enqueue(_ jobs: [NewJob], now: Date) async throws(JobStoreError) -> [JobRecord] {
        try JobRules.validate(jobs)
        let records = jobs.map { JobRules.queued($0, now: now) }
        // Encoded before the write: the writer's time is the one part of every request that runs one at a time.
        let rows = records.map { JobRow($0).columnValues }
        try await write("enqueue") { db in
            // One writer at a time, so the batch's positions follow the current last one without gaps or races.
            var position = try Self.lastPosition(db)
            let insert = try db.cachedStatement(sql: Self.insertJob)
            for (record, row) in zip(records, rows) {
                position += 1
                // The primary key finds a duplicate id; the transaction then rolls back the rows before it.
                do {
                    try insert.run(row + [.integer(position)])
                } catch {
                    guard (error as? DatabaseError)?.extendedResultCode == .SQLITE_CONSTRAINT_PRIMARYKEY else { throw error }
                    throw JobStoreError(.invalid, operation: "enqueue", detail: "job id \(record.id) already exists; nothing was enqueued")
                }
            }
        }
        work.signal(Set(records.map(\.endpoint)))
        return records
    }

    public func job(id: String) async throws(JobStoreError) -> JobRecord? {
        try await read("read job") { db in try Self.fetchJob(id, db) }?.record()
    }

    public func listJobs(endpoint: String, status: JobStatus?, limit: Int, cursor: String?) async throws(JobStoreError) -> JobPage {
        try JobCursor.checkLimit(limit)
        let before = try JobCursor.position(cursor)
        let rows = try await read("list jobs") { db in
            var sql = "SELECT \(JobRow.columns), seq FROM jobs WHERE endpoint = ?"
            var arguments: [ColumnValue] = [.text(endpoint)]
            if let status {
                sql += " AND status = ?"
                arguments.append(.text(status.rawValue))
            }
            if let before {
                sql += " AND seq < ?"
                arguments.append(.integer(before))
            }
            sql += " ORDER BY seq DESC LIMIT ?"
            arguments.append(.integer(Int64(limit + 1)))
            return try db.makeStatement(sql: sql).rows(arguments) { columns in
                (row: try JobRow(columns), position: try columns.integer(Self.width))
            }
        }
        return try JobCursor.page(rows, limit: limit)
    }

    public func purgeQueue(endpoint: String) async throws(JobStoreError) -> Int {
        try await write("purge queue") { db in
            try db.execute(sql: "DELETE FROM jobs WHERE endpoint = ? AND status = ?", arguments: [endpoint, JobStatus.inQueue.rawValue])
            return db.changesCount
        }
    }

    public func counts(endpoint: String) async throws(JobStoreError) -> [JobStatus: Int] {
        let pairs = try await read("count jobs") { db in
            try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM jobs WHERE endpoint = ? GROUP BY status", arguments: [endpoint])
                .map { ($0["status"] as String, $0["n"] as Int64) }
        }
        return statusCounts(pairs)
    }

    public func takeStreamChunks(id: String) async throws(JobStoreError) -> [JSONValue] {
        let chunks = try await write("take stream chunks") { db in
            try Row.fetchAll(db, sql: "DELETE FROM job_stream WHERE job_id = ? RETURNING seq, output", arguments: [id])
                .map { ($0["seq"] as Int64, $0["output"] as String) }
        }
        // RETURNING gives no order.
        return chunks.sorted { $0.0 < $1.0 }.map { JSONValue.parse(Data($0.1.utf8)) ?? .null }
    }

    // MARK: Workers

    public func workAvailable() async throws(JobStoreError) -> AsyncStream<String> {
        work.subscribe()
    }

    public func appendStreamChunk(id: String, workerID: String, output: JSONValue, now: Date) async throws(JobStoreError) -> Bool {
        try await write("append stream chunk") { db in
            guard let job = try Self.fetchJob(id, db)?.record(), JobRules.acceptsReports(job, from: workerID) else { return false }
            try db.cachedStatement(sql: "INSERT INTO job_stream (job_id, output) VALUES (?, ?)").execute(arguments: [id, output.jsonString()])
            return true
        }
    }

    public func heartbeat(
        workerID: String,
        endpoint: String,
        jobIDs: [String],
        leaseUntil: Date,
        report: WorkerReport?,
        now: Date
    ) async throws(JobStoreError) {
        try await write("heartbeat") { db in
            try db.cachedStatement(
                sql: """
                    INSERT INTO workers (id, endpoint, last_seen, job_ids, report) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET endpoint = excluded.endpoint, last_seen = excluded.last_seen,
                        job_ids = excluded.job_ids, report = COALESCE(excluded.report, workers.report)
                    """
            ).execute(arguments: [workerID, endpoint, now.epochMilliseconds, JobRow.encode(jobIDs), report.map { JobRow.encode($0) }])
            // A lease is only ever extended: a late ping must not shorten one a newer ping set.
            try db.cachedStatement(
                sql: """
                    UPDATE jobs SET lease_expires_at = MAX(COALESCE(lease_expires_at, 0), ?)
                    WHERE worker_id = ? AND status = ? AND id IN (SELECT value FROM json_each(?))
                    """
            ).execute(arguments: [leaseUntil.epochMilliseconds, workerID, JobStatus.inProgress.rawValue, JobRow.encode(jobIDs)])
        }
    }

    public func takeJobsToStop(workerID: String) async throws(JobStoreError) -> [String] {
        try await write("take jobs to stop") { db in
            try String.fetchAll(db.cachedStatement(sql: "DELETE FROM job_stops WHERE worker_id = ? RETURNING job_id"), arguments: [workerID]).sorted()
        }
    }

    public func workers(endpoint: String?) async throws(JobStoreError) -> [WorkerRecord] {
        try await read("list workers") { db in
            let sql = "SELECT \(WorkerRow.columns) FROM workers" + (endpoint == nil ? "" : " WHERE endpoint = ?") + " ORDER BY id"
            return try WorkerRow.fetchAll(db, sql: sql, arguments: StatementArguments(endpoint.map { [$0] } ?? []))
        }.map { $0.record() }
    }

    // MARK: Webhooks

    public func pendingWebhooks(limit: Int) async throws(JobStoreError) -> [JobRecord] {
        try await read("list pending webhooks") { db in
            try db.makeStatement(sql: "SELECT \(JobRow.columns) FROM jobs WHERE \(pendingWebhookCondition) ORDER BY finished_at, seq LIMIT ?")
                .rows([.integer(Int64(limit))], JobRow.init)
        }.map { row throws(JobStoreError) in try row.record() }
    }

    // MARK: fal.ai

    public func falJobs() async throws(JobStoreError) -> [JobRecord] {
        try await read("list fal.ai jobs") { db in
            try db.makeStatement(sql: "SELECT \(JobRow.columns) FROM jobs WHERE status = ? AND provider = ? ORDER BY seq")
                .rows([.text(JobStatus.inProgress.rawValue), .text(JobRules.falProvider)], JobRow.init)
        }.map { row throws(JobStoreError) in try row.record() }
    }

    // MARK: Keys

    public func insertKey(_ key: StoredKey) async throws(JobStoreError) {
        try await write("insert key") { db in
            let taken = try Bool.fetchOne(db, sql: "SELECT 1 FROM api_keys WHERE id = ? OR hash = ?", arguments: [key.id, key.hash]) ?? false
            guard !taken else { throw JobStoreError(.invalid, operation: "insert key", detail: "key id \(key.id) or its hash is already stored") }
            try KeyRow(key).insert(db)
        }
    }

    public func key(hash: String) async throws(JobStoreError) -> StoredKey? {
        try await read("look up key") { db in
            try KeyRow.fetchOne(db, sql: "SELECT \(KeyRow.columns) FROM api_keys WHERE hash = ? AND revoked_at IS NULL", arguments: [hash])
        }?.record()
    }

    public func revokeKey(id: String, now: Date) async throws(JobStoreError) -> Bool {
        try await write("revoke key") { db in
            try db.execute(sql: "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", arguments: [now.epochMilliseconds, id])
            return db.changesCount > 0
        }
    }

    public func keys() async throws(JobStoreError) -> [StoredKey] {
        try await read("list keys") { db in
            try KeyRow.fetchAll(db, sql: "SELECT \(KeyRow.columns) FROM api_keys ORDER BY created_at, id")
        }.map { row throws(JobStoreError) in try row.record() }
    }

    /// SQLite's plan for `sql` (`EXPLAIN QUERY PLAN`), one line per step: tests check with it that the statements run
    /// on every take and expiry tick read an index.
    func queryPlan(_ sql: String, arguments: [ColumnValue]) async throws(JobStoreError) -> [String] {
        try await read("explain") { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: StatementArguments(arguments)).map { $0["detail"] }
        }
    }

    // MARK: Rule-backed changes

    func changeJob<T: Sendable>(
        _ operation: String,
        id: String,
        _ decide: @escaping @Sendable (JobRecord?) -> (T, JobChange?)
    ) async throws(JobStoreError) -> T {
        let (value, change) = try await write(operation) { db in
            let stored = try Self.fetchJob(id, db)
            let (value, change) = decide(try stored?.record())
            if let change, let stored { try Self.save(change, over: stored, db) }
            return (value, change)
        }
        if let change, change.wakesTakers { work.signal([change.job.endpoint]) }
        return value
    }

    func changeJobs(
        _ operation: String,
        _ selection: JobSelection,
        _ decide: @escaping @Sendable (JobRecord) -> JobChange?
    ) async throws(JobStoreError) -> [JobChange] {
        let changes = try await write(operation) { db in
            let rows = try db.cachedStatement(sql: selection.sql { "?\($0)" }).rows(selection.parameters, JobRow.init)
            var changes: [JobChange] = []
            for row in rows {
                guard let change = decide(try row.record()) else { continue }
                try Self.save(change, over: row, db)
                changes.append(change)
            }
            return changes
        }
        work.signal(Set(changes.filter(\.wakesTakers).map(\.job.endpoint)))
        return changes
    }

    func deleteExpired(cutoff: Date) async throws(JobStoreError) -> Int {
        try await write("delete expired") { db in
            try db.execute(sql: expiredAttemptsDeletion(placeholder: "?"), arguments: [cutoff.epochMilliseconds])
            try db.execute(sql: expiredJobsDeletion(placeholder: "?"), arguments: [cutoff.epochMilliseconds])
            let deleted = db.changesCount
            try db.execute(sql: "DELETE FROM workers WHERE last_seen <= ?", arguments: [cutoff.epochMilliseconds])
            return deleted
        }
    }

    /// Writes the columns that differ from `stored`, the row as read in this transaction: SQLite rewrites every index
    /// on a column that an UPDATE sets, changed or not, and a take or a result changes only a few.
    private static func save(_ change: JobChange, over stored: JobRow, _ db: Database) throws {
        let row = JobRow(change.job, storedInput: stored.input)
        let (before, after) = (stored.columnValues, row.columnValues)
        let changed = before.indices.filter { before[$0] != after[$0] }
        if !changed.isEmpty {
            let assignments = changed.map { "\(JobRow.columnNames[$0]) = ?" }.joined(separator: ", ")
            try db.cachedStatement(sql: "UPDATE jobs SET \(assignments) WHERE id = ?").run(changed.map { after[$0] } + [.text(row.id)])
        }
        if change.resubmitted { try moveToBack(change.job.id, db) }
        if let gaveUp = change.webhookGaveUp {
            try db.cachedStatement(sql: "UPDATE jobs SET webhook_gave_up = ? WHERE id = ?").execute(arguments: [gaveUp, change.job.id])
        }
        if let worker = change.stopWorker {
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO job_stops (worker_id, job_id) VALUES (?, ?)").execute(arguments: [
                worker, change.job.id,
            ])
        }
    }

    /// Gives the job the next queue position. Safe as a read-then-write because SQLite has one writer at a time.
    private static func moveToBack(_ id: String, _ db: Database) throws {
        try db.cachedStatement(sql: "UPDATE jobs SET seq = ? WHERE id = ?").execute(arguments: [try lastPosition(db) + 1, id])
    }

    private static func lastPosition(_ db: Database) throws -> Int64 {
        try db.cachedStatement(sql: "SELECT COALESCE(MAX(seq), 0) FROM jobs").rows([]) { try $0.integer(0) }.first ?? 0
    }

    // Statements run on every request are prepared once per connection (`cachedStatement`), with every value bound.

    private static func fetchJob(_ id: String, _ db: Database) throws -> JobRow? {
        try db.cachedStatement(sql: "SELECT \(JobRow.columns) FROM jobs WHERE id = ?").rows([.text(id)], JobRow.init).first
    }

    private static let width = JobRow.Column.allCases.count
    private static let insertJob =
        "INSERT INTO jobs (\(JobRow.columns), seq) VALUES (\((1...width + 1).map { "?\($0)" }.joined(separator: ", ")))"

    // MARK: Access

    func write<T: Sendable>(_ operation: String, _ body: @escaping @Sendable (Database) throws -> T) async throws(JobStoreError) -> T {
        do {
            return try await groupCommit.write(body)
        } catch {
            throw failure(operation, error)
        }
    }

    func read<T: Sendable>(_ operation: String, _ body: @escaping @Sendable (Database) throws -> T) async throws(JobStoreError) -> T {
        do {
            return try await writer.read(body)
        } catch {
            throw failure(operation, error)
        }
    }

    private func failure(_ operation: String, _ error: any Error) -> JobStoreError {
        if let error = error as? JobStoreError { return error }
        if error is CancellationError {
            return JobStoreError(.unavailable, operation: operation, detail: "cancelled before SQLite \(location) answered")
        }
        let code: JobStoreError.Code = (error as? DatabaseError)?.resultCode == .SQLITE_BUSY ? .unavailable : .database
        return JobStoreError(code, operation: operation, detail: "SQLite \(location): \(Self.describe(error))")
    }

    /// GRDB's message without the statement's arguments, which may hold a job's s3Config.
    private static func describe(_ error: any Error) -> String {
        guard let error = error as? DatabaseError else { return "\(error)" }
        return "\(error.message ?? "error") (SQLite code \(error.extendedResultCode.rawValue))"
    }
}

// MARK: - GRDB records

extension JobRow {
    /// By position, in `Column` order (every query selects `JobRow.columns` first).
    init(_ columns: ColumnReader) throws {
        id = try columns.text(0)
        endpoint = try columns.text(1)
        status = try columns.text(2)
        input = try columns.text(3)
        webhook = try columns.optionalText(4)
        executionTimeoutMs = try columns.integer(5)
        ttlMs = try columns.integer(6)
        lowPriority = try columns.boolean(7)
        s3Config = try columns.optionalText(8)
        output = try columns.optionalText(9)
        error = try columns.optionalText(10)
        workerID = try columns.optionalText(11)
        attempts = try columns.integer(12)
        createdAt = try columns.integer(13)
        startedAt = try columns.optionalInteger(14)
        finishedAt = try columns.optionalInteger(15)
        leaseExpiresAt = try columns.optionalInteger(16)
        webhookAttempts = try columns.text(17)
        webhookDelivered = try columns.boolean(18)
        provider = try columns.optionalText(19)
        falRequestID = try columns.optionalText(20)
        falCostUSD = try columns.optionalReal(21)
    }
}

extension StatementArguments {
    init(_ values: [ColumnValue]) {
        self.init(
            values.map { value -> (any DatabaseValueConvertible)? in
                switch value {
                case .text(let text): text
                case .integer(let number): number
                case .boolean(let flag): flag
                case .real(let number): number
                }
            }
        )
    }
}

extension WorkerRow: FetchableRecord {
    init(row: Row) throws {
        self.init(id: row["id"], endpoint: row["endpoint"], lastSeen: row["last_seen"], jobIDs: row["job_ids"], report: row["report"])
    }
}

extension KeyRow: FetchableRecord, PersistableRecord {
    static let databaseTableName = "api_keys"

    init(row: Row) throws {
        self.init(
            id: row["id"],
            scope: row["scope"],
            hash: row["hash"],
            label: row["label"],
            createdAt: row["created_at"],
            revokedAt: row["revoked_at"]
        )
    }

    func encode(to container: inout PersistenceContainer) throws {
        container["id"] = id
        container["scope"] = scope
        container["hash"] = hash
        container["label"] = label
        container["created_at"] = createdAt
        container["revoked_at"] = revokedAt
    }
}
