import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwarmCore

/// A client of the control plane's client API, for `swarmctl submit/status/jobs/cancel`.
public struct ControlPlaneClient: Sendable {
    public var baseURL: String
    public var endpoint: String
    public var apiKey: Secret?
    public var httpClient: HTTPClient

    /// - Parameter baseURL: the server, e.g. `http://127.0.0.1:8288` (with or without `/v2`).
    public init(baseURL: String, endpoint: String, apiKey: Secret?, httpClient: HTTPClient = .shared) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        if base.hasSuffix("/v2") { base.removeLast(3) }
        self.baseURL = base
        self.endpoint = endpoint
        self.apiKey = apiKey
        self.httpClient = httpClient
    }

    /// `POST /run` with a RunPod submit body; returns `{"id", "status"}`.
    public func submit(_ body: JSONValue) async throws(ControlPlaneClientError) -> JSONValue {
        try await send(.POST, "run", body: body)
    }

    /// `POST /run-batch`; returns the ids in order.
    public func submitBatch(_ jobs: [JSONValue]) async throws(ControlPlaneClientError) -> [String] {
        let answer = try await send(.POST, "run-batch", body: ["jobs": .array(jobs)], timeout: .seconds(120))
        guard let ids = answer["ids"]?.arrayValue?.compactMap(\.stringValue), ids.count == jobs.count else {
            throw ControlPlaneClientError(operation: "run-batch", status: nil, message: "answer has no ids list: \(answer.jsonString().prefix(200))")
        }
        return ids
    }

    /// `GET /status/{id}`, held up to `waitMs` for a final state.
    public func status(id: String, waitMs: Int? = nil) async throws(ControlPlaneClientError) -> JSONValue {
        let query = waitMs.map { "?wait=\($0)" } ?? ""
        return try await send(.GET, "status/\(Self.encode(id))\(query)", timeout: .milliseconds(Int64(waitMs ?? 0) + 30_000))
    }

    public func jobs(status: String?, limit: Int, cursor: String?) async throws(ControlPlaneClientError) -> JSONValue {
        var query = ["limit=\(limit)"]
        if let status { query.append("status=\(Self.encode(status))") }
        if let cursor { query.append("cursor=\(Self.encode(cursor))") }
        return try await send(.GET, "jobs?" + query.joined(separator: "&"))
    }

    public func cancel(id: String) async throws(ControlPlaneClientError) -> JSONValue {
        try await send(.POST, "cancel/\(Self.encode(id))")
    }

    private func send(_ method: HTTPMethod, _ path: String, body: JSONValue? = nil, timeout: Duration = .seconds(30)) async throws(ControlPlaneClientError) -> JSONValue {
        let operation = String(path.prefix { $0 != "/" && $0 != "?" })
        var request = HTTPClientRequest(url: "\(baseURL)/v2/\(endpoint)/\(path)")
        request.method = method
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey.value)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body.jsonString()))
        }
        let status: UInt
        let data: Data
        do {
            let response = try await httpClient.execute(request, timeout: .init(timeout))
            status = response.status.code
            data = Data((try await response.body.collect(upTo: 256 << 20)).readableBytesView)
        } catch {
            throw ControlPlaneClientError(operation: operation, status: nil, message: "cannot reach \(baseURL): \(error)")
        }
        let value = JSONValue.parse(data)
        guard (200..<300).contains(status) else {
            let message = value?["error"]?.stringValue ?? String(decoding: data.prefix(300), as: UTF8.self)
            throw ControlPlaneClientError(operation: operation, status: Int(status), message: message)
        }
        guard let value else {
            throw ControlPlaneClientError(operation: operation, status: Int(status), message: "answer is not JSON")
        }
        return value
    }

    private static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .urlUnreservedCharacters) ?? text
    }
}

public struct ControlPlaneClientError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var status: Int?
    public var message: String

    public var description: String {
        let hint =
            switch status {
            case 401?: " (set SWARM_API_KEY to a client key)"
            case 404?: " (check --endpoint and the job id)"
            default: ""
            }
        return "\(operation): \(status.map { "HTTP \($0): " } ?? "")\(message)\(hint)"
    }
}

extension CharacterSet {
    fileprivate static let urlUnreservedCharacters = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
}
