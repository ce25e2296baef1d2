import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import SwarmCore

extension SwarmUIClient {
    /// Opens an output for streaming: a `View/...`/`Output/...` reference is fetched over HTTP (each path segment
    /// percent-encoded; SwarmUI's references are raw text with spaces and commas), a `data:` URL is decoded.
    /// The body is read as it arrives; nothing holds the whole file.
    public func fetchOutput(_ reference: String) async throws(SwarmUIError) -> SwarmUIOutput {
        if reference.hasPrefix("data:") { return try Self.decodeDataURL(reference) }
        let path = reference.hasPrefix("/") ? String(reference.dropFirst()) : reference
        let route = path
        var request = HTTPClientRequest(url: "\(configuration.baseURL)/\(Self.percentEncodePath(path))")
        request.method = .GET
        addAuthorization(to: &request.headers)
        let response: HTTPClientResponse
        do {
            response = try await httpClient.execute(request, timeout: .milliseconds(configuration.outputTimeout.milliseconds))
        } catch {
            throw SwarmUIError.transport(error, route: route)
        }
        guard response.status == .ok else {
            let text = (try? await response.body.collect(upTo: 4096)).map { String(buffer: $0) } ?? ""
            if response.status == .unauthorized {
                throw SwarmUIError(.unauthorized, route: route, detail: text)
            }
            let hint = response.status == .notFound ? "no such output file (deleted, or the reference is wrong)" : text
            throw SwarmUIError(.httpStatus(Int(response.status.code)), route: route, detail: hint)
        }
        let contentType = response.headers.first(name: "Content-Type") ?? "application/octet-stream"
        let length = response.headers.first(name: "Content-Length").flatMap { Int64($0) }
        return SwarmUIOutput(contentType: contentType, length: length, body: response.body)
    }

    /// `DeleteImage`: removes a saved output (and SwarmUI's sidecar files for it) from the user's output folder.
    /// A data URL was never saved: nothing to do.
    public func deleteOutput(_ reference: String) async throws(SwarmUIError) {
        guard let path = Self.outputPath(of: reference) else { return }
        _ = try await call("DeleteImage", ["path": .string(path)])
    }

    /// The path `DeleteImage` takes, relative to the user's output root: `View/<user>/<path>` (or `Output/<path>`
    /// when SwarmUI does not append the user name) without its first part(s); nil for a data URL.
    static func outputPath(of reference: String) -> String? {
        if reference.hasPrefix("data:") { return nil }
        let parts = (reference.hasPrefix("/") ? reference.dropFirst() : Substring(reference)).split(separator: "/", omittingEmptySubsequences: false)
        switch parts.first {
        case "View" where parts.count > 2: return parts.dropFirst(2).joined(separator: "/")
        case "Output" where parts.count > 1: return parts.dropFirst().joined(separator: "/")
        default: return parts.joined(separator: "/")
        }
    }

    /// Percent-encodes every segment of a relative path (RFC 3986 unreserved characters stay), keeping the `/`s.
    public static func percentEncodePath(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { String($0).percentEncodedForQuery }.joined(separator: "/")
    }

    /// `data:<type>[;base64],<payload>` as a one-chunk output.
    static func decodeDataURL(_ url: String) throws(SwarmUIError) -> SwarmUIOutput {
        let route = "data URL"
        guard let comma = url.firstIndex(of: ",") else {
            throw SwarmUIError(.badResponse, route: route, detail: "no comma in the data URL")
        }
        let header = url[url.index(url.startIndex, offsetBy: 5)..<comma]
        let payload = url[url.index(after: comma)...]
        let parts = header.split(separator: ";", omittingEmptySubsequences: false)
        let contentType = parts.first.map(String.init).flatMap { $0.isEmpty ? nil : $0 } ?? "text/plain"
        let bytes: Data?
        if parts.contains("base64") {
            bytes = Data(base64Encoded: String(payload), options: .ignoreUnknownCharacters)
        } else {
            bytes = String(payload).removingPercentEncoding.map { Data($0.utf8) }
        }
        guard let bytes else { throw SwarmUIError(.badResponse, route: route, detail: "the data URL payload does not decode") }
        return SwarmUIOutput(contentType: contentType, length: Int64(bytes.count), body: OneChunk(ByteBuffer(bytes: bytes)))
    }
}

/// An async sequence of exactly one buffer (a decoded data URL).
struct OneChunk: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let buffer: ByteBuffer

    init(_ buffer: ByteBuffer) { self.buffer = buffer }

    struct AsyncIterator: AsyncIteratorProtocol {
        var buffer: ByteBuffer?
        mutating func next() async throws -> ByteBuffer? {
            defer { buffer = nil }
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(buffer: buffer) }
}
