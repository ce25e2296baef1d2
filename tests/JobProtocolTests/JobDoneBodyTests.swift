import Foundation
import JobProtocol
import SwarmCore
import Testing

@Suite struct JobDoneBodyTests {
    static let bodies: [JobDoneBody] = [
        .result(["files": [["url": "data:image/png;base64,iVBORw0KGgo=", "bytes": 8]], "seed": 42]),
        .failure("SwarmUI failed during the job; it can run again", retryable: true),
        .failure("bad input"),
        .progress(["stage": "generating", "percent": 0.5]),
        JobDoneBody(output: nil, error: nil, status: nil, stopPod: true, retryable: false),
    ]

    /// Results are written with `jsonValue` (the fast path) and read back with `Codable` (the outbox, the queue).
    @Test("the JSON written is the Codable form", arguments: bodies)
    func jsonValueIsTheCodableForm(_ body: JobDoneBody) throws {
        let written = Data(body.jsonValue.jsonString().utf8)
        #expect(try JSONDecoder().decode(JobDoneBody.self, from: written) == body)
        #expect(JSONValue.parse(try JSONEncoder().encode(body)) == body.jsonValue)
    }
}
