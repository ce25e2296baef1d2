import ControlPlane
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Storage
import SwarmCore
import Testing

@Suite struct OutputRoutesTests {
    static let secret = Secret("output-routes-test")

    /// A control plane keeping outputs under a fresh temporary directory.
    static func withLocalOutputs(_ test: @escaping @Sendable (Harness, String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outputs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let outputs = OutputStorageSettings(configuration: StorageConfiguration(backend: .local(directory: directory)), signingSecret: secret)
        try await withControlPlane(ControlPlaneConfiguration(longPollTimeout: .seconds(2), outputs: outputs)) { api in
            try await test(api, directory)
        }
    }

    /// Sends `body` to a link the control plane made (`http://localhost/files/...`), as the in-process client needs a path.
    static func file(
        _ api: Harness,
        _ method: HTTPRequest.Method,
        _ link: String,
        body: String? = nil
    ) async throws -> (status: HTTPResponse.Status, text: String) {
        let path = String(link.dropFirst("http://localhost".count))
        var headers: HTTPFields = [:]
        if let body { headers[.contentLength] = String(body.utf8.count) }
        let response = try await api.client.execute(uri: path, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) })
        return (response.status, String(buffer: response.body))
    }

    static func takenJob(_ api: Harness) async throws -> String {
        let id = try await api.submit()
        _ = try await api.take("w1")
        return id
    }

    @Test func heldJobGetsATargetAndItsFileRoundTrips() async throws {
        try await Self.withLocalOutputs { api, directory in
            let id = try await Self.takenJob(api)
            let content = "not really a png"
            let target = try await api.call(
                .post,
                "/v2/swarmui/job-upload/w1/\(id)",
                ["name": "out.png", "size": .int(content.utf8.count), "content_type": "image/png"],
                auth: .worker
            )
            #expect(target.status == .ok, "\(target.text)")
            let key = try #require(target["key"]?.stringValue)
            #expect(key.hasPrefix("swarmui/") && key.hasSuffix("/out.png"))
            #expect(target["method"]?.stringValue == "PUT")
            let putURL = try #require(target["url"]?.stringValue)

            let put = try await Self.file(api, .put, putURL, body: content)
            #expect(put.status == .ok, "\(put.text)")
            #expect(FileManager.default.contents(atPath: "\(directory)/\(key)") == Data(content.utf8))

            let targetJSON = try #require(target.json)
            let done = try await api.call(.post, "/v2/swarmui/job-upload/w1/\(id)/complete", ["target": targetJSON, "parts": []], auth: .worker)
            #expect(done.status == .ok, "\(done.text)")
            #expect(done["bytes"]?.intValue == content.utf8.count)
            #expect(done["key"]?.stringValue == key)
            let getURL = try #require(done["url"]?.stringValue)
            let get = try await Self.file(api, .get, getURL)
            #expect(get.status == .ok)
            #expect(get.text == content)
        }
    }

    @Test func jobNotHeldByTheWorkerGetsNoTarget() async throws {
        try await Self.withLocalOutputs { api, _ in
            let body: JSONValue = ["name": "out.png", "size": 3, "content_type": "image/png"]
            let id = try await Self.takenJob(api)
            let queued = try await api.submit()
            #expect(try await api.call(.post, "/v2/swarmui/job-upload/w1/\(queued)", body, auth: .worker).status == .conflict)
            #expect(try await api.call(.post, "/v2/swarmui/job-upload/w2/\(id)", body, auth: .worker).status == .conflict)
            #expect(try await api.call(.post, "/v2/swarmui/job-upload/w1/no-such-job", body, auth: .worker).status == .notFound)
            let bad = try await api.call(.post, "/v2/swarmui/job-upload/w1/\(id)", ["name": "out.png"], auth: .worker)
            #expect(bad.status == .badRequest)
        }
    }

    @Test func forgedExpiredOrMisusedLinksAre403() async throws {
        try await Self.withLocalOutputs { api, _ in
            let id = try await Self.takenJob(api)
            let target = try await api.call(
                .post,
                "/v2/swarmui/job-upload/w1/\(id)",
                ["name": "a.txt", "size": 2, "content_type": "text/plain"],
                auth: .worker
            )
            let putURL = try #require(target["url"]?.stringValue)
            let key = try #require(target["key"]?.stringValue)
            #expect(try await Self.file(api, .put, putURL, body: "hi").status == .ok)

            // The PUT link does not allow a GET, and a changed signature is refused.
            #expect(try await Self.file(api, .get, putURL).status == .forbidden)
            let forged = String(putURL.dropLast(4)) + "0000"
            #expect(try await Self.file(api, .put, forged, body: "no").status == .forbidden)
            #expect(try await Self.file(api, .get, "http://localhost/files/\(key)").status == .forbidden)

            let past = LocalStorage(
                directory: "/unused",
                baseURL: "http://localhost",
                signingSecret: Self.secret,
                now: { Date(timeIntervalSinceNow: -7_200) }
            )
            #expect(try await Self.file(api, .get, past.signedURL(method: "GET", key: key)).status == .forbidden)
            let current = LocalStorage(directory: "/unused", baseURL: "http://localhost", signingSecret: Self.secret)
            #expect(try await Self.file(api, .get, current.signedURL(method: "GET", key: key)).text == "hi")
        }
    }
}
