import Foundation
import SwarmCore

/// An API answer before it becomes an HTTP response or a WebSocket frame.
struct APIReply: Sendable {
    var status: Int
    var body: JSONValue

    static func ok(_ body: JSONValue) -> APIReply { APIReply(status: 200, body: body) }
    /// A route-level failure: SwarmUI answers these with status 200 (§2).
    static func failure(_ message: String) -> APIReply { APIReply(status: 200, body: ["error": .string(message)]) }
    static func apiError(_ status: Int, id: String, _ message: String) -> APIReply {
        APIReply(status: status, body: ["error_id": .string(id), "error": .string(message)])
    }

    static let invalidSession = APIReply(
        status: 401,
        body: ["error": "Invalid session ID. You may need to refresh the page.", "error_id": "invalid_session_id"]
    )
    static let missingSession = apiError(400, id: "basic_api", "missing session id")
    static let unknownRoute = apiError(400, id: "bad_route", "Unknown API route")
    static let wrongMethod = apiError(400, id: "bad_request_method", "Invalid request method for this route")
}

extension SwarmUIEmulator {
    static let httpRoutes: Set<String> = [
        "getnewsession", "getcurrentstatus", "listbackends", "interruptall", "listt2iparams", "listmodels",
        "describemodel", "editmodelmetadata", "generatetext2image", "deleteimage", "comfygetnodetypesforbackend",
    ]
    static let webSocketRoutes: Set<String> = ["generatetext2imagews", "domodeldownloadws"]

    /// Resolves the session the way SwarmUI does: `session_id` in the body, else the `X-Session-ID` header.
    func authenticate(_ arguments: [String: JSONValue], header: String?) -> Result<String, APIReplyError> {
        guard let session = arguments["session_id"]?.looseString ?? header else { return .failure(.init(.missingSession)) }
        return isValid(session: session) ? .success(session) : .failure(.init(.invalidSession))
    }

    /// One plain-HTTP API call (route name already lower-cased, body already parsed).
    nonisolated func handleHTTP(route: String, arguments: [String: JSONValue], sessionHeader: String?) async -> APIReply {
        if Self.webSocketRoutes.contains(route) { return .wrongMethod }
        guard Self.httpRoutes.contains(route), !configuration.missingRoutes.contains(route) else { return .unknownRoute }
        if route == "getnewsession" { return .ok(await sessionJSON(newSession())) }
        let session: String
        switch await authenticate(arguments, header: sessionHeader) {
        case .success(let id): session = id
        case .failure(let error): return error.reply
        }
        switch route {
        case "getcurrentstatus":
            return .ok(await statusJSON(session: session))
        case "listbackends":
            return .ok(await backendsJSON())
        case "interruptall":
            await interruptAll(session: session)
            return .ok(["success": true])
        case "comfygetnodetypesforbackend":
            guard let backend = arguments["backend"]?.looseInt else { return .failure("Missing required parameter 'backend'") }
            return .ok(await nodeTypesJSON(backend: backend))
        case "listt2iparams":
            return .ok(await t2iParamsJSON())
        case "listmodels":
            guard let path = arguments["path"]?.looseString else { return .failure("Missing required parameter 'path'") }
            guard let depth = arguments["depth"]?.looseInt else { return .failure("Missing required parameter 'depth'") }
            let subtype = arguments["subtype"]?.looseString ?? "Stable-Diffusion"
            guard Self.subtypes.contains(subtype) else { return .failure("Invalid sub-type.") }
            return .ok(await listModels(path: path, depth: depth, subtype: subtype))
        case "describemodel":
            guard let name = arguments["modelName"]?.looseString else { return .failure("Missing required parameter 'modelName'") }
            let subtype = arguments["subtype"]?.looseString ?? "Stable-Diffusion"
            guard let model = await exactModel(name, subtype: subtype) else { return .failure("Model not found.") }
            return .ok(["model": model])
        case "editmodelmetadata":
            let required = [
                "model", "title", "author", "type", "description", "standard_width", "standard_height",
                "usage_hint", "date", "license", "trigger_phrase", "prediction_type", "tags",
            ]
            if let missing = required.first(where: { arguments[$0] == nil }) {
                return .failure("Missing required parameter '\(missing)'")
            }
            let subtype = arguments["subtype"]?.looseString ?? "Stable-Diffusion"
            let name = arguments["model"]?.looseString ?? ""
            guard await editModel(name, subtype: subtype, arguments: arguments) else { return .failure("Model not found.") }
            return .ok(["success": true])
        case "deleteimage":
            guard let path = arguments["path"]?.looseString else { return .failure("Missing required parameter 'path'") }
            return deleteOutput(path)
        default:
            return await generateOverHTTP(session: session, arguments: arguments)
        }
    }

    /// `DeleteImage`: `path` is relative to the user's output folder; one outside it is refused, as SwarmUI's
    /// CheckFilePath does, and a missing file is an error.
    private nonisolated func deleteOutput(_ path: String) -> APIReply {
        let segments = path.split(separator: "/")
        guard !path.hasPrefix("/"), !segments.isEmpty, !segments.contains("..") else { return .failure("Invalid path.") }
        let file = userOutputFile(path)
        guard FileManager.default.fileExists(atPath: file) else { return .failure("That file does not exist, cannot delete.") }
        do {
            try FileManager.default.removeItem(atPath: file)
        } catch {
            return .failure("Failed to delete the file.")
        }
        return .ok(["success": true])
    }

    private nonisolated func generateOverHTTP(session: String, arguments: [String: JSONValue]) async -> APIReply {
        let ticket = await beginGeneration(session: session, parameters: arguments)
        let reply: APIReply
        switch await plan(arguments) {
        case .failure(let rejection):
            reply = .failure(rejection.message)
        case .success(let plan):
            do {
                switch try await run(plan, ticket: ticket, batchOffset: 0, emit: { _ in }) {
                case .completed(let references): reply = .ok(["images": .array(references.map(JSONValue.string))])
                case .failed(let message): reply = .failure(message)
                }
            } catch {
                // The emulated process restarted under this request: SwarmUI would have dropped the connection.
                reply = .apiError(500, id: "internal_error", "An internal error occurred")
            }
        }
        await endGeneration(ticket, lastFrameAt: .now)
        return reply
    }
}

/// A reply that ends a call early (session problems).
struct APIReplyError: Error {
    var reply: APIReply
    init(_ reply: APIReply) { self.reply = reply }
}
