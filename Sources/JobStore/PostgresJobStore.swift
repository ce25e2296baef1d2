import JobProtocol
import Logging
import NIOSSL
import PostgresNIO
import ServiceLifecycle
import SwarmCore

import Foundation
import Synchronization

/// The job store in PostgreSQL (postgres-nio): several `serve` replicas may share one database. Concurrent takers
/// never get the same job (`FOR UPDATE SKIP LOCKED`), and enqueue, retry and requeue `NOTIFY` every replica, so
/// `workAvailable()` wakes takers wherever they wait.
///
/// The store is a ServiceLifecycle `Service`: its `run()` runs the connection pool and the LISTEN connection and must
/// be running (in a `ServiceGroup`, or a task of its own) while the store is used; it returns on graceful shutdown or
/// cancellation. It holds one pooled connection for LISTEN.
public final class PostgresJobStore: JobStore, RuleBackedJobStore, Service {
    public struct Configuration: Sendable {
        /// `postgres://user:password@host:port/database?sslmode=disable|prefer|require` (`prefer` when not given).
        public var url: String
        /// The schema (created by `migrate()`) that holds the tables: lowercase letters, digits and `_`, at most 48
        /// characters; nil uses the server's default (`public`). Separate schemas are separate stores.
        public var schema: String?
        /// The pool's limit; one connection is kept for LISTEN, so at least 2.
        public var maximumConnections: Int
        /// The longest any one store call may take; postgres-nio would otherwise wait forever for an unreachable
        /// server.
        public var operationTimeout: Duration

        public init(url: String, schema: String? = nil, maximumConnections: Int = 10, operationTimeout: Duration = .seconds(30)) {
            self.url = url
            self.schema = schema
            self.maximumConnections = maximumConnections
            self.operationTimeout = operationTimeout
        }
    }

    let client: PostgresClient
    private let schema: String?
    /// The NOTIFY channel; one per schema so that separate stores on one database do not wake each other.
    private let channel: String
    /// Names the database in errors and logs, without the password.
    private let target: String
    private let operationTimeout: Duration
    let logger: Logger
    private let work = WorkSignal()
    /// Set while `run()` runs the pool. postgres-nio queues (and warns about) connection requests made before its
    /// `run()`, so calls wait for this: calls made right after starting the service stay quiet, and a store that
    /// nobody runs fails with a message saying so.
    private let running = Atomic<Bool>(false)
    private let listening = Atomic<Bool>(false)

    public init(configuration: Configuration, logger: Logger = Logger(label: "swarm.jobstore.postgres")) throws(JobStoreError) {
        let parsed = try Self.clientConfiguration(configuration)
        self.client = PostgresClient(configuration: parsed.client, backgroundLogger: logger)
        self.schema = configuration.schema
        self.channel = "swarm_work" + (configuration.schema.map { "_\($0)" } ?? "")
        self.target = parsed.target + (configuration.schema.map { " schema \($0)" } ?? "")
        self.operationTimeout = configuration.operationTimeout
        self.logger = logger
    }

