import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SwarmCore

/// Typed client for SwarmUI's HTTP and WebSocket API (swarmui.md). One cached session per client; every call that
/// needs a session renews it once when SwarmUI answers `invalid_session_id` (a SwarmUI restart drops sessions).
///
/// Give it an `HTTPClient` built from `SwarmUIConfiguration.httpClientConfiguration()` so that an absent SwarmUI
/// is reported at once as `.unreachable` rather than after the request deadline.
public actor SwarmUIClient {
    public nonisolated let configuration: SwarmUIConfiguration
    let httpClient: HTTPClient
    let logger: Logger

    private enum SessionState {
        case none
        /// One `GetNewSession` in flight; concurrent callers wait for it instead of creating their own.
        case fetching(Task<Result<String, SwarmUIError>, Never>)
        case ready(String)
    }

    private var sessionState = SessionState.none
    /// `server_id` from the last `GetNewSession`: a random id per SwarmUI process, so a change means it restarted.
    public private(set) var serverID: String?

    public init(configuration: SwarmUIConfiguration, httpClient: HTTPClient, logger: Logger) {
        self.configuration = configuration
        self.httpClient = httpClient
        self.logger = logger
    }

    // MARK: Sessions

    /// The session id used for calls, created with `GetNewSession` on first use.
    public func session() async throws(SwarmUIError) -> String {
        switch sessionState {
        case .ready(let id):
            return id
        case .fetching(let task):
            return try await task.value.get()
        case .none:
            let task = Task { await self.fetchSession() }
            sessionState = .fetching(task)
            let result = await task.value
            if case .fetching = sessionState {
                if case .success(let id) = result { sessionState = .ready(id) } else { sessionState = .none }
            }
            return try result.get()
        }
    }

    private func fetchSession() async -> Result<String, SwarmUIError> {
        do {
            let json = try await post("GetNewSession", [:], timeout: configuration.requestTimeout)
            guard let id = json["session_id"]?.stringValue, !id.isEmpty else {
                return .failure(SwarmUIError(.badResponse, route: "GetNewSession", detail: "no session_id in the answer"))
            }
            if let server = json["server_id"]?.stringValue, server != serverID {
                if serverID != nil { logger.info("SwarmUI restarted (new server_id \(server))") }
                serverID = server
            }
            return .success(id)
        } catch {
            return .failure(error)
        }
    }

    /// Forgets `id` unless another caller already replaced it.
    private func invalidate(_ id: String) {
        if case .ready(let current) = sessionState, current == id { sessionState = .none }
    }

    /// Runs `body` with the session; on `invalid_session_id` fetches a new session and runs it once more.
    func withSession<T: Sendable>(
        _ body: (String) async throws(SwarmUIError) -> T
    ) async throws(SwarmUIError) -> T {
        let first = try await session()
        do {
            return try await body(first)
        } catch  where error.code == .invalidSession {
            logger.info("SwarmUI no longer knows our session; creating a new one")
            invalidate(first)
            return try await body(try await session())
        }
    }

    /// A session-bound API call: `session_id` is added to `arguments`.
    func call(
        _ route: String,
        _ arguments: [String: JSONValue] = [:],
        timeout: Duration? = nil
    ) async throws(SwarmUIError) -> JSONValue {
        try await withSession { session throws(SwarmUIError) in
            var body = arguments
            body["session_id"] = .string(session)
            return try await post(route, body, timeout: timeout ?? configuration.requestTimeout)
        }
    }

    // MARK: Status and control

    /// `GetCurrentStatus`: queue counters of this session and the summary backend state.
    public func status() async throws(SwarmUIError) -> SwarmUIStatus {
        let json = try await call("GetCurrentStatus")
        guard let status = SwarmUIStatus(json: json) else {
            throw SwarmUIError(.badResponse, route: "GetCurrentStatus", detail: "no status/backend_status in the answer")
        }
        return status
    }

    /// `ListBackends` with full data, ordered by backend id.
    public func backends() async throws(SwarmUIError) -> [SwarmUIBackendInfo] {
        let json = try await call("ListBackends", ["nonreal": false, "full_data": true])
        guard let entries = json.objectValue else {
            throw SwarmUIError(.badResponse, route: "ListBackends", detail: "expected an object keyed by backend id")
        }
        return entries.values.compactMap(SwarmUIBackendInfo.init(json:)).sorted { $0.id < $1.id }
    }

    /// `ComfyGetNodeTypesForBackend` (ComfyUIWebAPI.cs at 062407c): the ComfyUI node types backend `id` registered.
    /// A backend that is not ComfyUI answers `{"error": "Unknown backend ID or not a ComfyUI backend."}`.
    public func nodeTypes(backend id: Int) async throws(SwarmUIError) -> [String] {
        let json = try await call("ComfyGetNodeTypesForBackend", ["backend": .int(id)])
        guard let types = json["node_types"]?.arrayValue else {
            throw SwarmUIError(.badResponse, route: "ComfyGetNodeTypesForBackend", detail: "no node_types list in the answer")
        }
        return types.compactMap(\.stringValue)
    }

    /// `InterruptAll` for this client's session only. The only way to stop a generation: closing its socket or
    /// cancelling the task that awaits it leaves SwarmUI working.
    public func interruptAll() async throws(SwarmUIError) {
        _ = try await call("InterruptAll", ["other_sessions": false])
    }

    /// `ListT2IParams`: parameter descriptors, groups, and model names by subtype.
    public func t2iParameters() async throws(SwarmUIError) -> JSONValue {
        try await call("ListT2IParams")
    }

    // MARK: HTTP plumbing

    /// One POST to `/API/<route>` with a JSON body (SwarmUI needs a real Content-Length), interpreted by `interpret`.
    func post(_ route: String, _ body: [String: JSONValue], timeout: Duration) async throws(SwarmUIError) -> JSONValue {
        var request = HTTPClientRequest(url: "\(configuration.baseURL)/API/\(route)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        addAuthorization(to: &request.headers)
        request.body = .bytes(ByteBuffer(string: JSONValue.object(body).jsonString()))
        logger.trace("SwarmUI POST \(route)")
        do {
            let response = try await httpClient.execute(request, timeout: .milliseconds(timeout.milliseconds))
            let bytes = try await response.body.collect(upTo: configuration.maxMessageBytes)
            return try Self.interpret(status: Int(response.status.code), body: Data(bytes.readableBytesView), route: route)
        } catch let error as SwarmUIError {
            throw error
        } catch {
            throw SwarmUIError.transport(error, route: route)
        }
    }

    func addAuthorization(to headers: inout HTTPHeaders) {
        if let token = configuration.bearerToken { headers.add(name: "Authorization", value: "Bearer \(token.value)") }
    }

    /// SwarmUI's error model (§2): JSON is parsed whatever the status, and a 200 carrying `error` is a failure.
    static func interpret(status: Int, body: Data, route: String) throws(SwarmUIError) -> JSONValue {
        guard let json = JSONValue.parse(body), json.objectValue != nil else {
            if status == 401 { throw SwarmUIError(.unauthorized, route: route, detail: "Unauthorized") }
            let text = String(decoding: body.prefix(200), as: UTF8.self)
            if (200..<300).contains(status) {
                throw SwarmUIError(.badResponse, route: route, detail: "not a JSON object: \(text)")
            }
            throw SwarmUIError(.httpStatus(status), route: route, detail: text.isEmpty ? "no body" : text)
        }
        try checkError(in: json, route: route)
        guard (200..<300).contains(status) else {
            throw SwarmUIError(.httpStatus(status), route: route, detail: json.jsonString())
        }
        return json
    }

    /// Throws when a JSON answer or WebSocket frame carries `error`/`error_id`.
    static func checkError(in json: JSONValue, route: String) throws(SwarmUIError) {
        let id = json["error_id"]?.stringValue
        let message = json["error"]?.stringValue
        guard id != nil || message != nil else { return }
        if id == "invalid_session_id" {
            throw SwarmUIError(.invalidSession, route: route, detail: message ?? "invalid session id")
        }
        let text = message ?? "error \(id ?? "")"
        if text.localizedCaseInsensitiveContains("session interrupted") {
            throw SwarmUIError(.interrupted, route: route, detail: text)
        }
        throw SwarmUIError(.routeError(id: id), route: route, detail: text)
    }
}
