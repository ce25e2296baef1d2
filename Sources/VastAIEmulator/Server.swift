import Foundation
import HTTPTypes
import Hummingbird
import Logging
// `RunningLoopbackEmulator` is part of this module's API: its users read its members without importing LoopbackServer.
@_exported import LoopbackServer
import NIOCore
import SwarmCore

/// An emulator serving on a port, as handed to `withRunning`'s body; its `baseURL` is the value for `VAST_API_URL`.
public typealias RunningVastAIEmulator = RunningLoopbackEmulator<VastAIEmulator>

extension VastAIEmulator: LoopbackEmulator {
    /// vast's API answers from nginx.
    public static let serverName = "nginx"

    /// Runs an emulator on an ephemeral port of 127.0.0.1 for the duration of `body`.
    public static func withRunning<T>(
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "vastai-emulator", factory: { _ in SwiftLogNoOpLogHandler() }),
        _ body: (RunningVastAIEmulator) async throws -> T
    ) async throws -> T {
        try await withRunningEmulator(VastAIEmulator(configuration: configuration), logger: logger, body)
    }

    public func started(baseURL: String) { setBaseURL(baseURL) }

    /// Instances' processes end with the emulator, as vast's would with the host.
    public func stopping() { shutdown() }

    /// vast's `/api/v0/...` routes and the log files at `/logs/...`.
    public nonisolated func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.post("/api/v0/bundles") { request, _ in
            try await self.call(request, isSearch: true) { body in await self.search(body ?? [:]) }
        }
        router.put("/api/v0/asks/:offer") { request, context in
            let offer = context.parameters.get("offer", as: Int.self)
            return try await self.call(request) { body in
                guard let offer else { return .failure(400, "invalid_id", "offer id must be a number") }
                return await self.create(offerID: offer, body: body ?? [:])
            }
        }
        router.get("/api/v0/instances") { request, _ in
            try await self.call(request) { _ in await self.list() }
        }
        router.get("/api/v0/instances/:id") { request, context in
            let id = context.parameters.get("id", as: Int.self)
            return try await self.call(request) { _ in
                guard let id else { return .failure(400, "invalid_id", "instance id must be a number") }
                return await self.show(id: id)
            }
        }
        router.put("/api/v0/instances/:id") { request, context in
            try await self.instanceCall(request, context) { id, body in await self.update(id: id, body: body) }
        }
        router.delete("/api/v0/instances/:id") { request, context in
            try await self.instanceCall(request, context) { id, _ in await self.destroy(id: id) }
        }
        router.put("/api/v0/instances/reboot/:id") { request, context in
            try await self.instanceCall(request, context) { id, _ in await self.reboot(id: id) }
        }
        router.put("/api/v0/instances/request_logs/:id") { request, context in
            try await self.instanceCall(request, context) { id, body in await self.requestLogs(id: id, body: body) }
        }
        router.get("/api/v0/template") { request, _ in
            let filters = request.uri.queryParameters.get("select_filters").flatMap { JSONValue.parse(Data($0.utf8)) }
            return try await self.call(request) { _ in await self.searchTemplates(filters: filters) }
        }
        router.get("/api/v0/users/current") { request, _ in
            try await self.call(request) { _ in await self.account() }
        }
        // The result_url: public storage, no key, 404 until the upload is done.
        router.get("/logs/:name") { _, context -> Response in
            guard let name = context.parameters.get("name"), let text = await self.logFile(name: name) else {
                return Response(
                    status: .notFound,
                    headers: [.contentType: "application/xml"],
                    body: ResponseBody(byteBuffer: ByteBuffer(string: "<Error><Code>NoSuchKey</Code></Error>"))
                )
            }
            return Response(status: .ok, headers: [.contentType: "text/plain"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
        addControlRoutes(to: router)
        return router
    }

    private nonisolated func instanceCall(
        _ request: Request,
        _ context: BasicRequestContext,
        _ handler: @escaping @Sendable (Int, JSONValue) async -> Reply
    ) async throws -> Response {
        let id = context.parameters.get("id", as: Int.self)
        return try await call(request) { body in
            guard let id else { return .failure(400, "invalid_id", "instance id must be a number") }
            return await handler(id, body ?? [:])
        }
    }

    /// Reads the body, records the call, applies auth and rate limits, then runs the handler.
    private nonisolated func call(
        _ request: Request,
        isSearch: Bool = false,
        _ handler: @escaping @Sendable (JSONValue?) async -> Reply
    ) async throws -> Response {
        var request = request
        let buffer = try await request.collectBody(upTo: 4 << 20)
        let body = buffer.readableBytes == 0 ? nil : JSONValue.parse(Data(buffer.readableBytesView))
        if buffer.readableBytes > 0, body == nil {
            return Self.response(.failure(400, "invalid_args", "the body is not JSON"))
        }
        let uri = request.uri.description
        let refusal = await admit(
            method: request.method.rawValue,
            uri: uri,
            body: body,
            authorization: request.headers[.authorization],
            isSearch: isSearch
        )
        if let refusal { return Self.response(refusal) }
        return Self.response(await handler(body))
    }

    static func response(_ reply: Reply) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        for (name, value) in reply.headers {
            if let field = HTTPField.Name(name) { headers[field] = value }
        }
        return Response(
            status: HTTPResponse.Status(code: reply.status),
            headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(string: reply.body.jsonString()))
        )
    }
}
