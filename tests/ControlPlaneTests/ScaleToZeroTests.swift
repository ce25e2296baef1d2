import ControlPlane
import Foundation
import HTTPTypes
import JobProtocol
import JobStore
import SwarmCore
import Testing

/// With the fleet scaled to zero, jobs wait, and the client learns that a worker is starting and when.
@Suite struct ScaleToZeroTests {
    @Test func aQueuedJobSaysAWorkerIsStartingAndHealthCountsStoppedInstances() async throws {
        try await withControlPlane { api in
            // No worker and no fleet: the job waits, in RunPod's shape alone.
            let lonely = try await api.submit()
            let waiting = try await api.call(.get, "/v2/swarmui/status/\(lonely)")
            #expect(waiting["status"] == "IN_QUEUE")
            #expect(waiting["workerStatus"] == nil)
            #expect(waiting["estimatedStartSeconds"] == nil)

            // The scaler stopped the fleet's one instance: a resume takes SwarmUI's boot.
            let fleet = api.store
            let now = Date()
            try await fleet.insertFleetInstance(FleetInstanceRecord(id: 9, label: "swarm-s", dphTotal: 0.4, createdAt: now.addingTimeInterval(-7200)))
            var record = try #require(try await fleet.fleetInstances().first)
            record.stoppedAt = now.addingTimeInterval(-600)
            try await fleet.updateFleetInstance(record)
            let stopped = try await api.call(.get, "/v2/swarmui/status/\(lonely)")
            #expect(stopped["workerStatus"] == "starting")
            #expect(stopped["estimatedStartSeconds"] == 90)
            var health = try await api.call(.get, "/v2/swarmui/health")
            #expect(health["workers"] == ["idle": 0, "running": 0, "initializing": 0, "throttled": 0, "unhealthy": 0, "stopped": 1])

            // Resumed 30 s ago, its worker not heard from since: initializing, about 60 s left.
            record.stoppedAt = nil
            record.resumedAt = now.addingTimeInterval(-30)
            try await fleet.updateFleetInstance(record)
            let resuming = try await api.call(.get, "/v2/swarmui/status/\(lonely)")
            #expect(resuming["workerStatus"] == "starting")
            let left = try #require(resuming["estimatedStartSeconds"]?.intValue)
            #expect((59...61).contains(left))
            health = try await api.call(.get, "/v2/swarmui/health")
            #expect(health["workers"]?["initializing"] == 1 && health["workers"]?["stopped"] == 0)

            // runsync's caller is told as much when its wait ends with the job still queued.
            let sync = try await api.call(.post, "/v2/swarmui/runsync?wait=1000", ["input": ["prompt": "a dog"]])
            #expect(sync["status"] == "IN_QUEUE")
            #expect(sync["workerStatus"] == "starting")
            #expect(sync["estimatedStartSeconds"] != nil)

            // Once its worker is READY, the note goes: RunPod's shape alone.
            try await api.store.heartbeat(
                workerID: "swarm-s",
                endpoint: "swarmui",
                jobIDs: [],
                leaseUntil: now.addingTimeInterval(300),
                report: WorkerReport(stage: .ready),
                now: Date()
            )
            let ready = try await api.call(.get, "/v2/swarmui/status/\(lonely)")
            #expect(ready["workerStatus"] == nil)
            health = try await api.call(.get, "/v2/swarmui/health")
            #expect(health["workers"] == ["idle": 1, "running": 0, "initializing": 0, "throttled": 0, "unhealthy": 0, "stopped": 0])

            // A worker still downloading its models is initializing, not idle.
            try await api.store.heartbeat(
                workerID: "swarm-t",
                endpoint: "swarmui",
                jobIDs: [],
                leaseUntil: now.addingTimeInterval(300),
                report: WorkerReport(stage: .downloading(DownloadProgress(doneBytes: 1, totalBytes: 10))),
                now: Date()
            )
            health = try await api.call(.get, "/v2/swarmui/health")
            #expect(health["workers"]?["initializing"] == 1 && health["workers"]?["idle"] == 1)
        }
    }
}
