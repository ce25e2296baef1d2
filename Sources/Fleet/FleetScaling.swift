import Foundation

/// What the fleet's scaler reads each round from the control plane: the settings in force and the queue.
public struct FleetScaling: Sendable {
    /// serve's flags with `swarmctl instance scale`'s stored ones on top.
    public var settings: @Sendable () async throws -> ScalerSettings
    public var load: @Sendable () async throws -> FleetLoad
    public var coldStart: ColdStart
    /// Seconds until the fleet is expected to be needed again after a scale-down.
    public var expectedIdleGap: Double
    /// A resume not READY after this many seconds has failed.
    public var resumeTimeout: Double
    /// The disk each instance rents, GB, and vast's storage price while stopped, $/GB/month.
    public var diskGB: Double
    public var storagePerGBMonth: Double

    public init(
        settings: @escaping @Sendable () async throws -> ScalerSettings,
        load: @escaping @Sendable () async throws -> FleetLoad,
        coldStart: ColdStart = ColdStart(),
        expectedIdleGap: Double = 2 * 3600,
        resumeTimeout: Double = 300,
        diskGB: Double = 100,
        storagePerGBMonth: Double = 0.15
    ) {
        self.settings = settings
        self.load = load
        self.coldStart = coldStart
        self.expectedIdleGap = expectedIdleGap
        self.resumeTimeout = resumeTimeout
        self.diskGB = diskGB
        self.storagePerGBMonth = storagePerGBMonth
    }
}

/// The queue of the fleet's endpoint, and which workers (by label, their `SWARM_WORKER_ID`) hold a job.
public struct FleetLoad: Sendable, Hashable {
    public var queue: QueueLoad
    public var busyWorkers: Set<String>
    /// By label, when each worker last ended a job or became READY, from the records: the idle timer of a worker
    /// first seen idle (after a restart of `serve`) starts there, not at the restart.
    public var idleSince: [String: Date]

    public init(queue: QueueLoad, busyWorkers: Set<String> = [], idleSince: [String: Date] = [:]) {
        self.queue = queue
        self.busyWorkers = busyWorkers
        self.idleSince = idleSince
    }
}
