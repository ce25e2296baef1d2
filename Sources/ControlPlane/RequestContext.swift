import Foundation
import Hummingbird
import NIOCore
import SwarmCore

/// The request context of the control plane's routes, with a small default body limit: routes that take larger
/// bodies say how large with `readJSON(limit:)`.
public struct ControlPlaneRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }

    public var maxUploadSize: Int { 1 << 20 }
}

extension Request {
    /// The body parsed as JSON whatever the Content-Type says (the SDK posts JSON as form data); nil when empty.
    mutating func readJSON(limit: Int, what: String = "body") async throws -> JSONValue? {
        let buffer: ByteBuffer
        do {
            buffer = try await collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, "\(what): larger than the \(formatBytes(Int64(limit))) limit of this route", field: what)
        }
        guard buffer.readableBytes > 0 else { return nil }
        do {
            return try JSONValue(parsing: Data(buffer.readableBytesView))
        } catch {
            throw APIError.badRequest(field: what, "not valid JSON (\(error)); send a JSON object such as {\"input\": {...}}")
        }
    }

    /// A query parameter as an integer within `range`; nil when absent.
    func integerQuery(_ name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = uri.queryParameters.get(name) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw APIError.badRequest(field: name, "'\(text)' is not a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }
}

extension ControlPlaneRequestContext {
    /// The `{endpoint}` path segment, known to this server.
    func endpoint(in configuration: ControlPlaneConfiguration) throws -> String {
        let name = try parameters.require("endpoint")
        guard configuration.endpoints.contains(name) else {
            let known = configuration.endpoints.sorted().joined(separator: ", ")
            throw APIError.notFound("no endpoint '\(name)'; this server has: \(known)")
        }
        return name
    }

    /// A path id, cut at the first `&`: a worker whose URL template lacks the `?` (runpod.md §1.2) sends
    /// `<id>&isStream=false` as the last path segment.
    func pathID(_ name: String) throws -> String {
        let raw = try parameters.require(name)
        let id = String(raw.prefix { $0 != "&" })
        guard !id.isEmpty, id.utf8.count <= 200 else { throw APIError.badRequest(field: name, "must be 1 to 200 characters") }
        return id
    }
}
