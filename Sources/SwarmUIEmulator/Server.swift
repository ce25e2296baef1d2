import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
// `RunningLoopbackEmulator` is part of this module's API: its users read its members without importing LoopbackServer.
@_exported import LoopbackServer
import NIOCore
import SwarmCore

/// An emulator serving on a port, as handed to `withRunning`'s body.
public typealias RunningEmulator = RunningLoopbackEmulator<SwarmUIEmulator>

extension SwarmUIEmulator: LoopbackEmulator {
    public static let serverName = "SwarmUI"

    /// Runs an emulator on an ephemeral port of 127.0.0.1 for the duration of `body`.
    public static func withRunning<T>(
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "swarmui-emulator", factory: { _ in SwiftLogNoOpLogHandler() }),
        _ body: (RunningEmulator) async throws -> T
    ) async throws -> T {
        let temporary = configuration.dataDirectory == nil
        let root =
            configuration.dataDirectory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("swarmui-emulator-\(UUID().uuidString)").path
        defer { if temporary { try? FileManager.default.removeItem(atPath: root) } }
        let emulator = SwarmUIEmulator(configuration: configuration, outputRoot: root + "/Output")
        return try await withRunningEmulator(emulator, logger: logger, body)
    }

    /// The Hummingbird application serving SwarmUI's routes plus `/Emulator/...` control routes.
    public nonisolated func application(
        host: String,
        port: Int,
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void
    ) -> some ApplicationProtocol {
        let router = makeRouter()
        return application(
            routes: router,
            server: .http1WebSocketUpgrade(webSocketRouter: router, configuration: .init(ws: .init(maxFrameSize: 1 << 24))),
            host: host,
            port: port,
            logger: logger,
            onListening: onListening
        )
    }

    public nonisolated func makeRouter() -> Router<BasicWebSocketRequestContext> {
        let router = Router(context: BasicWebSocketRequestContext.self)
        if let token = configuration.requiredBearerToken {
            router.add(middleware: BearerGate(expected: "Bearer \(token)"))
        }
        router.post("/API/:route") { request, context -> Response in
            let route = (context.parameters.get("route") ?? "").lowercased()
            guard request.headers[.contentType]?.lowercased().hasPrefix("application/json") == true else {
                return Self.response(APIReply.apiError(400, id: "basic_api", "Wrong content type"))
            }
            guard let length = request.headers[.contentLength].flatMap(Int.init), length > 0 else {
                return Self.response(APIReply.apiError(400, id: "basic_api", "bad content length"))
            }
            var request = request
            let body = try await request.collectBody(upTo: 200 << 20)
            guard case .object(let arguments)? = JSONValue.parse(Data(body.readableBytesView)) else {
                return Self.response(APIReply.apiError(400, id: "basic_api", "null input"))
            }
            let sessionHeader = request.headers[HTTPField.Name("X-Session-ID")!]
            return Self.response(await self.handleHTTP(route: route, arguments: arguments, sessionHeader: sessionHeader))
        }
        router.ws("/API/:route") { inbound, outbound, context in
            let route = (context.requestContext.parameters.get("route") ?? "").lowercased()
            let sessionHeader = context.request.headers[HTTPField.Name("X-Session-ID")!]
            try await self.handleWebSocket(route: route, sessionHeader: sessionHeader, inbound: inbound, outbound: outbound)
        }
        router.get("/View/**") { _, context -> Response in
            try await self.serveOutput(segments: context.parameters.getCatchAll(), context: context)
        }
        addControlRoutes(to: router)
        return router
    }

    static func response(_ reply: APIReply) -> Response {
        Response(
            status: HTTPResponse.Status(code: reply.status),
            headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: reply.body.jsonString()))
        )
    }

    /// `GET /View/<user>/<path>`: segments arrive percent-encoded and are decoded one by one, like a web server.
    private nonisolated func serveOutput(segments: [Substring], context: BasicWebSocketRequestContext) async throws -> Response {
        let decoded = segments.map { $0.removingPercentEncoding }
        guard decoded.count >= 2, decoded.allSatisfy({ $0 != nil && $0 != ".." && $0 != "." }) else {
            throw HTTPError(.notFound)
        }
        let path = outputRoot + "/" + decoded.compactMap { $0 }.joined(separator: "/")
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            (attributes[.type] as? FileAttributeType) == .typeRegular,
            let size = (attributes[.size] as? NSNumber)?.intValue
        else { throw HTTPError(.notFound) }
        let ext = String(decoded.last??.split(separator: ".").last ?? "")
        let body = try await FileIO().loadFile(path: path, context: context)
        return Response(
            status: .ok,
            headers: [.contentType: OutputFiles.contentType(forExtension: ext), .contentLength: String(size)],
            body: body
        )
    }
}

/// `Network.RequiredAuthorization` (§3): an exact header match or a plain-text 401. The emulator's own control
/// routes stay open so a test harness can always steer it.
struct BearerGate: RouterMiddleware {
    typealias Context = BasicWebSocketRequestContext
    let expected: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path.hasPrefix("/Emulator/") || request.headers[.authorization] == expected {
            return try await next(request, context)
        }
        return Response(
            status: .unauthorized,
            headers: [.contentType: "text/plain; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: "Unauthorized"))
        )
    }
}
