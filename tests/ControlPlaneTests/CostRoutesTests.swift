@testable import ControlPlane
import Foundation
import HTTPTypes
import HummingbirdTesting
@testable import JobStore
import NIOCore
import SwarmCore
import Testing

/// `GET /v2/{endpoint}/costs`: JSON, CSV and refusals, from jobs really taken and finished through the worker API.
@Suite struct CostRoutesTests {
    static var today: String { CostArithmetic.dayName(Date()) }

    /// A fleet instance at $36/h (1 cent a second) whose worker is READY and runs one Wan job to completion.
    static func runOneJob(_ api: Harness) async throws -> String {
        let fleet = api.store
        try await fleet.insertFleetInstance(FleetInstanceRecord(id: 77, label: "swarm-a", dphTotal: 36, createdAt: Date().addingTimeInterval(-60)))
        let ping = try await api.call(.post, "/v2/swarmui/ping/swarm-a", ["stage": "ready"], auth: .worker)
        #expect(ping.status == .ok)
        let id = try await api.submit(["preset": "wan22-i2v-lightx2v", "prompt": "a cat", "width": 1280, "height": 720])
        _ = try #require(try await api.take("swarm-a"))
        try await Task.sleep(for: .milliseconds(50))
        #expect(try await api.done(id, ["output": ["video": "x.mp4"]], worker: "swarm-a").status == .ok)
        // Billing ends, so that reports asked for a moment apart agree.
        var record = try #require(try await fleet.fleetInstances().first)
        record.state = .destroying
        record.destroyRequestedAt = Date()
        try await fleet.updateFleetInstance(record)
        return id
    }

    @Test func jobsAndDaysShowTheJobsCostAndFalsPrice() async throws {
        try await withControlPlane { api in
            let id = try await Self.runOneJob(api)
            let jobs = try await api.call(.get, "/v2/swarmui/costs?group=job")
            #expect(jobs.status == .ok)
            let report = try JSONDecoder().decode(CostReport.self, from: Data(jobs.text.utf8))
            #expect(report.group == .job && report.to == Self.today && report.days.isEmpty)
            let job = try #require(report.jobs.first)
            #expect(report.jobs.count == 1 && job.jobID == id && job.status == "COMPLETED" && job.provider == "vastai")
            #expect(job.instanceID == "77" && job.dollarsPerHour == 36 && job.executionSeconds >= 0.05)
            #expect(job.directCostUSD > 0 && job.loadedCostUSD > job.directCostUSD)
            #expect(job.resolution == "720p" && job.videoSeconds == 5.0625 && job.falEquivalentUSD == 0.405)

            let days = try await api.call(.get, "/v2/swarmui/costs?from=\(Self.today)&to=\(Self.today)")
            let dayReport = try JSONDecoder().decode(CostReport.self, from: Data(days.text.utf8))
            let row = try #require(dayReport.days.first)
            #expect(dayReport.days.count == 1 && row.jobsCompleted == 1 && row.spendUSD > 0.5)  // a minute at a cent a second
            #expect(row.spendByInstance["77"] == row.spendUSD && row.falEquivalentUSD == 0.405)
            #expect(dayReport.totals.jobsCompleted == 1 && abs(dayReport.totals.savingUSD - (0.405 - row.spendUSD)) < 1e-9)
            // The wire names the web page reads.
            #expect(days.json?["days"]?.arrayValue?.first?["spend_by_state"]?["booting"] != nil && days.json?["totals"]?["fal_equivalent_usd"] != nil)
        }
    }

