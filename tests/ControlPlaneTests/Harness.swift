import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
@testable import JobStore
import Logging
import NIOCore
import SwarmCore

/// A control plane on the real SQLite store (in memory), driven in process through HummingbirdTesting.
struct Harness: Sendable {
    let client: any TestClientProtocol
    let store: any ControlPlaneStore
    /// Sent as `Authorization: Bearer <key>` unless a call says otherwise.
    var clientKey: String?
    var workerKey: String?

    struct Answer: Sendable {
        var status: HTTPResponse.Status
        var json: JSONValue?
        var text: String
        subscript(key: String) -> JSONValue? { json?[key] }
    }

    enum Auth: Equatable, Sendable { case client, worker, none, raw(String), bearer(String) }

    @discardableResult
    func call(
        _ method: HTTPRequest.Method,
        _ uri: String,
        _ body: JSONValue? = nil,
        rawBody: String? = nil,
        auth: Auth = .client,
        contentType: String = "application/json"
    ) async throws -> Answer {
        var headers: HTTPFields = [:]
        let header: String? =
            switch auth {
            case .client: clientKey.map { "Bearer \($0)" }
            case .worker: workerKey
            case .none: nil
            case .raw(let key): key
            case .bearer(let key): "Bearer \(key)"
            }
        if let header { headers[.init("Authorization")!] = header }
        let payload = rawBody ?? body?.jsonString()
        if payload != nil { headers[.init("Content-Type")!] = contentType }
        let response = try await client.execute(uri: uri, method: method, headers: headers, body: payload.map { ByteBuffer(string: $0) })
        let text = String(buffer: response.body)
        return Answer(status: response.status, json: JSONValue.parse(Data(text.utf8)), text: text)
    }

    /// Submits `input` to /run and returns the id.
    func submit(_ input: JSONValue = ["prompt": "a cat"], extra: [String: JSONValue] = [:], endpoint: String = "swarmui") async throws -> String {
        var body = extra
        body["input"] = input
        let answer = try await call(.post, "/v2/\(endpoint)/run", .object(body))
        guard answer.status == .ok, let id = answer["id"]?.stringValue else { throw HarnessError("run failed: \(answer.status) \(answer.text)") }
        return id
    }

    /// Takes one job as `worker`; nil on 204.
    func take(_ worker: String = "w1", endpoint: String = "swarmui") async throws -> JSONValue? {
        let answer = try await call(.get, "/v2/\(endpoint)/job-take/\(worker)?gpu=SIM&job_in_progress=0", auth: .worker)
        if answer.status == .noContent { return nil }
        guard answer.status == .ok else { throw HarnessError("job-take failed: \(answer.status) \(answer.text)") }
        return answer.json
    }

    /// Posts a job-done body the way the SDK does: JSON text with the form content type.
    @discardableResult
    func done(_ id: String, _ body: JSONValue, worker: String = "w1") async throws -> Answer {
        try await call(
            .post,
            "/v2/swarmui/job-done/\(worker)/\(id)?gpu=SIM&isStream=false",
            body,
            auth: .worker,
            contentType: "application/x-www-form-urlencoded"
        )
    }

    func status(_ id: String) async throws -> Answer {
        try await call(.get, "/v2/swarmui/status/\(id)")
    }

    /// Polls the job's status until `predicate` holds or `timeout` passes; returns the last answer.
    func eventually(_ id: String, timeout: Duration = .seconds(10), _ predicate: (String) -> Bool) async throws -> Answer {
        let deadline = ContinuousClock.now + timeout
        while true {
            let answer = try await status(id)
            if predicate(answer["status"]?.stringValue ?? "") || ContinuousClock.now > deadline { return answer }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

let quietLogger: Logger = {
    var logger = Logger(label: "controlplane-test")
    logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    return logger
}()

/// Runs `test` against a fresh control plane built by `buildApplication`, with its background services running:
/// on the real SQLite store (in memory), then, when `SWARM_TEST_DATABASE_URL` names a PostgreSQL server
/// (`scripts/postgres.sh` prints one), on a PostgreSQL store in a schema of its own, dropped afterwards.
func withControlPlane(
    _ configuration: ControlPlaneConfiguration = ControlPlaneConfiguration(longPollTimeout: .seconds(2)),
    clientKey: String? = nil,
    workerKey: String? = nil,
    _ test: @escaping @Sendable (Harness) async throws -> Void
) async throws {
    let sqlite = try SQLiteJobStore.inMemory()
    try await buildApplication(configuration: configuration, store: sqlite, logger: quietLogger).test(.router) { client in
        try await test(Harness(client: client, store: sqlite, clientKey: clientKey, workerKey: workerKey))
    }
    guard let url = ProcessInfo.processInfo.environment["SWARM_TEST_DATABASE_URL"], !url.isEmpty else { return }
    let postgres = try PostgresJobStore(configuration: .init(url: url, schema: "cp_\(UUID().uuidString.prefix(8).lowercased())"), logger: quietLogger)
    let app = buildApplication(configuration: configuration, store: postgres, logger: quietLogger, additionalServices: [postgres])
    try await app.test(.router) { client in
        do {
            try await test(Harness(client: client, store: postgres, clientKey: clientKey, workerKey: workerKey))
        } catch {
            try? await postgres.dropSchema()
            throw error
        }
        try await postgres.dropSchema()
    }
}
