import AsyncHTTPClient
import Crypto
import Foundation
import JobProtocol
import NIOCore
import SwarmCore
import Testing

@testable import Storage

/// The server the integration tests run against, when the test script started one.
let s3TestEndpoint = ProcessInfo.processInfo.environment["SWARM_TEST_S3_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 }

/// Against a real S3-compatible server: `SWARM_TEST_S3_ENDPOINT=$(scripts/s3-server.sh) swift test --filter StorageTests`.
@Suite(
    .enabled(
        if: s3TestEndpoint != nil,
        "S3 integration tests skipped: set SWARM_TEST_S3_ENDPOINT, e.g. SWARM_TEST_S3_ENDPOINT=$(scripts/s3-server.sh)"
    ),
    .serialized
)
struct S3IntegrationTests {
    let storage: S3Storage
    let uploader = OutputUploader(httpClient: .shared, backoff: Backoff(initial: .milliseconds(20), maximum: .milliseconds(100)))

    init() async throws {
        let configuration = S3Configuration(
            endpoint: try S3Endpoint(url: try #require(s3TestEndpoint)),
            bucket: "swarm-test-" + UUID().uuidString.prefix(8).lowercased(),
            region: "us-east-1",
            credentials: S3Credentials(accessKeyID: "test", secretAccessKey: Secret("test"))
        )
        storage = S3Storage(configuration: configuration, httpClient: .shared, multipartThreshold: 5 << 20)
        try await storage.createBucket()
    }

    /// Size and SHA-256 of the object as boto3 reads it.
    func boto3Object(_ key: String) throws -> String {
        try run(
            repositoryRoot.appendingPathComponent(".venv/bin/python").path,
            [
                repositoryRoot.appendingPathComponent("tests/StorageTests/Fixtures/s3_object.py").path,
                try #require(s3TestEndpoint), storage.configuration.bucket, key,
            ]
        ).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// SHA-256 of what curl downloads from `url`.
    func curlSHA256(_ url: String) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("swarm-curl-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        _ = try run("/usr/bin/env", ["curl", "-fsS", "-o", file.path, url])
        return SHA256.hash(data: try Data(contentsOf: file)).hexString
    }

    @Test func presignedPutLandsTheBytesAndPresignedGetServesThem() async throws {
        let bytes = TestBytes(size: 300_001, failAfter: nil)
        let key = ObjectKey.output(endpoint: "swarmui", jobID: "job-1", fileName: "a b+ü.png")
        let target = try await storage.uploadTarget(key: key, size: Int64(bytes.size), contentType: "image/png", completeURL: nil)
        guard case .put = target else { Issue.record("expected a single PUT below the threshold"); return }

        // The worker's sources are existentials (OutputSource.body); AnyByteSequence makes them concrete.
        let body: any AsyncSequence<ByteBuffer, any Error> & Sendable = bytes
        let result = try await uploader.upload(target) { AnyByteSequence(body) }
        #expect(result.bytes == Int64(bytes.size))
        #expect(result.sha256 == bytes.sha256)

        let info = try await storage.completeUpload(target, parts: [])
        #expect(info.bytes == Int64(bytes.size))
        #expect(info.contentType == "image/png")
        #expect(try curlSHA256(storage.presignGet(key: key)) == bytes.sha256)
        #expect(try boto3Object(key) == "\(bytes.size) \(bytes.sha256)")
    }

    @Test func multipartUploadOfThreePartsAndATailCompletes() async throws {
        // Three 5 MiB parts and a tail; the source breaks once inside the second part and is reopened.
        let partSize: Int64 = 5 << 20
        let source = FlakySource(size: Int(3 * partSize) + 12_345, failures: 1, failAfter: Int(partSize) + 777)
        let key = "swarmui/job-2/video.mp4"
        let uploadID = try await storage.createMultipartUpload(key: key, contentType: "video/mp4")
        let parts = (1...4).map { MultipartUpload.Part(number: $0, url: storage.presignPart(key: key, uploadID: uploadID, partNumber: $0)) }
        let target = UploadTarget.multipart(
            MultipartUpload(key: key, size: Int64(source.size), uploadID: uploadID, partSize: partSize, parts: parts, completeURL: nil)
        )

        let result = try await uploader.upload(target) { source.open() }
        let expected = TestBytes(size: source.size, failAfter: nil).sha256
        #expect(result.sha256 == expected)
        #expect(result.parts.map(\.number) == [1, 2, 3, 4])
        #expect(source.opened == 2)

        let info = try await storage.completeUpload(target, parts: result.parts)
        #expect(info.bytes == Int64(source.size))
        #expect(try curlSHA256(storage.presignGet(key: key)) == expected)
        #expect(try boto3Object(key) == "\(source.size) \(expected)")
    }

    @Test func partsSentConcurrentlyCompleteInOrder() async throws {
        // Three parts in flight over a source that breaks once in the fourth part: every part lands once, in order.
        let concurrent = OutputUploader(
            httpClient: .shared,
            backoff: Backoff(initial: .milliseconds(20), maximum: .milliseconds(100)),
            partConcurrency: 3
        )
        let source = FlakySource(size: (5 * 5 << 20) + 99, failures: 1, failAfter: (3 * 5 << 20) + 4_321)
        let key = "swarmui/job-8/concurrent.mp4"
        let uploadID = try await storage.createMultipartUpload(key: key, contentType: "video/mp4")
        let parts = (1...6).map { MultipartUpload.Part(number: $0, url: storage.presignPart(key: key, uploadID: uploadID, partNumber: $0)) }
        let target = UploadTarget.multipart(
            MultipartUpload(key: key, size: Int64(source.size), uploadID: uploadID, partSize: 5 << 20, parts: parts, completeURL: nil)
        )
        let result = try await concurrent.upload(target) { source.open() }
        let expected = TestBytes(size: source.size, failAfter: nil).sha256
        #expect(result.parts.map(\.number) == [1, 2, 3, 4, 5, 6])
        #expect(result.sha256 == expected)
        _ = try await storage.completeUpload(target, parts: result.parts)
        #expect(try boto3Object(key) == "\(source.size) \(expected)")
    }

    @Test func uploadTargetAboveTheThresholdIsMultipart() async throws {
        let bytes = TestBytes(size: (8 << 20) + 1_000, failAfter: nil)
        let target = try await storage.uploadTarget(
            key: "swarmui/job-3/big.bin",
            size: Int64(bytes.size),
            contentType: "application/octet-stream",
            completeURL: "http://cp/complete"
        )
        guard case .multipart(let upload) = target else { Issue.record("expected a multipart target"); return }
        #expect(upload.partSize == 8 << 20)
        #expect(upload.parts.count == 2)

        let result = try await uploader.upload(target) { bytes }
        _ = try await storage.completeUpload(target, parts: result.parts)
        #expect(try boto3Object(target.key) == "\(bytes.size) \(bytes.sha256)")
    }

    @Test func multipartUploadHoldsTwoPartsInMemory() async throws {
        // Peak RSS is reset (Linux: "5" > /proc/self/clear_refs) so that only this upload's high-water mark counts.
        guard (try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)) != nil,
            let baseline = processStatusKiB("VmRSS")
        else { return }
        let bytes = TestBytes(size: 96 << 20, failAfter: nil)
        let target = try await storage.uploadTarget(
            key: "swarmui/job-6/large.mp4",
            size: Int64(bytes.size),
            contentType: "video/mp4",
            completeURL: nil
        )
        let result = try await uploader.upload(target) { bytes }
        let growth = try #require(processStatusKiB("VmHWM")) - baseline
        #expect(result.parts.count == 12)
        // Two 8 MiB parts make about 16 MiB; the rest of the margin is for suites running in the same process.
        #expect(growth < 48 << 10, "peak RSS grew by \(growth) KiB while uploading 96 MiB in 8 MiB parts")
        _ = try await storage.completeUpload(target, parts: result.parts)
        #expect(result.sha256 == bytes.sha256)
    }

    @Test func storeUploadsEndToEndAndAbortsOnFailure() async throws {
        let bytes = TestBytes(size: (6 << 20) + 3, failAfter: nil)
        let stored = try await storage.store(
            key: "swarmui/job-7/out.webm",
            size: Int64(bytes.size),
            contentType: "video/webm",
            uploader: uploader
        ) { bytes }
        #expect(stored.bytes == Int64(bytes.size) && stored.sha256 == bytes.sha256)
        #expect(try curlSHA256(stored.url) == bytes.sha256)

        let broken = FlakySource(size: 6 << 20, failures: .max, failAfter: 1 << 20)
        await #expect(throws: StorageError.self) {
            try await storage.store(key: "swarmui/job-7/broken.webm", size: 6 << 20, contentType: "video/webm", uploader: uploader) {
                broken.open()
            }
        }
        #expect(try await storage.head(key: "swarmui/job-7/broken.webm") == nil)
    }

    @Test func singlePutIsRetriedByReopeningTheSource() async throws {
        let source = FlakySource(size: 200_000, failures: 2, failAfter: 100_000)
        let key = "swarmui/job-4/retry.png"
        let target = try await storage.uploadTarget(key: key, size: Int64(source.size), contentType: "image/png", completeURL: nil)
        let result = try await uploader.upload(target) { source.open() }
        #expect(source.opened == 3)
        #expect(result.sha256 == TestBytes(size: source.size, failAfter: nil).sha256)
        #expect(try await storage.head(key: key)?.bytes == Int64(source.size))
    }

    @Test func interruptedUploadsLeaveNoObject() async throws {
        // A single PUT whose source always breaks: no object, and a clear error after the retries.
        let single = try await storage.uploadTarget(key: "swarmui/job-5/broken.png", size: 200_000, contentType: "image/png", completeURL: nil)
        let broken = FlakySource(size: 200_000, failures: .max, failAfter: 100_000)
        let error = await #expect(throws: StorageError.self) { try await uploader.upload(single) { broken.open() } }
        #expect(error?.code == .io)
        #expect(try await storage.head(key: single.key) == nil)

        // A multipart upload stopped after its first part, then aborted: no object, and completing it fails.
        let key = "swarmui/job-5/broken.mp4"
        let uploadID = try await storage.createMultipartUpload(key: key, contentType: "video/mp4")
        let target = UploadTarget.multipart(
            MultipartUpload(
                key: key,
                size: 12 << 20,
                uploadID: uploadID,
                partSize: 5 << 20,
                parts: (1...3).map { MultipartUpload.Part(number: $0, url: storage.presignPart(key: key, uploadID: uploadID, partNumber: $0)) },
                completeURL: nil
            )
        )
        let partial = FlakySource(size: 12 << 20, failures: .max, failAfter: (5 << 20) + 10)
        await #expect(throws: StorageError.self) { try await uploader.upload(target) { partial.open() } }
        try await storage.abortUpload(target)
        #expect(try await storage.head(key: key) == nil)
        await #expect(throws: StorageError.self) {
            try await storage.completeUpload(target, parts: [CompletedPart(number: 1, etag: "\"x\"")])
        }
        #expect(try await storage.head(key: key) == nil)
    }

    @Test func rejectedRequestsNameTheOperationAndNoSecret() async throws {
        let error = await #expect(throws: StorageError.self) {
            try await storage.completeMultipartUpload(key: "nope", uploadID: "no-such-upload", parts: [CompletedPart(number: 1, etag: "\"x\"")])
        }
        let message = error?.message ?? ""
        #expect(message.contains("CompleteMultipartUpload of nope in \(storage.configuration.bucket)"))
        #expect(!message.contains("X-Amz-Signature"))
    }
}
