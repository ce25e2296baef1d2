import ControlPlane
import Foundation
import HTTPTypes
import JobStore
import SwarmCore
import Testing

@Suite struct ClientAPITests {
    @Test func runStatusAndResultHaveRunPodShapes() async throws {
        try await withControlPlane { api in
            let run = try await api.call(.post, "/v2/swarmui/run", ["input": ["prompt": "a cat"]])
            #expect(run.status == .ok)
            let id = try #require(run["id"]?.stringValue)
            #expect(run.json == ["id": .string(id), "status": "IN_QUEUE"])

            let queued = try await api.status(id)
            #expect(queued.json == ["id": .string(id), "status": "IN_QUEUE"])

            let job = try #require(try await api.take("w1"))
            #expect(job["id"]?.stringValue == id)
            #expect(job["input"] == ["prompt": "a cat"])
            let running = try await api.status(id)
            #expect(running["status"] == "IN_PROGRESS")
            #expect(running["workerId"] == "w1")
            #expect(running["provider"] == "vastai")
            #expect(running["delayTime"]?.intValue != nil)

            #expect(try await api.done(id, ["output": ["images": ["x.png"]]]).status == .ok)
            let done = try await api.status(id)
            #expect(done["status"] == "COMPLETED")
            #expect(done["output"] == ["images": ["x.png"]])
            #expect(done["delayTime"]?.intValue != nil)
            #expect(done["executionTime"]?.intValue != nil)
            #expect(done["workerId"] == "w1")
            #expect(done["provider"] == "vastai")
            #expect(done["falRequestId"] == nil)
        }
    }

    @Test func failedResultKeepsErrorAndOutput() async throws {
        try await withControlPlane { api in
            let id = try await api.submit()
            _ = try await api.take()
            try await api.done(id, ["output": ["details": [1, 2]], "error": "bad thing"])
            let status = try await api.status(id)
            #expect(status["status"] == "FAILED")
            #expect(status["error"] == "bad thing")
            #expect(status["output"] == ["details": [1, 2]])
        }
    }

    @Test func runsyncAnswersWithTheResultOrTheStatusAfterWait() async throws {
        try await withControlPlane { api in
            async let sync = api.call(.post, "/v2/swarmui/runsync?wait=20000", ["input": ["n": 1]])
            var job: JSONValue?
            while job == nil { job = try await api.take() }
            let id = try #require(job?["id"]?.stringValue)
            #expect(id.hasPrefix("sync-"))
            try await api.done(id, ["output": ["ok": true]])
            let answer = try await sync
            #expect(answer["status"] == "COMPLETED")
            #expect(answer["output"] == ["ok": true])

            let pending = try await api.call(.post, "/v2/swarmui/runsync?wait=1000", ["input": ["n": 2]])
            #expect(pending["status"] == "IN_QUEUE")
            #expect(pending["id"]?.stringValue != nil)
        }
    }

    @Test func statusWaitReturnsWhenTheJobEnds() async throws {
        try await withControlPlane { api in
            let id = try await api.submit()
            _ = try await api.take()
            async let waited = api.call(.get, "/v2/swarmui/status/\(id)?wait=20000")
            try await Task.sleep(for: .milliseconds(100))
            try await api.done(id, ["output": 42])
            let answer = try await waited
            #expect(answer["status"] == "COMPLETED")
            #expect(answer["output"] == 42)
        }
    }

    @Test func runBatchStoresTenThousandJobsInOrder() async throws {
        try await withControlPlane { api in
            let jobs = (0..<10_000).map { index in JSONValue.object(["input": ["n": .int(index)]]) }
            let answer = try await api.call(.post, "/v2/swarmui/run-batch", ["jobs": .array(jobs)])
            #expect(answer.status == .ok)
            let ids = try #require(answer["ids"]?.arrayValue?.compactMap { $0.stringValue })
            #expect(ids.count == 10_000)
            #expect(Set(ids).count == 10_000)
            let last = try #require(try await api.store.job(id: ids[9_999]))
            #expect(last.input == ["n": 9_999])
            let health = try await api.call(.get, "/v2/swarmui/health")
            #expect(health["jobs"]?["inQueue"] == 10_000)
            // FIFO: the first id is handed out first.
            #expect(try await api.take()?["id"]?.stringValue == ids[0])
        }
    }

    @Test func runBatchIsAllOrNothing() async throws {
        try await withControlPlane { api in
            var jobs = (0..<100).map { index in JSONValue.object(["input": ["n": .int(index)]]) }
            jobs[57] = ["input": ["n": 57], "policy": ["ttl": "soon"]]
            let answer = try await api.call(.post, "/v2/swarmui/run-batch", ["jobs": .array(jobs)])
            #expect(answer.status == .badRequest)
            #expect(answer["field"] == "jobs[57].policy.ttl")
            let tooMany = (0..<10_001).map { _ in JSONValue.object(["input": [:]]) }
            let big = try await api.call(.post, "/v2/swarmui/run-batch", ["jobs": .array(tooMany)])
            #expect(big.status == .badRequest)
            #expect(big["field"] == "jobs")
            let health = try await api.call(.get, "/v2/swarmui/health")
            #expect(health["jobs"]?["inQueue"] == 0)
        }
    }

