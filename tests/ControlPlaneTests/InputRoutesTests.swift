import ControlPlane
import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Storage
import SwarmCore
import Testing

/// `POST /v2/{endpoint}/inputs`: a client uploads a picture for `init_image` (swarmctl submit --image).
@Suite struct InputRoutesTests {
    /// A control plane with a client key, keeping files under a fresh temporary directory.
    static func withInputs(_ test: @escaping @Sendable (Harness, String) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("inputs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let outputs = OutputStorageSettings(
            configuration: StorageConfiguration(backend: .local(directory: directory)),
            signingSecret: Secret("inputs-test")
        )
        let configuration = ControlPlaneConfiguration(
            longPollTimeout: .seconds(2),
            clientKeys: [Secret("client-1")],
            workerKeys: [Secret("worker-1")],
            outputs: outputs
        )
        try await withControlPlane(configuration, clientKey: "client-1", workerKey: "worker-1") { api in
            try await test(api, directory)
        }
    }

    /// Sends `body` as the picture, with `type` as its Content-Type and the client key unless `key` is nil.
    static func upload(_ api: Harness, _ body: ByteBuffer, type: String?, key: String? = "client-1") async throws -> Harness.Answer {
        var headers: HTTPFields = [:]
        if let type { headers[.contentType] = type }
        if let key { headers[.authorization] = "Bearer \(key)" }
        let response = try await api.client.execute(uri: "/v2/swarmui/inputs", method: .post, headers: headers, body: body)
        let text = String(buffer: response.body)
        return Harness.Answer(status: response.status, json: JSONValue.parse(Data(text.utf8)), text: text)
    }

    static let picture: ByteBuffer = {
        var buffer = ByteBuffer(bytes: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        buffer.writeBytes((0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        return buffer
    }()

    @Test func storesThePictureAndAnswersALinkThatServesIt() async throws {
        try await Self.withInputs { api, directory in
            let answer = try await Self.upload(api, Self.picture, type: "image/png")
            #expect(answer.status == .ok, "\(answer.text)")
            let key = try #require(answer["key"]?.stringValue)
            #expect(key.hasPrefix("swarmui/_inputs/") && key.hasSuffix(".png"))
            #expect(answer["bytes"]?.intValue == Self.picture.readableBytes)
            let sha256 = SHA256.hash(data: Data(Self.picture.readableBytesView)).map { String(format: "%02x", $0) }.joined()
            #expect(answer["sha256"]?.stringValue == sha256)
            #expect(FileManager.default.contents(atPath: "\(directory)/\(key)") == Data(Self.picture.readableBytesView))

            // The link needs no key (a worker fetches it) and serves the picture with its type.
            let url = try #require(answer["url"]?.stringValue)
            let path = String(url.dropFirst("http://localhost".count))
            let response = try await api.client.execute(uri: path, method: .get, headers: [:], body: nil)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "image/png")
            #expect(response.body == Self.picture)
        }
    }

    @Test func refusesOtherTypesOversizedPicturesAndCallersWithoutAKey() async throws {
        try await Self.withInputs { api, directory in
            let text = try await Self.upload(api, ByteBuffer(string: "hello"), type: "text/plain")
            #expect(text.status == .unsupportedMediaType)
            #expect(text["field"] == "Content-Type")
            #expect(text["error"]?.stringValue?.contains("image/png") == true, "\(text.text)")
            #expect(try await Self.upload(api, Self.picture, type: nil).status == .unsupportedMediaType)

            let tooLarge = try await Self.upload(api, ByteBuffer(repeating: 1, count: (32 << 20) + 1), type: "image/jpeg")
            #expect(tooLarge.status == .contentTooLarge, "\(tooLarge.text)")
            #expect(tooLarge["error"]?.stringValue?.contains("32") == true, "\(tooLarge.text)")

            #expect(try await Self.upload(api, ByteBuffer(), type: "image/png").status == .badRequest)
            #expect(try await Self.upload(api, Self.picture, type: "image/png", key: nil).status == .unauthorized)
            #expect(try await Self.upload(api, Self.picture, type: "image/png", key: "worker-1").status == .unauthorized)
            // Nothing refused was stored.
            let stored =
                FileManager.default.enumerator(atPath: directory)?.allObjects.compactMap { $0 as? String }.filter {
                    $0.hasSuffix(".png") || $0.hasSuffix(".jpg")
                } ?? []
            #expect(stored.isEmpty, "\(stored)")
        }
    }
}
