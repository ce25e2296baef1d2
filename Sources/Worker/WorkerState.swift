import JobProtocol
import SwarmCore

import Foundation

/// What the worker is doing now, shared by the job loop, the heartbeat and the health endpoint.
extension WorkerState.Snapshot {
    /// The heartbeat report: what the fleet manager shows while an instance boots and uses to diagnose it.
    public func report(swarmUIRestarts: Int, logTail: some Collection<String>) -> WorkerReport {
        WorkerReport(
            stage: stage,
            currentJob: currentJobID,
            pendingResults: undeliveredJobIDs.count,
            jobsSucceeded: jobsSucceeded,
            jobsFailed: jobsFailed,
            swarmUIRestarts: swarmUIRestarts,
            logTail: Array(logTail)
        )
    }
}

public actor WorkerState {
    public private(set) var stage: WorkerStage = .initializing
    public private(set) var currentJobID: String?
    /// Jobs finished here whose result the queue has not acknowledged yet; pings keep their leases alive.
    public private(set) var undeliveredJobIDs: Set<String> = []
    public private(set) var jobsSucceeded = 0
    public private(set) var jobsFailed = 0
    /// Whether SwarmUI has been ready since it last (re)started; a connection failure mid-job clears it.
    public private(set) var swarmUIReady = false
    public private(set) var swarmUIEverReady = false
    /// The first boot's steps up to READY.
    public private(set) var boot = BootTimeline()

    public init() {}

    /// Marks the end of a boot step; once SwarmUI was ready (a restart later), steps are no longer the boot's.
    public func markBoot(_ step: String) {
        if !swarmUIEverReady { boot.mark(step) }
    }

    /// Everything at one instant, for `/health` and `/metrics`.
    public struct Snapshot: Sendable {
        public var stage: WorkerStage
        public var currentJobID: String?
        public var undeliveredJobIDs: Set<String>
        public var jobsSucceeded: Int
        public var jobsFailed: Int
        public var swarmUIReady: Bool
    }

    public func snapshot() -> Snapshot {
        Snapshot(
            stage: stage,
            currentJobID: currentJobID,
            undeliveredJobIDs: undeliveredJobIDs,
            jobsSucceeded: jobsSucceeded,
            jobsFailed: jobsFailed,
            swarmUIReady: swarmUIReady
        )
    }

    public func setStage(_ stage: WorkerStage) { self.stage = stage }

    public func jobStarted(_ id: String) { currentJobID = id }
    public func jobFinished(_ id: String, succeeded: Bool) {
        if currentJobID == id { currentJobID = nil }
        if succeeded { jobsSucceeded += 1 } else { jobsFailed += 1 }
    }

    public func resultPending(_ id: String) { undeliveredJobIDs.insert(id) }
    public func resultDelivered(_ id: String) { undeliveredJobIDs.remove(id) }

    /// The jobs to name in a ping: the running one and those whose results wait for the queue.
    public var jobsToReport: [String] {
        var ids = undeliveredJobIDs
        if let currentJobID { ids.insert(currentJobID) }
        return ids.sorted()
    }

    public func swarmUIBecameReady() {
        swarmUIReady = true
        swarmUIEverReady = true
        if case .error = stage {} else { stage = .ready }
    }

    public func swarmUILost() {
        swarmUIReady = false
        if case .error = stage {} else { stage = .startingApp }
    }
}

import Logging

extension Logger {
    /// This logger with the job's id attached to every line.
    func with(jobID: String) -> Logger {
        var copy = self
        copy[metadataKey: "job.id"] = "\(jobID)"
        return copy
    }
}