    @Test func streamHandsOutEachChunkOnceAndProgressShowsAsOutput() async throws {
        try await withControlPlane { api in
            let id = try await api.submit()
            _ = try await api.take()
            for token in 0..<3 {
                let posted = try await api.call(
                    .post,
                    "/v2/swarmui/job-stream/w1/\(id)?gpu=SIM&isStream=false",
                    ["output": ["tok": .int(token)]],
                    auth: .worker,
                    contentType: "application/x-www-form-urlencoded"
                )
                #expect(posted.status == .ok)
            }
            let first = try await api.call(.get, "/v2/swarmui/stream/\(id)")
            #expect(first["stream"] == [["output": ["tok": 0]], ["output": ["tok": 1]], ["output": ["tok": 2]]])
            #expect(first["status"] == "IN_PROGRESS")
            let second = try await api.call(.get, "/v2/swarmui/stream/\(id)")
            #expect(second["stream"] == [])

            try await api.done(id, ["status": "IN_PROGRESS", "output": ["pct": 50]])
            let progress = try await api.status(id)
            #expect(progress["status"] == "IN_PROGRESS")
            #expect(progress["output"] == ["pct": 50])
        }
    }

    @Test func cancelRetryPurgeHealthAndListing() async throws {
        try await withControlPlane { api in
            let first = try await api.submit()
            let second = try await api.submit()
            let cancelled = try await api.call(.post, "/v2/swarmui/cancel/\(first)")
            #expect(cancelled.json == ["id": .string(first), "status": "CANCELLED"])
            let notRetryable = try await api.call(.post, "/v2/swarmui/retry/\(second)")
            #expect(notRetryable.status == .badRequest)

            let purged = try await api.call(.post, "/v2/swarmui/purge-queue")
            #expect(purged.json == ["removed": 1, "status": "completed"])

            let failing = try await api.submit()
            _ = try await api.take()
            try await api.done(failing, ["error": "boom"])
            let retried = try await api.call(.post, "/v2/swarmui/retry/\(failing)")
            #expect(retried.json == ["id": .string(failing), "status": "IN_QUEUE"])

            _ = try await api.call(.get, "/v2/swarmui/ping/w1?gpu=SIM&runpod_version=1.12.0", auth: .worker)
            let health = try await api.call(.get, "/v2/swarmui/health")
            #expect(health["jobs"]?["inQueue"] == 1)
            #expect(health["jobs"]?["cancelled"] == 1)
            #expect(health["workers"]?["idle"] == 1)

            let page = try await api.call(.get, "/v2/swarmui/jobs?limit=1")
            #expect(page["jobs"]?.arrayValue?.count == 1)
            let cursor = try #require(page["nextCursor"]?.stringValue)
            let next = try await api.call(.get, "/v2/swarmui/jobs?limit=10&cursor=\(cursor)")
            #expect(next["jobs"]?.arrayValue?.isEmpty == false)
            let onlyCancelled = try await api.call(.get, "/v2/swarmui/jobs?status=CANCELLED")
            #expect(onlyCancelled["jobs"]?.arrayValue?.map { $0["id"] } == [.string(first)])
        }
    }