    @Test func csvByQueryOrAcceptAddsUpToTheJSON() async throws {
        try await withControlPlane { api in
            let id = try await Self.runOneJob(api)
            let json = try JSONDecoder().decode(
                CostReport.self,
                from: Data(try await api.call(.get, "/v2/swarmui/costs?from=2026-01-01&to=\(Self.today)").text.utf8)
            )
            let csv = try await api.call(.get, "/v2/swarmui/costs?from=2026-01-01&to=\(Self.today)&format=csv")
            #expect(csv.status == .ok)
            let lines = csv.text.split(separator: "\r\n").map(String.init)
            #expect(lines.first?.hasPrefix("day,jobs_completed,spend_usd,") == true)
            #expect(lines.count == json.days.count + 1)
            let rows = lines.dropFirst().map { $0.split(separator: ",").map(String.init) }
            let spend = rows.reduce(0) { $0 + Double($1[2])! }
            #expect(abs(spend - json.totals.spendUSD) < 1e-5 && rows.reduce(0) { $0 + Int($1[1])! } == json.totals.jobsCompleted)

            let response = try await api.client.execute(
                uri: "/v2/swarmui/costs?group=job",
                method: .get,
                headers: [.accept: "text/csv"],
                body: nil
            )
            #expect(response.status == .ok && response.headers[.contentType]?.hasPrefix("text/csv") == true)
            let jobLines = String(buffer: response.body).split(separator: "\r\n")
            #expect(
                jobLines.count == 2 && jobLines[0].hasPrefix("job_id,day,provider,")
                    && jobLines[1].hasPrefix("\(id),\(Self.today),vastai,COMPLETED,77,")
            )
        }
    }

    /// The reporter on the real store: a job whose first attempt ended before midnight and whose retry completed
    /// after it is reported on the second day with both attempts' time.
    @Test func aRetryAcrossMidnightCountsBothAttempts() async throws {
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        let midnight = CostArithmeticTests.day.addingTimeInterval(86_400)  // 2026-12-02T00:00:00Z
        try await store.insertFleetInstance(
            FleetInstanceRecord(id: 3, label: "swarm-n", dphTotal: 0.36, createdAt: midnight.addingTimeInterval(-3600))
        )
        try await store.recordAttemptsStarted([
            JobAttemptRecord(jobID: "J", attempt: 1, endpoint: "ep", workerID: "swarm-n", startedAt: midnight.addingTimeInterval(-600)),
            JobAttemptRecord(jobID: "J", attempt: 2, endpoint: "ep", workerID: "swarm-n", startedAt: midnight.addingTimeInterval(600)),
        ])
        try await store.recordAttemptEnded(jobID: "J", attempt: 1, at: midnight.addingTimeInterval(-300), outcome: "IN_QUEUE")
        try await store.recordAttemptEnded(jobID: "J", attempt: 2, at: midnight.addingTimeInterval(1200), outcome: "COMPLETED")
        let report = try await StoreCostReporter(store: store).costReport(
            endpoint: "ep",
            from: midnight,
            to: midnight,
            group: .job,
            now: midnight.addingTimeInterval(7200)
        )
        let job = try #require(report.jobs.first)
        #expect(report.jobs.count == 1 && job.day == "2026-12-02" && job.instanceID == "3")
        #expect(abs(job.executionSeconds - 900) < 1e-9 && abs(job.directCostUSD - 0.09) < 1e-9)
    }

    @Test func badParametersAre400NamingTheField() async throws {
        try await withControlPlane { api in
            for (query, field) in [
                ("from=yesterday", "from"), ("to=2026-13-01", "to"), ("group=week", "group"), ("format=xml", "format"),
                ("from=2026-12-05&to=2026-12-01", "from"), ("from=2020-01-01&to=2026-12-01", "from"),
            ] {
                let answer = try await api.call(.get, "/v2/swarmui/costs?\(query)")
                #expect(answer.status == .badRequest, "\(query)")
                #expect(answer["field"]?.stringValue == field, "\(query): \(answer.text)")
            }
        }
    }

    @Test func theCostsNeedAClientKey() async throws {
        try await withControlPlane(KeyTests.keyed, clientKey: "client-key-1", workerKey: "worker-key-1") { api in
            let anonymous = try await api.call(.get, "/v2/swarmui/costs", auth: .none)
            #expect(anonymous.status == .unauthorized)
            #expect(try await api.call(.get, "/v2/swarmui/costs", auth: .worker).status == .unauthorized)
            #expect(try await api.call(.get, "/v2/swarmui/costs").status == .ok)
            let document = try await api.call(.get, "/openapi.json", auth: .none)
            #expect(document["paths"]?["/v2/{endpoint}/costs"]?["get"] != nil)
        }
    }
}
