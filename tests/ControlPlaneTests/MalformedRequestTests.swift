import ControlPlane
import Foundation
import HTTPTypes
import SwarmCore
import Testing

/// A thousand malformed requests across every route: wrong types, broken JSON, deep nesting, huge bodies, unknown
/// ids, bad query values, missing and wrong-scope keys. None may get a 5xx, and every error must be JSON that says
/// what is wrong.
@Suite struct MalformedRequestTests {
    /// A fixed seed, so that a failure can be replayed.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let routes: [(HTTPRequest.Method, String, Harness.Auth)] = [
        (.post, "run", .client), (.post, "runsync?wait=abc", .client), (.post, "runsync?wait=5", .client), (.post, "run-batch", .client),
        (.get, "status/unknown-id", .client), (.get, "status/x?wait=-4", .client), (.get, "stream/unknown-id", .client),
        (.post, "cancel/unknown-id", .client), (.post, "retry/unknown-id", .client), (.get, "jobs?status=LOST", .client),
        (.get, "jobs?limit=999999", .client), (.get, "jobs?cursor=%FF%FE", .client), (.get, "health", .client),
        (.get, "job-take/w1", .worker), (.get, "job-take-batch/w1?batch_size=0", .worker), (.get, "job-take-batch/w1?batch_size=x", .worker),
        (.post, "job-done/w1/unknown-id", .worker), (.post, "job-stream/w1/unknown-id", .worker), (.post, "ping/w1?job_id=%2C%2C", .worker),
        (.get, "job-stop/w1", .worker), (.post, "teleport", .client), (.delete, "run", .client),
    ]

    static let bodies: [String] = [
        "", "null", "[]", "123", "\"text\"", "{", "}", "{\"input\":", "{\"input\": null}", "{\"input\": {}, \"webhook\": []}",
        "{\"input\": {}, \"webhook\": \"not a url\"}", "{\"input\": {}, \"policy\": []}", "{\"input\": {}, \"policy\": {\"ttl\": -1}}",
        "{\"input\": {}, \"policy\": {\"executionTimeout\": 1.5}}", "{\"input\": {}, \"policy\": {\"ttl\": 1e300}}",
        "{\"input\": {}, \"s3Config\": 7}", "{\"jobs\": {}}", "{\"jobs\": [1, 2]}", "{\"jobs\": [{\"input\": {}}, null]}",
        "{\"output\": 1, \"error\": {\"nested\": true}, \"status\": 5}", "{\"status\": \"IN_PROGRESS\"}", "{\"stopPod\": \"yes\"}",
        "\u{FEFF}{\"input\": {}}", "{\"input\": \"\u{0000}\"}", "[{\"input\": {}}]",
    ]

    @Test func aThousandMalformedRequestsGetJSONErrorsAndNo5xx() async throws {
        let configuration = ControlPlaneConfiguration(
            longPollTimeout: .milliseconds(20),
            clientKeys: [Secret("client-key")],
            workerKeys: [Secret("worker-key")]
        )
        try await withControlPlane(configuration, clientKey: "client-key", workerKey: "worker-key") { api in
            var random = SplitMix(state: 2026)
            let deep = String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000)
            let huge = "{\"input\": \"" + String(repeating: "a", count: 21_000_000) + "\"}"
            for index in 0..<1_000 {
                let (method, path, scope) = Self.routes.randomElement(using: &random)!
                let auth: Harness.Auth =
                    switch Int.random(in: 0..<10, using: &random) {
                    case 0: .none
                    case 1: .bearer("wrong-key")
                    case 2: scope == .client ? .raw("worker-key") : .bearer("client-key")
                    default: scope
                    }
                let body: String? =
                    switch index {
                    case 10, 500: deep
                    case 20, 700: huge
                    default: method == .get ? nil : Self.bodies.randomElement(using: &random)!
                    }
                let answer = try await api.call(method, "/v2/swarmui/\(path)", rawBody: body, auth: auth)
                #expect(answer.status.code < 500, "\(method) \(path) \(body?.prefix(60) ?? ""): \(answer.status) \(answer.text.prefix(200))")
                if answer.status.code >= 400 {
                    #expect(answer["error"]?.stringValue?.isEmpty == false, "\(method) \(path): \(answer.text.prefix(200))")
                }
            }
        }
    }
}
