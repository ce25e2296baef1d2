import Foundation
import Hummingbird
import JobStore
import Logging
import NIOCore
import SwarmCore

/// An error answered as JSON, `{"error": "...", "field": "..."}`, so that every failure a client or worker sees says
/// what is wrong and, for bad input, which field and how to fix it.
public struct APIError: Error, HTTPResponseError, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    /// The request field at fault (`input`, `policy.ttl`, `wait`...), for 400s.
    public var field: String?

    public init(_ status: HTTPResponse.Status, _ message: String, field: String? = nil) {
        self.status = status
        self.message = message
        self.field = field
    }

    public static func badRequest(field: String, _ message: String) -> APIError {
        APIError(.badRequest, "\(field): \(message)", field: field)
    }

    public static func notFound(_ message: String) -> APIError { APIError(.notFound, message) }

    public static func unauthorized(_ message: String) -> APIError { APIError(.unauthorized, message) }

    public var description: String { "HTTP \(status.code): \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var body: [String: JSONValue] = ["error": .string(message)]
        if let field { body["field"] = .string(field) }
        return Response.json(.object(body), status: status)
    }
}

extension Response {
    /// A JSON response with sorted keys (stable output for clients and tests).
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        var buffer = ByteBuffer()
        buffer.writeString(value.jsonString())
        return json(buffer, status: status)
    }

    /// A wire type (`QueueJob`, `JobsToStop`) encoded as JSON.
    static func json(encoding value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return json(ByteBuffer(bytes: try encoder.encode(value)), status: .ok)
    }

    private static func json(_ buffer: ByteBuffer, status: HTTPResponse.Status) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json", .contentLength: String(buffer.readableBytes)],
            body: .init(byteBuffer: buffer)
        )
    }
}

/// Turns every error into a JSON answer: Hummingbird's own (unknown route, body too large), store failures and
/// anything unexpected, which is logged and answered as 500 without leaking details.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch let error as HTTPError {
            let message: String
            switch error.status {
            case .notFound: message = error.body ?? "no route \(request.method) \(request.uri.path); the API is described at /openapi.json"
            case .contentTooLarge: message = "request body too large; see the size limits in /openapi.json"
            default: message = error.body ?? error.status.reasonPhrase
            }
            return try APIError(error.status, message).response(from: request, context: context)
        } catch let error as any HTTPResponseError {
            return try APIError(error.status, error.status.reasonPhrase).response(from: request, context: context)
        } catch let error as JobStoreError {
            context.logger.error("store failure", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            let status: HTTPResponse.Status = error.code == .unavailable ? .serviceUnavailable : .internalServerError
            return try APIError(status, "storage error: \(error.operation) failed; the server log has details").response(
                from: request,
                context: context
            )
        } catch {
            context.logger.error("unexpected failure", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            return try APIError(.internalServerError, "internal error; the server log has details").response(from: request, context: context)
        }
    }
}