    public func run() async throws {
        defer {
            running.store(false, ordering: .releasing)
            work.finishAll()
        }
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    self.running.store(true, ordering: .releasing)
                    await self.client.run()
                }
                group.addTask { await self.listenForWork() }
            }
        }
    }

    // MARK: Migrations

    /// Versioned migrations, recorded in `schema_migrations`; each is applied once, in order. Never edit one that
    /// shipped: add the next.
    private static let migrations: [(version: Int, name: String, statements: [String])] = [
        (
            1, "jobs, stream, stops, workers, keys",
            [
                "CREATE SEQUENCE job_seq",
                // `seq` is the queue position (FIFO and listing order); a resubmitted job draws a new one.
                """
                CREATE TABLE jobs (
                    id text PRIMARY KEY,
                    seq bigint NOT NULL UNIQUE DEFAULT nextval('job_seq'),
                    endpoint text NOT NULL,
                    status text NOT NULL,
                    input text NOT NULL,
                    webhook text,
                    execution_timeout_ms bigint NOT NULL,
                    ttl_ms bigint NOT NULL,
                    low_priority boolean NOT NULL,
                    s3_config text,
                    output text,
                    error text,
                    worker_id text,
                    attempts bigint NOT NULL,
                    created_at bigint NOT NULL,
                    started_at bigint,
                    finished_at bigint,
                    lease_expires_at bigint,
                    webhook_attempts text NOT NULL,
                    webhook_delivered boolean NOT NULL,
                    webhook_gave_up boolean NOT NULL DEFAULT false
                )
                """,
                "CREATE INDEX jobs_queue ON jobs (endpoint, status, low_priority, seq)",
                "CREATE INDEX jobs_listing ON jobs (endpoint, seq)",
                "CREATE INDEX jobs_status_lease ON jobs (status, lease_expires_at)",
                "CREATE INDEX jobs_status_finished ON jobs (status, finished_at)",
                """
                CREATE TABLE job_stream (
                    seq bigserial PRIMARY KEY,
                    job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                    output text NOT NULL
                )
                """,
                "CREATE INDEX job_stream_job ON job_stream (job_id)",
                """
                CREATE TABLE job_stops (
                    worker_id text NOT NULL,
                    job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                    PRIMARY KEY (worker_id, job_id)
                )
                """,
                "CREATE INDEX job_stops_job ON job_stops (job_id)",
                "CREATE TABLE workers (id text PRIMARY KEY, endpoint text NOT NULL, last_seen bigint NOT NULL, job_ids text NOT NULL, report text)",
                """
                CREATE TABLE api_keys (
                    id text PRIMARY KEY, scope text NOT NULL, hash text NOT NULL UNIQUE, label text, created_at bigint NOT NULL,
                    revoked_at bigint
                )
                """,
            ]
        ),
        (2, "expiry and webhook indexes", expiryIndexStatements),
        (3, "fleet instances", fleetTableStatements),
        (4, "partial lease and finish indexes", partialStatusIndexStatements),
        (5, "one index of running jobs", runningIndexStatements),
        (6, "provider and fal.ai request of each job", providerColumnStatements(real: "double precision")),
        (7, "job attempts and instance readiness for costs", costTableStatements),
        (8, "fleet warm stop", fleetStopStatements),
        (9, "fleet stop history, storage price, queued order", fleetStopHistoryStatements),
    ]

    /// Serializes `migrate()` across replicas starting together (an arbitrary constant of ours).
    private static let migrationLock: Int64 = 0x5357_4152_4d4a_5331

    public func migrate() async throws(JobStoreError) {
        try await transaction("migrate") { connection, logger in
            _ = try await connection.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
            if let schema = self.schema {
                _ = try await connection.query("CREATE SCHEMA IF NOT EXISTS \(unescaped: schema)", logger: logger)
            }
            _ = try await connection.query(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)",
                logger: logger
            )
            var applied = Set<Int>()
            for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger).decode(Int.self) {
                applied.insert(version)
            }
            for migration in Self.migrations where !applied.contains(migration.version) {
                for statement in migration.statements {
                    _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                _ = try await connection.query(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (\(migration.version), \(migration.name), \(Date().epochMilliseconds))",
                    logger: logger
                )
            }
        }
    }

    /// Drops the store's schema and everything in it; for tests, which give each store a schema of its own.
    func dropSchema() async throws(JobStoreError) {
        guard let schema else { throw JobStoreError(.invalid, operation: "drop schema", detail: "the store uses the default schema") }
        try await timed("drop schema") { _ = try await self.client.query("DROP SCHEMA IF EXISTS \(unescaped: schema) CASCADE", logger: self.logger) }
    }

    // MARK: Clients

    public func enqueue(_ jobs: [NewJob], now: Date) async throws(JobStoreError) -> [JobRecord] {
        try JobRules.validate(jobs)
        let records = jobs.map { JobRules.queued($0, now: now) }
        try await transaction("enqueue") { connection, logger in
            let rows = try await connection.query("SELECT id FROM jobs WHERE id = ANY(\(records.map(\.id)))", logger: logger)
            for try await existing in rows.decode(String.self) {
                throw JobStoreError(.invalid, operation: "enqueue", detail: "job id \(existing) already exists; nothing was enqueued")
            }
            // Many rows per statement: a 10,000-job batch is 20 round trips, not 10,000.
            var start = records.startIndex
            while start < records.endIndex {
                let chunk = records[start..<min(start + Self.insertChunk, records.endIndex)]
                var binds = PostgresBindings()
                for record in chunk { Self.append(JobRow(record), to: &binds) }
                _ = try await connection.query(PostgresQuery(unsafeSQL: Self.insertJobs(count: chunk.count), binds: binds), logger: logger)
                start = chunk.endIndex
            }
            for endpoint in Set(records.map(\.endpoint)) { try await self.notify(endpoint, connection, logger) }
        }
        return records
    }

    public func job(id: String) async throws(JobStoreError) -> JobRecord? {
        try await timed("read job") {
            try await self.client.query("SELECT \(unescaped: JobRow.columns) FROM jobs WHERE id = \(id)", logger: self.logger)
                .firstJobRow()
        }?.record()
    }

    public func listJobs(endpoint: String, status: JobStatus?, limit: Int, cursor: String?) async throws(JobStoreError) -> JobPage {
        try JobCursor.checkLimit(limit)
        let before = try JobCursor.position(cursor)
        let status = status?.rawValue
        let rows = try await timed("list jobs") {
            var rows: [(row: JobRow, position: Int64)] = []
            let sequence = try await self.client.query(
                """
                SELECT \(unescaped: JobRow.columns), seq FROM jobs WHERE endpoint = \(endpoint)
                AND (\(status)::text IS NULL OR status = \(status)) AND (\(before)::bigint IS NULL OR seq < \(before))
                ORDER BY seq DESC LIMIT \(limit + 1)
                """,
                logger: self.logger
            )
            for try await row in sequence {
                rows.append((row: try JobRow(postgres: row), position: try row.makeRandomAccess()["seq"].decode(Int64.self)))
            }
            return rows
        }
        return try JobCursor.page(rows, limit: limit)
    }

    public func purgeQueue(endpoint: String) async throws(JobStoreError) -> Int {
        try await timed("purge queue") {
            try await self.client.query(
                "DELETE FROM jobs WHERE endpoint = \(endpoint) AND status = \(JobStatus.inQueue.rawValue) RETURNING id",
                logger: self.logger
            ).collect().count
        }
    }

    public func counts(endpoint: String) async throws(JobStoreError) -> [JobStatus: Int] {
        let pairs = try await timed("count jobs") {
            var pairs: [(String, Int64)] = []
            let rows = try await self.client.query(
                "SELECT status, COUNT(*) FROM jobs WHERE endpoint = \(endpoint) GROUP BY status",
                logger: self.logger
            )
            for try await pair in rows.decode((String, Int64).self) { pairs.append(pair) }
            return pairs
        }
        return statusCounts(pairs)
    }

    public func takeStreamChunks(id: String) async throws(JobStoreError) -> [JSONValue] {
        let chunks = try await timed("take stream chunks") {
            var chunks: [(Int64, String)] = []
            let rows = try await self.client.query("DELETE FROM job_stream WHERE job_id = \(id) RETURNING seq, output", logger: self.logger)
            for try await chunk in rows.decode((Int64, String).self) { chunks.append(chunk) }
            return chunks
        }
        // RETURNING gives no order.
        return chunks.sorted { $0.0 < $1.0 }.map { JSONValue.parse(Data($0.1.utf8)) ?? .null }
    }

    // MARK: Workers

    public func workAvailable() async throws(JobStoreError) -> AsyncStream<String> {
        // Subscribing before LISTEN is in place would miss wake-ups without anyone noticing.
        guard await wait(until: { self.listening.load(ordering: .acquiring) }) else {
            throw JobStoreError(
                .unavailable,
                operation: "wait for work",
                detail: "not listening on PostgreSQL \(target) after \(operationTimeout); is the store's run() running and the server up?"
            )
        }
        return work.subscribe()
    }

    public func appendStreamChunk(id: String, workerID: String, output: JSONValue, now: Date) async throws(JobStoreError) -> Bool {
        try await transaction("append stream chunk") { connection, logger in
            let rows = try await connection.query("SELECT \(unescaped: JobRow.columns) FROM jobs WHERE id = \(id) FOR SHARE", logger: logger)
            guard let job = try await rows.firstJobRow()?.record(), JobRules.acceptsReports(job, from: workerID) else { return false }
            _ = try await connection.query("INSERT INTO job_stream (job_id, output) VALUES (\(id), \(output.jsonString()))", logger: logger)
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
        let reportText = report.map { JobRow.encode($0) }
        try await transaction("heartbeat") { connection, logger in
            _ = try await connection.query(
                """
                INSERT INTO workers (id, endpoint, last_seen, job_ids, report)
                VALUES (\(workerID), \(endpoint), \(now.epochMilliseconds), \(JobRow.encode(jobIDs)), \(reportText))
                ON CONFLICT (id) DO UPDATE SET endpoint = excluded.endpoint, last_seen = excluded.last_seen,
                    job_ids = excluded.job_ids, report = COALESCE(excluded.report, workers.report)
                """,
                logger: logger
            )
            // A lease is only ever extended: a late ping must not shorten one a newer ping set.
            _ = try await connection.query(
                """
                UPDATE jobs SET lease_expires_at = GREATEST(COALESCE(lease_expires_at, 0), \(leaseUntil.epochMilliseconds))
                WHERE worker_id = \(workerID) AND status = \(JobStatus.inProgress.rawValue) AND id = ANY(\(jobIDs))
                """,
                logger: logger
            )
        }
    }

    public func takeJobsToStop(workerID: String) async throws(JobStoreError) -> [String] {
        try await timed("take jobs to stop") {
            var ids: [String] = []
            let rows = try await self.client.query("DELETE FROM job_stops WHERE worker_id = \(workerID) RETURNING job_id", logger: self.logger)
            for try await id in rows.decode(String.self) { ids.append(id) }
            return ids.sorted()
        }
    }

    public func workers(endpoint: String?) async throws(JobStoreError) -> [WorkerRecord] {
        try await timed("list workers") {
            var workers: [WorkerRecord] = []
            let rows = try await self.client.query(
                "SELECT \(unescaped: WorkerRow.columns) FROM workers WHERE \(endpoint)::text IS NULL OR endpoint = \(endpoint) ORDER BY id",
                logger: self.logger
            )
            for try await (id, endpoint, lastSeen, jobIDs, report) in rows.decode((String, String, Int64, String, String?).self) {
                workers.append(WorkerRow(id: id, endpoint: endpoint, lastSeen: lastSeen, jobIDs: jobIDs, report: report).record())
            }
            return workers
        }
    }

    // MARK: Webhooks

    public func pendingWebhooks(limit: Int) async throws(JobStoreError) -> [JobRecord] {
        let rows = try await timed("list pending webhooks") {
            try await self.client.query(
                "SELECT \(unescaped: JobRow.columns) FROM jobs WHERE \(unescaped: pendingWebhookCondition) ORDER BY finished_at, seq LIMIT \(limit)",
                logger: self.logger
            ).jobRows()
        }
        return try rows.map { row throws(JobStoreError) in try row.record() }
    }

    // MARK: fal.ai

    public func falJobs() async throws(JobStoreError) -> [JobRecord] {
        let rows = try await timed("list fal.ai jobs") {
            try await self.client.query(
                "SELECT \(unescaped: JobRow.columns) FROM jobs WHERE status = \(JobStatus.inProgress.rawValue) AND provider = \(JobRules.falProvider) ORDER BY seq",
                logger: self.logger
            ).jobRows()
        }
        return try rows.map { row throws(JobStoreError) in try row.record() }
    }

    // MARK: Keys

    public func insertKey(_ key: StoredKey) async throws(JobStoreError) {
        let row = KeyRow(key)
        try await transaction("insert key") { connection, logger in
            let taken = try await connection.query("SELECT 1 FROM api_keys WHERE id = \(row.id) OR hash = \(row.hash)", logger: logger)
            guard try await taken.collect().isEmpty else {
                throw JobStoreError(.invalid, operation: "insert key", detail: "key id \(row.id) or its hash is already stored")
            }
            _ = try await connection.query(
                """
                INSERT INTO api_keys (\(unescaped: KeyRow.columns))
                VALUES (\(row.id), \(row.scope), \(row.hash), \(row.label), \(row.createdAt), \(row.revokedAt))
                """,
                logger: logger
            )
        }
    }

    public func key(hash: String) async throws(JobStoreError) -> StoredKey? {
        try await timed("look up key") {
            try await self.keyRows("SELECT \(unescaped: KeyRow.columns) FROM api_keys WHERE hash = \(hash) AND revoked_at IS NULL").first
        }?.record()
    }

    public func revokeKey(id: String, now: Date) async throws(JobStoreError) -> Bool {
        try await timed("revoke key") {
            try await self.client.query(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, \(now.epochMilliseconds)) WHERE id = \(id) RETURNING id",
                logger: self.logger
            ).collect().count > 0
        }
    }

    public func keys() async throws(JobStoreError) -> [StoredKey] {
        let rows = try await timed("list keys") {
            try await self.keyRows("SELECT \(unescaped: KeyRow.columns) FROM api_keys ORDER BY created_at, id")
        }
        return try rows.map { row throws(JobStoreError) in try row.record() }
    }

    private func keyRows(_ query: PostgresQuery) async throws -> [KeyRow] {
        var keys: [KeyRow] = []
        let rows = try await client.query(query, logger: logger)
        for try await (id, scope, hash, label, createdAt, revokedAt) in rows.decode((String, String, String, String?, Int64, Int64?).self) {
            keys.append(KeyRow(id: id, scope: scope, hash: hash, label: label, createdAt: createdAt, revokedAt: revokedAt))
        }
        return keys
    }

    // MARK: Rule-backed changes

    func changeJob<T: Sendable>(
        _ operation: String,
        id: String,
        _ decide: @escaping @Sendable (JobRecord?) -> (T, JobChange?)
    ) async throws(JobStoreError) -> T {
        try await transaction(operation) { connection, logger in
            let rows = try await connection.query("SELECT \(unescaped: JobRow.columns) FROM jobs WHERE id = \(id) FOR UPDATE", logger: logger)
            let stored = try await rows.firstJobRow()
            let (value, change) = decide(try stored?.record())
            if let change, let stored { try await self.save(change, over: stored, connection, logger) }
            return value
        }
    }

    func changeJobs(
        _ operation: String,
        _ selection: JobSelection,
        _ decide: @escaping @Sendable (JobRecord) -> JobChange?
    ) async throws(JobStoreError) -> [JobChange] {
        try await transaction(operation) { connection, logger in
            // SKIP LOCKED: a job another taker (or replica) is handing out right now is simply not ours.
            let sql = selection.sql { "$\($0)" } + " FOR UPDATE SKIP LOCKED"
            var binds = PostgresBindings()
            Self.append(selection.parameters, to: &binds)
            let rows = try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).jobRows()
            var changes: [JobChange] = []
            for row in rows {
                guard let change = decide(try row.record()) else { continue }
                try await self.save(change, over: row, connection, logger)
                changes.append(change)
            }
            return changes
        }
    }

    func deleteExpired(cutoff: Date) async throws(JobStoreError) -> Int {
        try await transaction("delete expired") { connection, logger in
            var binds = PostgresBindings()
            binds.append(cutoff.epochMilliseconds)
            _ = try await connection.query(PostgresQuery(unsafeSQL: expiredAttemptsDeletion(placeholder: "$1"), binds: binds), logger: logger)
            let deletion = PostgresQuery(unsafeSQL: expiredJobsDeletion(placeholder: "$1") + " RETURNING id", binds: binds)
            let deleted = try await connection.query(deletion, logger: logger).collect().count
            _ = try await connection.query("DELETE FROM workers WHERE last_seen <= \(cutoff.epochMilliseconds)", logger: logger)
            return deleted
        }
    }

    /// `stored` is the row as read in this transaction.
    private func save(_ change: JobChange, over stored: JobRow, _ connection: PostgresConnection, _ logger: Logger) async throws {
        let values = JobRow(change.job, storedInput: stored.input).columnValues
        var binds = PostgresBindings()
        Self.append(Self.updatedColumns.map { values[$0] }, to: &binds)
        _ = try await connection.query(PostgresQuery(unsafeSQL: Self.updateJob, binds: binds), logger: logger)
        let id = change.job.id
        if change.resubmitted {
            _ = try await connection.query("UPDATE jobs SET seq = nextval('job_seq') WHERE id = \(id)", logger: logger)
        }
        if let gaveUp = change.webhookGaveUp {
            _ = try await connection.query("UPDATE jobs SET webhook_gave_up = \(gaveUp) WHERE id = \(id)", logger: logger)
        }
        if let worker = change.stopWorker {
            _ = try await connection.query(
                "INSERT INTO job_stops (worker_id, job_id) VALUES (\(worker), \(id)) ON CONFLICT DO NOTHING",
                logger: logger
            )
        }
        // PostgreSQL folds repeated notifications of one transaction, so a batch wakes each endpoint once.
        if change.wakesTakers { try await notify(change.job.endpoint, connection, logger) }
    }

    /// Delivered to every listening replica (this one included) when the transaction commits.
    private func notify(_ endpoint: String, _ connection: PostgresConnection, _ logger: Logger) async throws {
        _ = try await connection.query("SELECT pg_notify(\(channel), \(endpoint))", logger: logger)
    }

    /// Rows per INSERT: well under PostgreSQL's 65,535 bind parameters.
    private static let insertChunk = 500

    /// `INSERT ... VALUES ($1..$n), ($n+1..$2n), ...` for `count` rows, in order (so `seq` follows the batch's order).
    private static func insertJobs(count: Int) -> String {
        let width = JobRow.Column.allCases.count
        let rows = (0..<count).map { row in "(" + (1...width).map { "$\(row * width + $0)" }.joined(separator: ", ") + ")" }
        return "INSERT INTO jobs (\(JobRow.columns)) VALUES " + rows.joined(separator: ", ")
    }

    /// Positions in `JobRow.Column` order of every column but the input, which never changes after submission and can
    /// hold megabytes of image that a take or a result would otherwise send back to the server. The id comes first.
    private static let updatedColumns = JobRow.Column.allCases.indices.filter { JobRow.Column.allCases[$0] != .input }
    private static let updateJob =
        "UPDATE jobs SET (\(updatedColumns.map { JobRow.columnNames[$0] }.joined(separator: ", "))) = ("
        + updatedColumns.indices.map { "$\($0 + 1)" }.joined(separator: ", ") + ") WHERE id = $1"

    private static func append(_ row: JobRow, to binds: inout PostgresBindings) {
        append(row.columnValues, to: &binds)
    }

    static func append(_ values: [ColumnValue], to binds: inout PostgresBindings) {
        for value in values {
            switch value {
            case .text(let text): binds.append(text)
            case .integer(let number): binds.append(number)
            case .boolean(let flag): binds.append(flag)
            case .real(let number): binds.append(number)
            }
        }
    }

    // MARK: Wake-ups

    /// Keeps a LISTEN connection open for as long as the store runs, reconnecting after a failure.
    private func listenForWork() async {
        _ = await wait(until: { self.running.load(ordering: .acquiring) })
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: self.channel) { notifications in
                        self.listening.store(true, ordering: .releasing)
                        for try await notification in notifications { self.work.signal([notification.payload]) }
                    }
                }
            } catch {
                // On shutdown the pool may close this connection a moment before this task sees its cancellation.
                let closedByUs = (error as? PSQLError)?.code == .clientClosedConnection
                if !Task.isCancelled && !closedByUs {
                    logger.warning(
                        "job store lost its LISTEN connection; wake-ups pause until it reconnects",
                        metadata: ["database": "\(target)", "error": "\(Self.describe(error))"]
                    )
                }
            }
            listening.store(false, ordering: .releasing)
            try? await Task.sleep(for: .seconds(1))
        }
    }

    // MARK: Access

    /// Runs `body` in a transaction on one pooled connection, within the operation timeout.
    private func transaction<T: Sendable>(
        _ operation: String,
        _ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T
    ) async throws(JobStoreError) -> T {
        try await timed(operation) {
            try await self.client.withTransaction(logger: self.logger) { connection in try await body(connection, self.logger) }
        }
    }

    /// Waits until `condition` holds, polling: it is false only around start and stop. False when the operation
    /// timeout passed or the task was cancelled first.
    private func wait(until condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: operationTimeout)
        while !condition() {
            guard ContinuousClock.now < deadline, (try? await Task.sleep(for: .milliseconds(5))) != nil else { return false }
        }
        return true
    }

    private enum Race<T: Sendable>: Sendable {
        case value(T)
        case timedOut
    }

    /// Runs `body` within the operation timeout, turning every failure into a `JobStoreError` for `operation`.
    func timed<T: Sendable>(_ operation: String, _ body: @escaping @Sendable () async throws -> T) async throws(JobStoreError) -> T {
        guard await wait(until: { self.running.load(ordering: .acquiring) }) else {
            throw JobStoreError(
                .unavailable,
                operation: operation,
                detail: "the PostgreSQL store for \(target) is not running: run it (in a ServiceGroup) before use"
            )
        }
        let outcome: Race<T>
        do {
            outcome = try await withThrowingTaskGroup(of: Race<T>.self) { group in
                group.addTask { .value(try await body()) }
                group.addTask {
                    try await Task.sleep(for: self.operationTimeout)
                    return .timedOut
                }
                defer { group.cancelAll() }
                return try await group.next() ?? .timedOut
            }
        } catch {
            throw failure(operation, error)
        }
        switch outcome {
        case .value(let value):
            return value
        case .timedOut:
            throw JobStoreError(.unavailable, operation: operation, detail: "no answer from PostgreSQL \(target) within \(operationTimeout)")
        }
    }

    private func failure(_ operation: String, _ error: any Error) -> JobStoreError {
        if let error = error as? PostgresTransactionError {
            // What went wrong inside (or while opening or committing) the transaction; a failed rollback only follows.
            if let cause = error.closureError ?? error.beginError ?? error.commitError ?? error.rollbackError {
                return failure(operation, cause)
            }
        }
        if let error = error as? JobStoreError { return error }
        if error is CancellationError {
            return JobStoreError(.unavailable, operation: operation, detail: "cancelled before PostgreSQL \(target) answered")
        }
        if let error = error as? PSQLError {
            switch error.serverInfo?[.sqlState] {
            case "23505"?:
                return JobStoreError(.invalid, operation: operation, detail: "PostgreSQL \(target): \(Self.describe(error))")
            case nil:
                return JobStoreError(.unavailable, operation: operation, detail: "cannot use PostgreSQL \(target): \(Self.describe(error))")
            case _?:
                break
            }
        }
        return JobStoreError(.database, operation: operation, detail: "PostgreSQL \(target): \(Self.describe(error))")
    }

    /// The server's message and SQLSTATE, or the connection problem. Never the query's binds (a job's s3Config).
    private static func describe(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let info = error.serverInfo, let message = info[.message] {
            return "\(message) (SQLSTATE \(info[.sqlState] ?? "unknown"))"
        }
        return error.underlying.map { "\(error.code): \($0)" } ?? "\(error.code)"
    }

    // MARK: Configuration

    private static func clientConfiguration(
        _ configuration: Configuration
    ) throws(JobStoreError) -> (client: PostgresClient.Configuration, target: String) {
        func invalid(_ detail: String) -> JobStoreError { JobStoreError(.invalid, operation: "configure", detail: detail) }
        // Never echo the URL: it carries the password.
        guard let url = URLComponents(string: configuration.url), url.scheme == "postgres" || url.scheme == "postgresql" else {
            throw invalid("the database URL must look like postgres://user:password@host:port/database?sslmode=disable")
        }
        guard let host = url.host, !host.isEmpty, let user = url.user, !user.isEmpty else {
            throw invalid("the database URL must name a user and a host")
        }
        let port = url.port ?? 5432
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        let tls: PostgresClient.Configuration.TLS
        switch url.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "prefer" {
        case "disable": tls = .disable
        case "prefer": tls = .prefer(.makeClientConfiguration())
        case "require": tls = .require(.makeClientConfiguration())
        case let mode: throw invalid("sslmode \(mode) is not one of disable, prefer, require")
        }
        if let schema = configuration.schema {
            guard schema.count <= 48, let first = schema.first, first.isLowercase || first == "_",
                schema.allSatisfy({ ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "_" })
            else {
                throw invalid("schema \"\(schema)\" must be lowercase letters, digits and _ (at most 48, not starting with a digit)")
            }
        }
        guard configuration.maximumConnections >= 2 else {
            throw invalid("maximumConnections must be at least 2 (one is kept for LISTEN), got \(configuration.maximumConnections)")
        }

        var client = PostgresClient.Configuration(
            host: host,
            port: port,
            username: user,
            password: url.password,
            database: database.isEmpty ? nil : database,
            tls: tls
        )
        client.options.maximumConnections = configuration.maximumConnections
        // Unqualified table names then resolve in the store's schema on every connection.
        if let schema = configuration.schema { client.options.additionalStartupParameters = [("search_path", schema)] }
        return (client, "\(host):\(port)/\(database.isEmpty ? user : database)")
    }
}

