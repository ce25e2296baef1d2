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

    /// `GET /costs`: the `CostReport` JSON for the UTC days `from`…`to` (`YYYY-MM-DD`), grouped by `group`.
    public func costs(from: String, to: String, group: String) async throws(ControlPlaneClientError) -> JSONValue {
        try await send(.GET, "costs?from=\(Self.encode(from))&to=\(Self.encode(to))&group=\(Self.encode(group))")
    }

    public func cancel(id: String) async throws(ControlPlaneClientError) -> JSONValue {
        try await send(.POST, "cancel/\(Self.encode(id))")
    }

    /// The image types `uploadInput` sends, by file extension.
    public static let imageTypes = ["png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"]

    /// `POST /inputs` with the image file at `path`, streamed; returns `{"url", "key", "bytes", "sha256", "content_type"}`,
    /// whose url a job names as its `init_image`.
    public func uploadInput(path: String) async throws(ControlPlaneClientError) -> JSONValue {
        let ext = (path as NSString).pathExtension.lowercased()
        guard let type = Self.imageTypes[ext] else {
            throw ControlPlaneClientError(operation: "inputs", status: nil, message: "\(path) is not a .png, .jpg, .webp or .gif image")
        }
        guard let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber,
            let handle = FileHandle(forReadingAtPath: path)
        else {
            throw ControlPlaneClientError(operation: "inputs", status: nil, message: "cannot read \(path)")
        }
        defer { try? handle.close() }
        let body = HTTPClientRequest.Body.stream(FileChunks(handle: handle), length: .known(size.int64Value))
        return try await send(.POST, "inputs", body: body, contentType: type, timeout: .seconds(300))
    }

    private func send(
        _ method: HTTPMethod,
        _ path: String,
        body: JSONValue? = nil,
        timeout: Duration = .seconds(30)
    ) async throws(ControlPlaneClientError) -> JSONValue {
        try await send(
            method,
            path,
            body: body.map { .bytes(ByteBuffer(string: $0.jsonString())) },
            contentType: body == nil ? nil : "application/json",
            timeout: timeout
        )
    }

    private func send(
        _ method: HTTPMethod,
        _ path: String,
        body: HTTPClientRequest.Body?,
        contentType: String?,
        timeout: Duration
    ) async throws(ControlPlaneClientError) -> JSONValue {
        let operation = String(path.prefix { $0 != "/" && $0 != "?" })
        var request = HTTPClientRequest(url: "\(baseURL)/v2/\(endpoint)/\(path)")
        request.method = method
        if let apiKey { request.headers.add(name: "Authorization", value: "Bearer \(apiKey.value)") }
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        if let body { request.body = body }
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

/// A file as 1 MiB buffers, read as the request body goes out.
struct FileChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let handle: FileHandle

    struct AsyncIterator: AsyncIteratorProtocol {
        let handle: FileHandle
        mutating func next() async throws -> ByteBuffer? {
            guard let data = try handle.read(upToCount: 1 << 20), !data.isEmpty else { return nil }
            return ByteBuffer(bytes: data)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(handle: handle) }
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
