import Foundation
import JobProtocol
import JobStore
import SwarmCore
import VastAI

/// The fleet's memory on the job store's database, so that a restarted `serve` adopts its instances. Each instance
/// gets a worker key of its own, stored hashed under an id derived from its label and revoked when it is forgotten.
public struct DatabaseFleetStore: FleetStore {
    private let database: any ControlPlaneStore

    public init(store: any ControlPlaneStore) {
        self.database = store
    }

    public func members() async throws -> [FleetMember] {
        try await database.fleetInstances().map(Self.member)
    }

    public func insert(_ member: FleetMember) async throws {
        try await database.insertFleetInstance(Self.record(member))
    }

    public func update(_ member: FleetMember) async throws {
        try await database.updateFleetInstance(Self.record(member))
        if let gpu = member.vast?.gpuName {
            try await database.recordFleetInstanceGPU(id: member.id, gpu: gpu)
        }
    }

    public func remove(id: Int) async throws {
        let label = try await database.fleetInstances().first { $0.id == id }?.label
        try await database.removeFleetInstance(id: id, at: Date())
        if let label { _ = try await database.revokeKey(id: Self.keyID(label: label), now: Date()) }
    }

    public func failedMachineIDs() async throws -> Set<Int> { try await database.failedFleetMachines() }
    public func addFailedMachine(_ id: Int) async throws { try await database.addFailedFleetMachine(id, at: Date()) }
    public func creationHold() async throws -> String? { try await database.fleetCreationHold() }
    public func setCreationHold(_ reason: String?) async throws { try await database.setFleetCreationHold(reason) }
    public func desiredSize() async throws -> Int? { try await database.fleetDesiredSize() }
    /// `swarmctl instance up|down`; nil hands the count back to `serve`'s `--fleet-size`.
    public func setDesiredSize(_ size: Int?) async throws { try await database.setFleetDesiredSize(size) }
    /// The scaler settings `swarmctl instance scale` stored for `endpoint`; nil: serve's flags alone.
    public func scalerOverride(endpoint: String = QueueEndpoints.defaultEndpoint) async throws -> ScalerOverride? {
        try await database.fleetScaler(endpoint: endpoint).flatMap(ScalerOverride.init(jsonText:))
    }

    /// nil (or an empty override) hands every setting back to serve's flags.
    public func setScalerOverride(_ override: ScalerOverride?, endpoint: String = QueueEndpoints.defaultEndpoint) async throws {
        try await database.setFleetScaler(override.flatMap { $0.isEmpty ? nil : $0.jsonText }, endpoint: endpoint)
    }

    /// The endpoint's queue for the scaler: counts, the oldest queued job's age, the workers holding a job, and when
    /// each fleet worker was last active (its idle timer's start, across restarts).
    public func fleetLoad(endpoint: String = QueueEndpoints.defaultEndpoint, now: Date = Date()) async throws -> FleetLoad {
        let counts = try await database.counts(endpoint: endpoint)
        let queued = counts[.inQueue] ?? 0
        let oldest = queued > 0 ? try await database.oldestQueuedJobs(endpoint: endpoint, limit: 1).first?.createdAt : nil
        let busy = try await database.workers(endpoint: endpoint).filter { !$0.jobIDs.isEmpty }.map(\.id)
        return FleetLoad(
            queue: QueueLoad(
                inQueue: queued,
                inProgress: counts[.inProgress] ?? 0,
                oldestQueuedAge: oldest.map { max(0, now.timeIntervalSince($0)) }
            ),
            busyWorkers: Set(busy),
            idleSince: try await database.fleetWorkersIdleSince()
        )
    }

    public func recordStopped(id: Int, at time: Date) async throws { try await database.recordFleetStop(id: id, at: time) }
    public func recordResumed(id: Int, at time: Date) async throws { try await database.recordFleetResume(id: id, at: time) }

    public func recordScalerDecision(_ text: String) async throws {
        try await database.setFleetScalerDecision(text, endpoint: QueueEndpoints.defaultEndpoint)
    }

    /// The scaler's latest decision as serve logged it; nil before serve decided anything.
    public func scalerDecision(endpoint: String = QueueEndpoints.defaultEndpoint) async throws -> String? {
        try await database.fleetScalerDecision(endpoint: endpoint)
    }

    /// The records as `swarmctl instance status` shows them, pings included.
    public func records() async throws -> [FleetInstanceRecord] { try await database.fleetInstances() }

    public func spentToday(now: Date) async throws -> Double {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return try await database.fleetSpent(since: calendar.startOfDay(for: now), now: now)
    }

    /// A new worker key for the instance labeled `label`, stored hashed; the key itself goes only into the instance's
    /// environment.
    public func mintWorkerKey(label: String, now: Date = Date()) async throws -> Secret {
        let key = APIKey.generate(scope: .worker)
        try await database.insertKey(
            StoredKey(
                id: Self.keyID(label: label),
                scope: .worker,
                hash: APIKey.hash(key.value),
                label: "vast.ai instance \(label)",
                createdAt: now
            )
        )
        return key
    }

    static func keyID(label: String) -> String { "fleet-\(label)" }

    private static func record(_ member: FleetMember) -> FleetInstanceRecord {
        FleetInstanceRecord(
            id: member.id,
            label: member.label,
            offerID: member.offerID,
            machineID: member.machineID,
            state: member.destroyRequestedAt == nil ? .active : .destroying,
            dphTotal: member.dphTotal,
            createdAt: member.createdAt,
            reboots: member.reboots,
            lastRebootAt: member.lastRebootAt,
            destroyRequestedAt: member.destroyRequestedAt,
            lastStatusAt: member.lastStatusAt,
            warnedSlowStart: member.warnedSlowStart,
            stoppedAt: member.stoppedAt,
            resumedAt: member.resumedAt,
            storageDollarsPerHour: member.storageDollarsPerHour
        )
    }

    static func member(_ record: FleetInstanceRecord) -> FleetMember {
        FleetMember(
            id: record.id,
            label: record.label,
            offerID: record.offerID,
            machineID: record.machineID,
            dphTotal: record.dphTotal,
            createdAt: record.createdAt,
            stage: record.report?.stage,
            lastPing: record.lastPing,
            logTail: record.logTail,
            reboots: record.reboots,
            lastRebootAt: record.lastRebootAt,
            destroyRequestedAt: record.destroyRequestedAt,
            lastStatusAt: record.lastStatusAt,
            warnedSlowStart: record.warnedSlowStart,
            stoppedAt: record.stoppedAt,
            resumedAt: record.resumedAt,
            storageDollarsPerHour: record.storageDollarsPerHour
        )
    }
}
