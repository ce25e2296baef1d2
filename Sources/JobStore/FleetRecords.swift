import Foundation
import JobProtocol
import SwarmCore

/// A rented vast.ai instance as the control plane remembers it, with the last ping of the worker it was started as.
public struct FleetInstanceRecord: Sendable, Hashable {
    public enum State: String, Sendable, Hashable, CaseIterable {
        /// Rented and kept.
        case active
        /// Destroy sent; kept until vast no longer lists it.
        case destroying
        /// Gone from vast; kept for the day's spending.
        case removed
    }

    /// vast's contract id.
    public var id: Int
    /// `<prefix>-<unique>`, also the worker id (`SWARM_WORKER_ID`) its pings carry.
    public var label: String
    public var offerID: Int?
    public var machineID: Int?
    public var state: State
    /// $/h when rented.
    public var dphTotal: Double?
    public var createdAt: Date
    public var reboots: Int
    public var lastRebootAt: Date?
    public var destroyRequestedAt: Date?
    public var lastStatusAt: Date?
    public var warnedSlowStart: Bool
    public var removedAt: Date?
    /// Stopped by the scaler (disk kept, GPU released, storage billed); nil while running.
    public var stoppedAt: Date?
    /// When the scaler last asked vast to start it again after a stop.
    public var resumedAt: Date?
    /// What it bills while stopped, $/h: its disk × the offer's `storage_cost`, from the rental (migration 9).
    public var storageDollarsPerHour: Double?
    /// The worker's last ping (read from `workers`, never written through this record).
    public var lastPing: Date?
    public var report: WorkerReport?

    public init(
        id: Int,
        label: String,
        offerID: Int? = nil,
        machineID: Int? = nil,
        state: State = .active,
        dphTotal: Double? = nil,
        createdAt: Date,
        reboots: Int = 0,
        lastRebootAt: Date? = nil,
        destroyRequestedAt: Date? = nil,
        lastStatusAt: Date? = nil,
        warnedSlowStart: Bool = false,
        removedAt: Date? = nil,
        lastPing: Date? = nil,
        report: WorkerReport? = nil,
        stoppedAt: Date? = nil,
        resumedAt: Date? = nil,
        storageDollarsPerHour: Double? = nil
    ) {
        self.id = id
        self.label = label
        self.offerID = offerID
        self.machineID = machineID
        self.state = state
        self.dphTotal = dphTotal
        self.createdAt = createdAt
        self.reboots = reboots
        self.lastRebootAt = lastRebootAt
        self.destroyRequestedAt = destroyRequestedAt
        self.lastStatusAt = lastStatusAt
        self.warnedSlowStart = warnedSlowStart
        self.removedAt = removedAt
        self.lastPing = lastPing
        self.report = report
        self.stoppedAt = stoppedAt
        self.resumedAt = resumedAt
        self.storageDollarsPerHour = storageDollarsPerHour
    }
}

