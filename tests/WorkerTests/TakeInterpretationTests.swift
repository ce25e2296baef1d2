import JobProtocol
import NIOCore
import SwarmCore
import Testing

@testable import Worker

/// How `HTTPQueueClient` reads a job-take answer.
@Suite struct TakeInterpretationTests {
    func take(_ status: Int, _ type: String?, _ body: String) throws(QueueError) -> TakeResult {
        try HTTPQueueClient.interpretTake(status: status, contentType: type, body: ByteBuffer(string: body))
    }

    @Test func oneJobKeepsUnknownKeys() throws {
        let result = try take(200, "application/json", #"{"id":"j1","input":{"prompt":"a cat"},"webhook":null,"extraField":7}"#)
        guard case .jobs(let jobs) = result else { Issue.record("expected jobs, got \(result)"); return }
        #expect(jobs.map(\.id) == ["j1"])
        #expect(jobs[0].input["prompt"] == "a cat")
        #expect(jobs[0].extra["extraField"] == 7)
    }

    @Test func batchArray() throws {
        let result = try take(200, "application/json; charset=utf-8", #"[{"id":"j1","input":{}},{"id":"j2","input":{"n":2}}]"#)
        #expect(result == .jobs([QueueJob(id: "j1", input: [:]), QueueJob(id: "j2", input: ["n": 2])]))
    }

    @Test func noJobAnswers() throws {
        #expect(try take(204, nil, "") == .noJob)
        #expect(try take(400, "application/json", "{}") == .noJob)
        #expect(try take(200, "text/plain", "hello") == .noJob)
        #expect(try take(200, "application/json", "") == .noJob)
        #expect(try take(429, nil, "") == .backOff(.seconds(5)))
    }

    @Test func brokenJobsAndServerErrorsAreErrors() {
        #expect(throws: QueueError.self) { try take(200, "application/json", #"{"id":"j1"}"#) }
        #expect(throws: QueueError.self) { try take(200, "application/json", "not json") }
        do {
            _ = try take(503, nil, "down")
            Issue.record("503 must be an error")
        } catch {
            #expect(error.isRetryable)
        }
        do {
            _ = try take(401, "application/json", #"{"error":"bad key"}"#)
            Issue.record("401 must be an error")
        } catch {
            #expect(error.code == .unauthorized(status: 401))
        }
        do {
            _ = try take(404, "application/json", #"{"error":"no such endpoint"}"#)
            Issue.record("404 must be an error")
        } catch {
            #expect(!error.isRetryable, "a wrong URL does not heal by retrying")
        }
    }
}
