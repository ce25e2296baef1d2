import Foundation
import NIOHTTP1
import SwarmCore
import Testing
import VastAI
import VastAIEmulator

extension FleetServeTests {
    /// The whole path of issue 21's accounting: a rented instance (priced by the emulator's offer) boots, its real
    /// worker runs a job through the SwarmUI emulator, and `GET /costs` then shows the job on that instance with a
    /// non-zero cost, and the day's spend on it.
    @Test func theCostsOfAJobRunByTheFleetsWorkerShowInTheCostsAPI() async throws {
        try await Self.withLoadingInstance("swarmctl-fleet-costs") { _, vast, queue, instance in
            let submitted = try await Self.call(.POST, "\(queue)/run", ["input": WorkerRig.textToImage()])
            let job = try #require(submitted.json?["id"]?.stringValue)
            await vast.emulator.finishLoading(instance: instance.id)
            var environment = instance.env.filter { $0.key.hasPrefix("SWARM_") }
            environment["SWARM_QUEUE_URL"] = queue
            let rig = try await WorkerRig.start(environment: environment)
            defer { rig.stop() }
            let finished = try await eventually("the job done by the instance's worker", timeout: .seconds(120)) {
                let answer = try await Self.call(.GET, "\(queue)/status/\(job)").json
                return answer?["status"] == "COMPLETED" || answer?["status"] == "FAILED" ? answer : nil
            }
            #expect(finished["status"] == "COMPLETED", "\(finished)")

            let jobs = try await Self.call(.GET, "\(queue)/costs?group=job")
            #expect(jobs.status == 200)
            let row = try #require(jobs.json?["jobs"]?.arrayValue?.first { $0["job_id"]?.stringValue == job }, "\(String(describing: jobs.json))")
            #expect(row["instance_id"]?.stringValue == String(instance.id) && row["status"] == "COMPLETED" && row["provider"] == "vastai")
            let dph = try #require(row["dollars_per_hour"]?.doubleValue)
            let direct = try #require(row["direct_cost_usd"]?.doubleValue)
            let loaded = try #require(row["loaded_cost_usd"]?.doubleValue)
            #expect(dph > 0 && direct > 0 && loaded > direct && (row["execution_seconds"]?.doubleValue ?? 0) > 0)

            let days = try await Self.call(.GET, "\(queue)/costs")
            let today = try #require(days.json?["days"]?.arrayValue?.last)
            #expect(today["jobs_completed"]?.intValue == 1)
            let spend = try #require(today["spend_usd"]?.doubleValue)
            #expect(spend >= loaded && (today["spend_by_instance"]?[String(instance.id)]?.doubleValue ?? 0) > 0)
            #expect((today["spend_by_state"]?["booting"]?.doubleValue ?? 0) > 0 && (today["spend_by_state"]?["busy"]?.doubleValue ?? 0) > 0)
        }
    }
}
