import Foundation
import HTTPTypes
import Hummingbird
import Logging
// `RunningLoopbackEmulator` is part of this module's API: its users read its members without importing LoopbackServer.
@_exported import LoopbackServer
import NIOCore
import SwarmCore

/// An emulator serving on a port, as handed to `withRunning`'s body; its `baseURL` is the value for `--fal-url`.
public typealias RunningFalEmulator = RunningLoopbackEmulator<FalEmulator>

extension FalEmulator: LoopbackEmulator {
    public static let serverName = "fal-emulator"

    /// Runs an emulator on an ephemeral port of 127.0.0.1 for the duration of `body`.
    public static func withRunning<T>(
        configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "fal-emulator", factory: { _ in SwiftLogNoOpLogHandler() }),
        _ body: (RunningFalEmulator) async throws -> T
    ) async throws -> T {
        try await withRunningEmulator(try FalEmulator(configuration: configuration), logger: logger, body)
    }

    public func started(baseURL: String) { setBaseURL(baseURL) }

    public nonisolated func makeRouter() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        // The CDN: public, no key, like v3.fal.media. Streamed from the file.
        router.get("/cdn/:name") { _, context -> Response in
            let name = context.parameters.get("name") ?? ""
            let id = name.hasSuffix(".mp4") ? String(name.dropLast(4)) : name
            let url = self.outputFile(requestID: id)
            guard !id.contains("/"), !id.contains(".."), let handle = try? FileHandle(forReadingFrom: url) else {
                return Response(status: .notFound, body: ResponseBody(byteBuffer: ByteBuffer(string: "not found")))
            }
            let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
            let body = ResponseBody(contentLength: size) { writer in
                defer { try? handle.close() }
                while let chunk = try handle.read(upToCount: 64 << 10), !chunk.isEmpty {
                    try await writer.write(ByteBuffer(bytes: chunk))
                }
                try await writer.finish(nil)
            }
            return Response(status: .ok, headers: [.contentType: "video/mp4"], body: body)
        }
        router.get("/emulator/charges") { _, _ -> Response in
            let charges = await self.charged()
            let body: JSONValue = [
                "total_usd": .double(charges.reduce(0) { $0 + $1.dollars }),
                "requests": .array(charges.map { ["request_id": .string($0.requestID), "app": .string($0.app), "cost_usd": .double($0.dollars)] }),
                "submitted": .int(await self.submittedCount()),
            ]
            return Self.response(Reply(status: 200, body: body))
        }
        router.post("/emulator/fail-next") { request, _ -> Response in
            let message = request.uri.queryParameters.get("message") ?? "emulated runner failure"
            await self.failNext(message)
            return Self.response(Reply(status: 200, body: ["ok": true]))
        }
        router.post("/emulator/latency") { request, _ -> Response in
            let ms = request.uri.queryParameters.get("ms", as: Int.self) ?? 0
            await self.setLatency(.milliseconds(ms))
            return Self.response(Reply(status: 200, body: ["ok": true]))
        }
        for method in [HTTPRequest.Method.get, .post, .put] {
            router.on("/**", method: method) { request, context -> Response in
                try await self.queueCall(request, segments: context.parameters.getCatchAll().map(String.init))
            }
        }
        return router
    }

    /// `POST /{app}` submits; `GET …/requests/{id}[/status]` and `PUT …/requests/{id}/cancel` read and cancel, with
    /// or without the app's sub-path.
    private nonisolated func queueCall(_ request: Request, segments: [String]) async throws -> Response {
        var request = request
        let buffer = try await request.collectBody(upTo: 16 << 20)
        let latency = await self.latency()
        if latency > .zero { try await Task.sleep(for: latency) }
        if let refusal = await authorize(request.headers[.authorization]) { return Self.response(refusal) }
        if let index = segments.firstIndex(of: "requests"), index >= 2, index + 1 < segments.count {
            let id = segments[index + 1]
            let rest = Array(segments[(index + 2)...])
            switch (request.method, rest) {
            case (.get, []): return Self.response(await result(id: id))
            case (.get, ["status"]):
                let logs = request.uri.queryParameters.get("logs").map { $0 == "1" || $0 == "true" } ?? false
                return Self.response(await status(id: id, logs: logs))
            case (.put, ["cancel"]): return Self.response(await cancel(id: id))
            default: break
            }
        } else if request.method == .post {
            let body = buffer.readableBytes == 0 ? nil : JSONValue.parse(Data(buffer.readableBytesView))
            if buffer.readableBytes > 0, body == nil {
                return Self.response(Self.invalid(["body"], "the body is not JSON", "value_error.jsondecode"))
            }
            return Self.response(
                try await submit(app: segments.joined(separator: "/"), body: body, webhook: request.uri.queryParameters.get("fal_webhook"))
            )
        }
        return Self.response(Reply(status: 404, body: ["detail": "Not found", "error_type": "not_found"]))
    }

    static func response(_ reply: Reply) -> Response {
        Response(
            status: HTTPResponse.Status(code: reply.status),
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: reply.body.jsonString()))
        )
    }
}
