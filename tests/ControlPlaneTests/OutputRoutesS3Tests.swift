import AsyncHTTPClient
import ControlPlane
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import Storage
import SwarmCore
import Testing

/// The S3-compatible server the test script started (`scripts/s3-server.sh`), if any.
let s3TestEndpoint = ProcessInfo.processInfo.environment["SWARM_TEST_S3_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 }

/// The worker routes against a real S3-compatible server on loopback (moto checks no signatures, so the test reads
/// the bucket with bare requests).
@Suite(
    .enabled(if: s3TestEndpoint != nil, "S3 tests skipped: set SWARM_TEST_S3_ENDPOINT, e.g. SWARM_TEST_S3_ENDPOINT=$(scripts/s3-server.sh)"),
    .serialized
)
struct OutputRoutesS3Tests {
    /// A control plane keeping outputs in a fresh bucket, multipart from 5 MiB.
    static func withS3Outputs(_ test: @escaping @Sendable (Harness, _ bucketURL: String) async throws -> Void) async throws {
        let endpoint = try #require(s3TestEndpoint)
        let bucket = "swarm-cp-" + UUID().uuidString.prefix(8).lowercased()
        var create = HTTPClientRequest(url: "\(endpoint)/\(bucket)")
        create.method = .PUT
        #expect(try await HTTPClient.shared.execute(create, timeout: .seconds(10)).status == .ok)
        let s3 = S3Configuration(
            endpoint: try S3Endpoint(url: endpoint),
            bucket: bucket,
            region: "us-east-1",
            credentials: S3Credentials(accessKeyID: "test", secretAccessKey: Secret("test"))
        )
        let outputs = OutputStorageSettings(configuration: StorageConfiguration(backend: .s3(s3), multipartThreshold: 5 << 20))
        try await withControlPlane(ControlPlaneConfiguration(longPollTimeout: .seconds(2), outputs: outputs)) { api in
            try await test(api, "\(endpoint)/\(bucket)")
        }
    }

    /// A bare request to the bucket: status and body text.
    static func bucket(_ method: HTTPMethod, _ url: String, body: ByteBuffer? = nil) async throws -> (status: UInt, text: String) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body { request.body = .bytes(body) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        return (response.status.code, String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    @Test func abortRouteRemovesTheUploadedPartsFromTheBucket() async throws {
        try await Self.withS3Outputs { api, bucketURL in
            let id = try await OutputRoutesTests.takenJob(api)
            let size = (8 << 20) + 1_000
            let target = try await api.call(
                .post,
                "/v2/swarmui/job-upload/w1/\(id)",
                ["name": "video.mp4", "size": .int(size), "content_type": "video/mp4"],
                auth: .worker
            )
            #expect(target.status == .ok, "\(target.text)")
            let key = try #require(target["key"]?.stringValue)
            let uploadID = try #require(target["multipart"]?["upload_id"]?.stringValue)
            let firstPart = try #require(target["multipart"]?["parts"]?.arrayValue?.first?["url"]?.stringValue)

            // One part lands, then the worker gives up: the part is in the bucket until the upload is aborted.
            #expect(try await Self.bucket(.PUT, firstPart, body: ByteBuffer(repeating: 7, count: 8 << 20)).status == 200)
            let parts = try await Self.bucket(.GET, "\(bucketURL)/\(key)?uploadId=\(uploadID)")
            #expect(parts.status == 200 && parts.text.contains("<PartNumber>1</PartNumber>"), "\(parts.text)")
            #expect(try await Self.bucket(.GET, "\(bucketURL)?uploads").text.contains(uploadID))

            let targetJSON = try #require(target.json)
            let aborted = try await api.call(.post, "/v2/swarmui/job-upload/w1/\(id)/abort", ["target": targetJSON], auth: .worker)
            #expect(aborted.status == .ok, "\(aborted.text)")
            #expect(aborted["aborted"] == true)

            #expect(try await Self.bucket(.GET, "\(bucketURL)/\(key)?uploadId=\(uploadID)").status == 404)
            #expect(try await !Self.bucket(.GET, "\(bucketURL)?uploads").text.contains(uploadID))
            #expect(try await Self.bucket(.HEAD, "\(bucketURL)/\(key)").status == 404)

            // Aborting again finds nothing to discard and still succeeds; completing it now fails without an object.
            #expect(try await api.call(.post, "/v2/swarmui/job-upload/w1/\(id)/abort", ["target": targetJSON], auth: .worker).status == .ok)
            let late = try await api.call(
                .post,
                "/v2/swarmui/job-upload/w1/\(id)/complete",
                ["target": targetJSON, "parts": [["number": 1, "etag": "\"x\""]]],
                auth: .worker
            )
            #expect(late.status.code >= 400 && late.status.code < 500, "\(late.status) \(late.text)")
            #expect(try await Self.bucket(.HEAD, "\(bucketURL)/\(key)").status == 404)
        }
    }

    @Test func inputPictureIsStreamedToTheBucketAndLinkedForSevenDays() async throws {
        try await Self.withS3Outputs { api, bucketURL in
            let answer = try await InputRoutesTests.upload(api, InputRoutesTests.picture, type: "image/png", key: nil)
            #expect(answer.status == .ok, "\(answer.text)")
            let key = try #require(answer["key"]?.stringValue)
            let url = try #require(answer["url"]?.stringValue)
            #expect(url.hasPrefix("\(bucketURL)/\(key)?"), "\(url)")
            #expect(url.contains("X-Amz-Expires=604800"), "a job may wait long in the queue before a worker fetches its picture")
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
            #expect(response.status == .ok)
            #expect(response.headers.first(name: "content-type") == "image/png")
            #expect(try await response.body.collect(upTo: 1 << 20) == InputRoutesTests.picture)
        }
    }

    @Test func abortRouteRefusesAnotherJobsUploadAndBadBodies() async throws {
        try await Self.withS3Outputs { api, bucketURL in
            let id = try await OutputRoutesTests.takenJob(api)
            let other = try await api.submit()
            _ = try await api.take("w2")
            let target = try await api.call(
                .post,
                "/v2/swarmui/job-upload/w2/\(other)",
                ["name": "clip.mp4", "size": .int(6 << 20), "content_type": "video/mp4"],
                auth: .worker
            )
            let uploadID = try #require(target["multipart"]?["upload_id"]?.stringValue)
            let key = try #require(target["key"]?.stringValue)

            // w1 holds its own job, but the target belongs to w2's job: refused, and the upload is still there.
            let refused = try await api.call(.post, "/v2/swarmui/job-upload/w1/\(id)/abort", ["target": try #require(target.json)], auth: .worker)
            #expect(refused.status == .badRequest, "\(refused.text)")
            #expect(refused["error"]?.stringValue?.contains("does not belong to job") == true, "\(refused.text)")
            #expect(try await Self.bucket(.GET, "\(bucketURL)/\(key)?uploadId=\(uploadID)").status == 200)

            let bad = try await api.call(.post, "/v2/swarmui/job-upload/w1/\(id)/abort", ["target": "nope"], auth: .worker)
            #expect(bad.status == .badRequest, "\(bad.text)")
        }
    }
}