    @Test func badInputIsA400NamingTheField() async throws {
        try await withControlPlane { api in
            let cases: [(String, String?, String)] = [
                ("/v2/swarmui/run", "{not json", "body"),
                ("/v2/swarmui/run", "[1,2]", "body"),
                ("/v2/swarmui/run", "{\"prompt\": \"no input key\"}", "input"),
                ("/v2/swarmui/run", "{\"input\": {}, \"webhook\": 42}", "webhook"),
                ("/v2/swarmui/run", "{\"input\": {}, \"webhook\": \"ftp://x\"}", "webhook"),
                ("/v2/swarmui/run", "{\"input\": {}, \"policy\": {\"executionTimeout\": 10}}", "policy.executionTimeout"),
                ("/v2/swarmui/run", "{\"input\": {}, \"policy\": {\"lowPriority\": \"yes\"}}", "policy.lowPriority"),
                ("/v2/swarmui/run", "{\"input\": {}, \"s3Config\": \"x\"}", "s3Config"),
                ("/v2/swarmui/runsync?wait=abc", "{\"input\": {}}", "wait"),
                ("/v2/swarmui/runsync?wait=999999999", "{\"input\": {}}", "wait"),
                ("/v2/swarmui/run-batch", "{\"jobs\": 3}", "jobs"),
                ("/v2/swarmui/run-batch", "{\"jobs\": []}", "jobs"),
            ]
            for (uri, body, field) in cases {
                let answer = try await api.call(.post, uri, rawBody: body)
                #expect(answer.status == .badRequest, "\(uri) \(body ?? "")")
                #expect(answer["field"]?.stringValue == field, "\(uri) \(body ?? ""): \(answer.text)")
                #expect(answer["error"]?.stringValue?.isEmpty == false)
            }
            let badStatus = try await api.call(.get, "/v2/swarmui/jobs?status=DONE")
            #expect(badStatus["field"] == "status")
            let badLimit = try await api.call(.get, "/v2/swarmui/jobs?limit=0")
            #expect(badLimit["field"] == "limit")
            let badCursor = try await api.call(.get, "/v2/swarmui/jobs?cursor=garbage")
            #expect(badCursor.status == .badRequest)

            let unknownEndpoint = try await api.call(.post, "/v2/nope/run", ["input": [:]])
            #expect(unknownEndpoint.status == .notFound)
            #expect(unknownEndpoint["error"]?.stringValue?.contains("nope") == true)
            let unknownRoute = try await api.call(.get, "/v2/swarmui/teleport")
            #expect(unknownRoute.status == .notFound)
            #expect(unknownRoute["error"] != nil)
            let unknownJob = try await api.call(.get, "/v2/swarmui/status/does-not-exist")
            #expect(unknownJob.status == .notFound)
            #expect(unknownJob["error"] != nil)

            let huge = "{\"input\": {\"blob\": \"" + String(repeating: "x", count: 10_100_000) + "\"}}"
            let tooLarge = try await api.call(.post, "/v2/swarmui/run", rawBody: huge)
            #expect(tooLarge.status == .contentTooLarge)
            #expect(tooLarge["error"] != nil)
        }
    }

    @Test func batchFilesReadJSONLinesAndCSV() throws {
        let lines = "{\"prompt\": \"a\"}\n\n{\"input\": {\"prompt\": \"b\"}, \"webhook\": \"http://x\"}\n"
        #expect(
            try BatchFile.jobs(from: lines, format: .jsonLines) == [
                ["input": ["prompt": "a"]], ["input": ["prompt": "b"], "webhook": "http://x"],
            ]
        )
        let csv = "prompt,steps,cfg_scale,tiled\n\"a cat, sitting\",20,7.5,true\n\"say \"\"hi\"\"\",,,false\n"
        #expect(
            try BatchFile.jobs(from: csv, format: .csv) == [
                ["input": ["prompt": "a cat, sitting", "steps": 20, "cfg_scale": 7.5, "tiled": true]],
                ["input": ["prompt": "say \"hi\"", "tiled": false]],
            ]
        )
        #expect(throws: BatchFileError.self) { try BatchFile.jobs(from: "a,b\n1,2,3\n", format: .csv) }
        #expect(throws: BatchFileError.self) { try BatchFile.jobs(from: "[1]\n", format: .jsonLines) }
    }
}

@Suite struct DocumentAndMetricsTests {
    @Test func openAPIDocumentDescribesEveryRoute() async throws {
        try await withControlPlane { api in
            let answer = try await api.call(.get, "/openapi.json", auth: .none)
            #expect(answer.status == .ok)
            let paths = try #require(answer["paths"]?.objectValue)
            let operations = [
                "run", "runsync", "run-batch", "status/{id}", "stream/{id}", "cancel/{id}", "retry/{id}", "purge-queue", "health", "jobs",
                "job-take/{worker}", "job-take-batch/{worker}", "job-done/{worker}/{job}", "job-stream/{worker}/{job}", "ping/{worker}",
                "job-stop/{worker}", "job-upload/{worker}/{job}", "job-upload/{worker}/{job}/complete",
            ]
            for operation in operations { #expect(paths["/v2/{endpoint}/\(operation)"] != nil, "\(operation)") }
            #expect(paths["/metrics"] != nil)
            #expect(paths["/healthz"] != nil)
            #expect(paths["/files/{key}"] != nil)
            #expect(try await api.call(.get, "/healthz", auth: .none).json == ["status": "ok"])
        }
    }

    @Test func metricsShowQueueDepthAndRequests() async throws {
        try await withControlPlane { api in
            _ = try await api.submit()
            _ = try await api.submit()
            let answer = try await api.call(.get, "/metrics")
            #expect(answer.status == .ok)
            #expect(answer.text.contains(#"swarm_jobs_current{endpoint="swarmui",status="IN_QUEUE"} 2"#))
            #expect(answer.text.contains(#"swarm_http_requests_total{route="/v2/{endpoint}/run",method="POST",status="200"} 2"#))
            #expect(answer.text.contains(#"swarm_jobs_submitted_total{endpoint="swarmui"} 2"#))
        }
    }
}
