import AsyncHTTPClient
import FalEmulator
import Foundation
import NIOCore
import NIOHTTP1
import SwarmCore
import Testing

/// The emulator keeps fal.ai's protocol facts, since forwarding is tested against it.
@Suite struct FalEmulatorTests {
    static let app = "fal-ai/wan/v2.2-a14b/image-to-video"
    static let input: JSONValue = ["prompt": "a cat", "image_url": "https://example.com/cat.png", "num_frames": 81, "resolution": "480p"]

    struct Answer {
        var status: Int
        var json: JSONValue
        var bytes: [UInt8]
    }

    func call(_ method: HTTPMethod, _ url: String, key: String? = "emulated-fal-key", _ body: JSONValue? = nil) async throws -> Answer {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let key { request.headers.add(name: "Authorization", value: "Key \(key)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body.jsonString()))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let buffer = try await response.body.collect(upTo: 8 << 20)
        let bytes = Array(buffer.readableBytesView)
        return Answer(status: Int(response.status.code), json: JSONValue.parse(Data(bytes)) ?? .null, bytes: bytes)
    }

    @Test func submitQueuesRunsCompletesChargesAndServesTheVideo() async throws {
        try await FalEmulator.withRunning(configuration: .init(queueTime: .milliseconds(200), runTime: .milliseconds(300), outputBytes: 100_000)) {
            fal in
            let submitted = try await call(.POST, "\(fal.baseURL)/\(Self.app)", Self.input)
            #expect(submitted.status == 200)
            #expect(submitted.json["status"] == "IN_QUEUE")
            #expect(submitted.json["queue_position"]?.intValue == 0)
            let id = try #require(submitted.json["request_id"]?.stringValue)
            let statusURL = try #require(submitted.json["status_url"]?.stringValue)
            // Handles drop the app's sub-path.
            #expect(statusURL == "\(fal.baseURL)/fal-ai/wan/requests/\(id)/status")

            var seen: [String] = []
            var final: JSONValue = .null
            for _ in 0..<100 {
                let status = try await call(.GET, statusURL + "?logs=1")
                let name = status.json["status"]?.stringValue ?? "?"
                if seen.last != name { seen.append(name) }
                if name == "IN_PROGRESS" { #expect(status.json["logs"]?.arrayValue?.isEmpty == false) }
                if name == "COMPLETED" { final = status.json; break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(seen == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"])
            #expect(final["metrics"]?["inference_time"] != nil)
            #expect(final["error"] == nil)

            let result = try await call(.GET, try #require(submitted.json["response_url"]?.stringValue))
            #expect(result.status == 200)
            let url = try #require(result.json["video"]?["url"]?.stringValue)
            #expect(result.json["video"]?["file_size"]?.intValue == 100_000)
            let video = try await call(.GET, url, key: nil)
            #expect(video.status == 200)
            #expect(video.bytes.count == 100_000)
            #expect(Array(video.bytes[4..<8]) == Array("ftyp".utf8))
            #expect(video.bytes == Array(try Data(contentsOf: fal.emulator.outputFile(requestID: id))))

            // 81 frames at 480p: 81/16 s × $0.04.
            let charged = try await call(.GET, "\(fal.baseURL)/emulator/charges", key: nil)
            #expect(charged.json["requests"]?.arrayValue?.count == 1)
            #expect(abs((charged.json["total_usd"]?.doubleValue ?? 0) - 0.2025) < 1e-9)
            // Reading again charges nothing more.
            _ = try await call(.GET, statusURL)
            #expect(await fal.emulator.charged().count == 1)
            #expect(try await call(.PUT, "\(fal.baseURL)/fal-ai/wan/requests/\(id)/cancel").status == 400)
        }
    }

    @Test func refusesWrongKeysBadFieldsAndUnknownRequests() async throws {
        try await FalEmulator.withRunning { fal in
            let noKey = try await call(.POST, "\(fal.baseURL)/\(Self.app)", key: nil, Self.input)
            #expect(noKey.status == 401)
            #expect(noKey.json["detail"]?.stringValue != nil)
            #expect(try await call(.POST, "\(fal.baseURL)/\(Self.app)", key: "wrong", Self.input).status == 401)

            var bad = Self.input
            bad = .object((bad.objectValue ?? [:]).merging(["num_frames": 500]) { $1 })
            let tooLong = try await call(.POST, "\(fal.baseURL)/\(Self.app)", bad)
            #expect(tooLong.status == 422)
            #expect(tooLong.json["detail"]?.arrayValue?.first?["loc"] == ["body", "num_frames"])
            let noImage = try await call(.POST, "\(fal.baseURL)/\(Self.app)", ["prompt": "a cat"])
            #expect(noImage.status == 422)
            #expect(noImage.json["detail"]?.arrayValue?.first?["loc"] == ["body", "image_url"])
            // Text-to-video needs no image.
            #expect(try await call(.POST, "\(fal.baseURL)/fal-ai/wan/v2.2-a14b/text-to-video", ["prompt": "a cat"]).status == 200)
            #expect(try await call(.POST, "\(fal.baseURL)/fal-ai/nope", Self.input).status == 404)
            #expect(try await call(.GET, "\(fal.baseURL)/fal-ai/wan/requests/nope/status").status == 404)
            #expect(try await call(.PUT, "\(fal.baseURL)/fal-ai/wan/requests/nope/cancel").status == 404)
        }
    }

    @Test func cancelledAndFailedRequestsAreNotCharged() async throws {
        try await FalEmulator.withRunning(configuration: .init(queueTime: .milliseconds(100), runTime: .milliseconds(100))) { fal in
            let first = try await call(.POST, "\(fal.baseURL)/\(Self.app)", Self.input)
            let cancel = try await call(.PUT, try #require(first.json["cancel_url"]?.stringValue))
            #expect(cancel.status == 202)
            #expect(cancel.json["status"] == "CANCELLATION_REQUESTED")

            await fal.emulator.failNext("CUDA out of memory")
            let second = try await call(.POST, "\(fal.baseURL)/\(Self.app)", Self.input)
            try await Task.sleep(for: .milliseconds(400))
            let status = try await call(.GET, try #require(second.json["status_url"]?.stringValue))
            #expect(status.json["status"] == "COMPLETED")
            #expect(status.json["error"] == "CUDA out of memory")
            #expect(try await call(.GET, try #require(second.json["response_url"]?.stringValue)).status >= 400)
            #expect(try await call(.GET, try #require(first.json["status_url"]?.stringValue)).json["error_type"] == "request_cancelled")
            #expect(await fal.emulator.charged().isEmpty)
        }
    }
}