/// The fleet's durable state: what `swarmctl serve` must still know after a restart to adopt its instances rather
/// than rent new ones.
public protocol FleetRecordStore: Sendable {
    /// Instances not yet removed, oldest contract first, with their workers' pings merged by label.
    func fleetInstances() async throws(JobStoreError) -> [FleetInstanceRecord]
    func insertFleetInstance(_ record: FleetInstanceRecord) async throws(JobStoreError)
    /// Writes what changes after the rental (state, reboots, times, flags) unless the instance was removed; the rest
    /// (removal included) and the ping fields are ignored.
    func updateFleetInstance(_ record: FleetInstanceRecord) async throws(JobStoreError)
    /// Marks the instance removed; its row stays for `fleetSpent(since:now:)`.
    func removeFleetInstance(id: Int, at time: Date) async throws(JobStoreError)
    func failedFleetMachines() async throws(JobStoreError) -> Set<Int>
    func addFailedFleetMachine(_ machineID: Int, at time: Date) async throws(JobStoreError)
    func fleetCreationHold() async throws(JobStoreError) -> String?
    func setFleetCreationHold(_ reason: String?) async throws(JobStoreError)
    /// The instance count `swarmctl instance up|down` set; nil: the count `serve` was started with.
    func fleetDesiredSize() async throws(JobStoreError) -> Int?
    func setFleetDesiredSize(_ size: Int?) async throws(JobStoreError)
    /// Dollars spent between `start` and `now` on every instance, present and removed: `$/h` while running, the
    /// storage price while stopped.
    func fleetSpent(since start: Date, now: Date) async throws(JobStoreError) -> Double
    /// The endpoint's scaler settings set with `swarmctl instance scale` (JSON); nil: `serve`'s flags.
    func fleetScaler(endpoint: String) async throws(JobStoreError) -> String?
    func setFleetScaler(_ json: String?, endpoint: String) async throws(JobStoreError)
    /// The scaler's latest decision as serve explained it, for `swarmctl instance status`.
    func fleetScalerDecision(endpoint: String) async throws(JobStoreError) -> String?
    func setFleetScalerDecision(_ text: String?, endpoint: String) async throws(JobStoreError)
    /// A warm stop begins: from `time` the instance bills storage only, until `recordFleetResume`.
    func recordFleetStop(id: Int, at time: Date) async throws(JobStoreError)
    /// Ends the instance's open stop, if any.
    func recordFleetResume(id: Int, at time: Date) async throws(JobStoreError)
    /// Per live instance's label, when its worker last ended an attempt or, if later, first became READY: what its
    /// idle time is counted from, kept across restarts of `serve`.
    func fleetWorkersIdleSince() async throws(JobStoreError) -> [String: Date]
    /// The stops that overlap `[start, end)`, by instance id, oldest first.
    func fleetStops(overlapping start: Date, _ end: Date) async throws(JobStoreError) -> [Int: [InstanceBilling.Stop]]
}

/// The fleet's SQL binds and reads the job tables' `ColumnValue`: a NULL is the column kind's nil.
extension ColumnValue {
    /// What a column is read as.
    enum Kind: Sendable { case integer, real, text }

    init(_ value: Int?) { self = .integer(value.map(Int64.init)) }
    init(_ value: Double?) { self = .real(value) }
    init(_ value: String?) { self = .text(value) }
    init(_ value: Date?) { self = .integer(value?.epochMilliseconds) }

    var int: Int? { if case .integer(let value?) = self { Int(value) } else { nil } }
    var double: Double? { if case .real(let value?) = self { value } else { nil } }
    var string: String? { if case .text(let value?) = self { value } else { nil } }
    var date: Date? { int.map { Date(epochMilliseconds: Int64($0)) } }
}

/// What a backend provides so that the fleet's SQL below is written once: run a statement whose parameters are
/// `$1`, `$2`… in order, and read rows of the given column kinds.
protocol FleetTables: FleetRecordStore {
    func fleetExecute(_ operation: String, _ sql: String, _ values: [ColumnValue]) async throws(JobStoreError)
    func fleetQuery(
        _ operation: String,
        _ sql: String,
        _ values: [ColumnValue],
        columns: [ColumnValue.Kind]
    ) async throws(JobStoreError) -> [[ColumnValue]]
}

/// Migration 3 in both databases (same SQL). Times are epoch milliseconds, flags 0/1, as in the job tables.
let fleetTableStatements = [
    """
    CREATE TABLE fleet_instances (
        id BIGINT PRIMARY KEY NOT NULL, label TEXT NOT NULL, offer_id BIGINT, machine_id BIGINT, state TEXT NOT NULL,
        dph_total DOUBLE PRECISION, created_at BIGINT NOT NULL, reboots BIGINT NOT NULL, last_reboot_at BIGINT,
        destroy_requested_at BIGINT, last_status_at BIGINT, warned_slow_start BIGINT NOT NULL, removed_at BIGINT
    )
    """,
    "CREATE INDEX fleet_instances_live ON fleet_instances (id) WHERE removed_at IS NULL",
    "CREATE TABLE fleet_failed_machines (machine_id BIGINT PRIMARY KEY NOT NULL, added_at BIGINT NOT NULL)",
    "CREATE TABLE fleet_settings (name TEXT PRIMARY KEY NOT NULL, value TEXT)",
]

/// Migration 8 in both databases: the scaler's warm stop (issue 23).
let fleetStopStatements = [
    "ALTER TABLE fleet_instances ADD COLUMN stopped_at BIGINT",
    "ALTER TABLE fleet_instances ADD COLUMN resumed_at BIGINT",
]

