import Foundation
import NIOHTTP1
import SwarmCore
import Testing
import VastAI
import VastAIEmulator

extension FleetServeTests {
    /// The whole path of issue 21's accounting, after `theInstancesRealWorkerTakesTheQueuedJobOnceItBoots`: the rented
    /// instance (priced by the emulator's offer) booted and its real worker ran `job` through the SwarmUI emulator;
    /// `GET /costs` then shows the job on that instance with a non-zero cost, and the day's spend on it.
    static func expectCosts(queue: String, job: String, instance: Int) async throws {
        let jobs = try await Self.call(.GET, "\(queue)/costs?group=job")
        #expect(jobs.status == 200)
        let row = try #require(jobs.json?["jobs"]?.arrayValue?.first { $0["job_id"]?.stringValue == job }, "\(String(describing: jobs.json))")
        #expect(row["instance_id"]?.stringValue == String(instance) && row["status"] == "COMPLETED" && row["provider"] == "vastai")
        let dph = try #require(row["dollars_per_hour"]?.doubleValue)
        let direct = try #require(row["direct_cost_usd"]?.doubleValue)
        let loaded = try #require(row["loaded_cost_usd"]?.doubleValue)
        // The GPU vast named for the instance (recorded by the fleet's reconcile rounds).
        #expect(row["gpu"]?.stringValue?.isEmpty == false, "\(row)")
        #expect(dph > 0 && direct > 0 && loaded > direct && (row["execution_seconds"]?.doubleValue ?? 0) > 0)

        let days = try await Self.call(.GET, "\(queue)/costs")
        let today = try #require(days.json?["days"]?.arrayValue?.last)
        #expect(today["jobs_completed"]?.intValue == 1)
        let spend = try #require(today["spend_usd"]?.doubleValue)
        #expect(spend >= loaded && (today["spend_by_instance"]?[String(instance)]?.doubleValue ?? 0) > 0)
        #expect((today["spend_by_state"]?["booting"]?.doubleValue ?? 0) > 0 && (today["spend_by_state"]?["busy"]?.doubleValue ?? 0) > 0)
    }
}