// MARK: - Rows

extension PostgresRowSequence {
    func jobRows() async throws -> [JobRow] {
        var rows: [JobRow] = []
        for try await row in self { rows.append(try JobRow(postgres: row)) }
        return rows
    }

    func firstJobRow() async throws -> JobRow? {
        try await jobRows().first
    }
}

extension JobRow {
    init(postgres row: PostgresRow) throws {
        let cells = row.makeRandomAccess()
        func cell<T: PostgresDecodable>(_ key: Column, _ type: T.Type = T.self) throws -> T {
            try cells[key.rawValue].decode(T.self)
        }
        id = try cell(.id)
        endpoint = try cell(.endpoint)
        status = try cell(.status)
        input = try cell(.input)
        webhook = try cell(.webhook)
        executionTimeoutMs = try cell(.executionTimeoutMs)
        ttlMs = try cell(.ttlMs)
        lowPriority = try cell(.lowPriority)
        s3Config = try cell(.s3Config)
        output = try cell(.output)
        error = try cell(.error)
        workerID = try cell(.workerID)
        attempts = try cell(.attempts)
        createdAt = try cell(.createdAt)
        startedAt = try cell(.startedAt)
        finishedAt = try cell(.finishedAt)
        leaseExpiresAt = try cell(.leaseExpiresAt)
        webhookAttempts = try cell(.webhookAttempts)
        webhookDelivered = try cell(.webhookDelivered)
        provider = try cell(.provider)
        falRequestID = try cell(.falRequestID)
        falCostUSD = try cell(.falCostUSD)
    }
}