extension FleetTables {
    private static var ownColumns: String {
        "id, label, offer_id, machine_id, state, dph_total, created_at, reboots, last_reboot_at, destroy_requested_at, "
            + "last_status_at, warned_slow_start, removed_at, stopped_at, resumed_at, storage_dph"
    }
    private static var ownKinds: [ColumnValue.Kind] {
        [
            .integer, .text, .integer, .integer, .text, .real, .integer, .integer, .integer, .integer, .integer, .integer, .integer, .integer,
            .integer, .real,
        ]
    }
    private static var creationHoldName: String { "creation_hold" }
    private static var desiredSizeName: String { "desired_size" }

    private static func values(_ record: FleetInstanceRecord) -> [ColumnValue] {
        [
            ColumnValue(record.id), ColumnValue(record.label), ColumnValue(record.offerID), ColumnValue(record.machineID),
            ColumnValue(record.state.rawValue), ColumnValue(record.dphTotal), ColumnValue(record.createdAt), ColumnValue(record.reboots),
            ColumnValue(record.lastRebootAt), ColumnValue(record.destroyRequestedAt), ColumnValue(record.lastStatusAt),
            ColumnValue(record.warnedSlowStart ? 1 : 0), ColumnValue(record.removedAt), ColumnValue(record.stoppedAt), ColumnValue(record.resumedAt),
            ColumnValue(record.storageDollarsPerHour),
        ]
    }

    public func fleetInstances() async throws(JobStoreError) -> [FleetInstanceRecord] {
        let own = Self.ownColumns.split(separator: ",").map { "f." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", ")
        // The worker was started with SWARM_WORKER_ID=<label>, so its pings are the `workers` row of that id.
        let rows = try await fleetQuery(
            "list fleet instances",
            "SELECT \(own), w.last_seen, w.report FROM fleet_instances f LEFT JOIN workers w ON w.id = f.label "
                + "WHERE f.removed_at IS NULL ORDER BY f.id",
            [],
            columns: Self.ownKinds + [.integer, .text]
        )
        return rows.compactMap { row in
            guard let id = row[0].int, let label = row[1].string, let created = row[6].date else { return nil }
            return FleetInstanceRecord(
                id: id,
                label: label,
                offerID: row[2].int,
                machineID: row[3].int,
                state: row[4].string.flatMap(FleetInstanceRecord.State.init(rawValue:)) ?? .active,
                dphTotal: row[5].double,
                createdAt: created,
                reboots: row[7].int ?? 0,
                lastRebootAt: row[8].date,
                destroyRequestedAt: row[9].date,
                lastStatusAt: row[10].date,
                warnedSlowStart: row[11].int == 1,
                removedAt: row[12].date,
                lastPing: row[16].date,
                report: row[17].string.flatMap { JobRow.decode(WorkerReport.self, $0) },
                stoppedAt: row[13].date,
                resumedAt: row[14].date,
                storageDollarsPerHour: row[15].double
            )
        }
    }

    public func insertFleetInstance(_ record: FleetInstanceRecord) async throws(JobStoreError) {
        let parameters = (1...Self.ownKinds.count).map { "$\($0)" }.joined(separator: ", ")
        try await fleetExecute(
            "record fleet instance \(record.id)",
            "INSERT INTO fleet_instances (\(Self.ownColumns)) VALUES (\(parameters))",
            Self.values(record)
        )
    }

    public func updateFleetInstance(_ record: FleetInstanceRecord) async throws(JobStoreError) {
        // What a reconcile round learns; the rental's facts (label, offer, machine, price, creation) never change. A
        // removed row stays removed: `swarmctl instance down` may remove it while a round still holds an older read.
        try await fleetExecute(
            "update fleet instance \(record.id)",
            "UPDATE fleet_instances SET state = $1, reboots = $2, last_reboot_at = $3, destroy_requested_at = $4, "
                + "last_status_at = $5, warned_slow_start = $6, stopped_at = $8, resumed_at = $9 WHERE id = $7 AND removed_at IS NULL",
            [
                ColumnValue(record.state.rawValue), ColumnValue(record.reboots), ColumnValue(record.lastRebootAt),
                ColumnValue(record.destroyRequestedAt), ColumnValue(record.lastStatusAt), ColumnValue(record.warnedSlowStart ? 1 : 0),
                ColumnValue(record.id), ColumnValue(record.stoppedAt), ColumnValue(record.resumedAt),
            ]
        )
    }

    public func removeFleetInstance(id: Int, at time: Date) async throws(JobStoreError) {
        try await fleetExecute(
            "remove fleet instance \(id)",
            "UPDATE fleet_instances SET state = $1, removed_at = $2 WHERE id = $3 AND removed_at IS NULL",
            [ColumnValue(FleetInstanceRecord.State.removed.rawValue), ColumnValue(time), ColumnValue(id)]
        )
    }

    public func failedFleetMachines() async throws(JobStoreError) -> Set<Int> {
        let rows = try await fleetQuery("list failed machines", "SELECT machine_id FROM fleet_failed_machines", [], columns: [.integer])
        return Set(rows.compactMap { $0[0].int })
    }

    public func addFailedFleetMachine(_ machineID: Int, at time: Date) async throws(JobStoreError) {
        try await fleetExecute(
            "exclude machine \(machineID)",
            "INSERT INTO fleet_failed_machines (machine_id, added_at) VALUES ($1, $2) ON CONFLICT (machine_id) DO NOTHING",
            [ColumnValue(machineID), ColumnValue(time)]
        )
    }

    public func fleetCreationHold() async throws(JobStoreError) -> String? {
        try await fleetSetting(Self.creationHoldName)
    }

    public func setFleetCreationHold(_ reason: String?) async throws(JobStoreError) {
        try await setFleetSetting(Self.creationHoldName, reason)
    }

    public func fleetDesiredSize() async throws(JobStoreError) -> Int? {
        try await fleetSetting(Self.desiredSizeName).flatMap { Int($0) }
    }

    public func setFleetDesiredSize(_ size: Int?) async throws(JobStoreError) {
        try await setFleetSetting(Self.desiredSizeName, size.map { String(max(0, $0)) })
    }

    public func fleetScaler(endpoint: String) async throws(JobStoreError) -> String? {
        try await fleetSetting("scaler:" + endpoint)
    }

    public func setFleetScaler(_ json: String?, endpoint: String) async throws(JobStoreError) {
        try await setFleetSetting("scaler:" + endpoint, json)
    }

    public func fleetScalerDecision(endpoint: String) async throws(JobStoreError) -> String? {
        try await fleetSetting("scaler-decision:" + endpoint)
    }

    public func setFleetScalerDecision(_ text: String?, endpoint: String) async throws(JobStoreError) {
        try await setFleetSetting("scaler-decision:" + endpoint, text)
    }

    /// A row of `fleet_settings`; a NULL value reads as unset.
    private func fleetSetting(_ name: String) async throws(JobStoreError) -> String? {
        let rows = try await fleetQuery(
            "read fleet setting \(name)",
            "SELECT value FROM fleet_settings WHERE name = $1",
            [ColumnValue(name)],
            columns: [.text]
        )
        return rows.first?[0].string
    }

    private func setFleetSetting(_ name: String, _ value: String?) async throws(JobStoreError) {
        try await fleetExecute(
            "set fleet setting \(name)",
            "INSERT INTO fleet_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            [ColumnValue(name), ColumnValue(value)]
        )
    }

    public func fleetSpent(since start: Date, now: Date) async throws(JobStoreError) -> Double {
        let rows = try await fleetQuery(
            "sum fleet spending",
            "SELECT dph_total, created_at, removed_at, id, storage_dph FROM fleet_instances "
                + "WHERE dph_total IS NOT NULL AND (removed_at IS NULL OR removed_at > $1)",
            [ColumnValue(start)],
            columns: [.real, .integer, .integer, .integer, .real]
        )
        let stops = try await fleetStops(overlapping: start, now)
        return rows.reduce(0) { total, row in
            guard let dph = row[0].double, let created = row[1].date, let id = row[3].int else { return total }
            let window = (start: max(created, start), end: min(row[2].date ?? now, now))
            guard window.end > window.start else { return total }
            return total + InstanceBilling.dollars(window, dollarsPerHour: dph, storagePerHour: row[4].double, stops: stops[id] ?? [])
        }
    }
}
