import AsyncHTTPClient
import Crypto
import Foundation
import JobProtocol
import NIOCore
import SwarmCore
import Testing

@testable import Storage

@Suite struct LocalStorageTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swarm-local-\(UUID().uuidString)").path

    func storage(now: Date = Date(timeIntervalSince1970: 1_800_000_000)) -> LocalStorage {
        LocalStorage(directory: directory, baseURL: "https://cp.example.com/", signingSecret: Secret("local-secret"), linkExpires: 600, now: { now })
    }

    func visibleFiles() -> [String] {
        (FileManager.default.enumerator(atPath: directory)?.allObjects as? [String] ?? []).sorted()
    }

    @Test func writeStreamsHashesAndRenamesIntoPlace() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Above the 1 MiB write batch, and not a multiple of it.
        let bytes = TestBytes(size: 3_000_001, failAfter: nil)
        let stored = try await storage().write(key: "ep/job-1/a.png", expectedSize: 3_000_001, body: bytes)
        #expect(stored.bytes == 3_000_001)
        #expect(stored.sha256 == bytes.sha256)
        #expect(visibleFiles() == ["ep", "ep/job-1", "ep/job-1/a.png"])
        let file = try storage().fileURL(key: "ep/job-1/a.png")
        #expect(SHA256.hash(data: try Data(contentsOf: file)).hexString == bytes.sha256)
        let target = try storage().uploadTarget(key: "ep/job-1/a.png", size: 3_000_001, contentType: "image/png", completeURL: nil)
        #expect(try storage().completeUpload(target, parts: []).bytes == 3_000_001)
    }

    @Test func brokenOrWrongSizedUploadsLeaveNothing() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let broken = await #expect(throws: StorageError.self) {
            try await storage().write(key: "ep/job/b.mp4", expectedSize: 300_000, body: TestBytes(size: 300_000, failAfter: 70_000))
        }
        #expect(broken?.code == .io)
        let short = await #expect(throws: StorageError.self) {
            try await storage().write(key: "ep/job/b.mp4", expectedSize: 300_000, body: TestBytes(size: 1_000, failAfter: nil))
        }
        #expect(short?.code == .integrity)
        await #expect(throws: StorageError.self) {
            try await storage().write(key: "ep/job/b.mp4", expectedSize: 10, body: TestBytes(size: 1_000, failAfter: nil))
        }
        #expect(visibleFiles() == ["ep", "ep/job"])
        #expect(try storage().head(key: "ep/job/b.mp4") == nil)
    }

    @Test func keysCannotLeaveTheDirectory() {
        for key in ["../etc/passwd", "a/../../b", "/abs", "a//b", "a/./b", ""] {
            #expect(throws: StorageError.self, "\(key)") { try storage().fileURL(key: key) }
        }
    }

    @Test func signedLinksAllowOneMethodOnOneKeyUntilTheyExpire() throws {
        let url = storage().downloadURL(key: "ep/job/a b.png")
        #expect(url.hasPrefix("https://cp.example.com/files/ep/job/a%20b.png?expires=1800000600&signature="))
        let query = Dictionary(uniqueKeysWithValues: URLComponents(string: url)!.queryItems!.map { ($0.name, $0.value!) })
        try storage().verify(method: "GET", key: "ep/job/a b.png", expires: query["expires"], signature: query["signature"])
        #expect(throws: StorageError.self) {
            try storage().verify(method: "PUT", key: "ep/job/a b.png", expires: query["expires"], signature: query["signature"])
        }
        #expect(throws: StorageError.self) {
            try storage().verify(method: "GET", key: "ep/job/other.png", expires: query["expires"], signature: query["signature"])
        }
        #expect(throws: StorageError.self) {
            try storage().verify(method: "GET", key: "ep/job/a b.png", expires: "1900000000", signature: query["signature"])
        }
        #expect(throws: StorageError.self) { try storage().verify(method: "GET", key: "ep/job/a b.png", expires: query["expires"], signature: nil) }
        let later = storage(now: Date(timeIntervalSince1970: 1_800_000_601))
        #expect(throws: StorageError.self) {
            try later.verify(method: "GET", key: "ep/job/a b.png", expires: query["expires"], signature: query["signature"])
        }
    }
}

@Suite struct UploadTargetTests {
    @Test func jsonShapes() throws {
        let single = UploadTarget.put(SingleUpload(key: "e/j/a.png", size: 5, url: "https://b/x", headers: ["content-type": "image/png"]))
        let multipart = UploadTarget.multipart(
            MultipartUpload(
                key: "e/j/v.mp4",
                size: 20 << 20,
                uploadID: "u1",
                partSize: 16 << 20,
                parts: [.init(number: 1, url: "https://b/1"), .init(number: 2, url: "https://b/2")],
                completeURL: "https://cp/complete"
            )
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        #expect(
            String(decoding: try encoder.encode(single), as: UTF8.self)
                == #"{"headers":{"content-type":"image\/png"},"key":"e\/j\/a.png","method":"PUT","size":5,"url":"https:\/\/b\/x"}"#
        )
        #expect(
            String(decoding: try encoder.encode(multipart), as: UTF8.self)
                == #"{"key":"e\/j\/v.mp4","multipart":{"complete_url":"https:\/\/cp\/complete","part_size":16777216,"#
                + #""parts":[{"number":1,"url":"https:\/\/b\/1"},{"number":2,"url":"https:\/\/b\/2"}],"upload_id":"u1"},"size":20971520}"#
        )
        for target in [single, multipart] {
            #expect(try JSONDecoder().decode(UploadTarget.self, from: encoder.encode(target)) == target)
        }
    }

    @Test func partSizes() {
        #expect(MultipartUpload.partSize(forObjectOfSize: 1 << 30) == 8 << 20)
        #expect(MultipartUpload.partCount(size: 1 << 30, partSize: 8 << 20) == 128)
        #expect(MultipartUpload.partSize(forObjectOfSize: 100 << 30) == 11 << 20)
        let huge: Int64 = 500 << 30
        let size = MultipartUpload.partSize(forObjectOfSize: huge)
        #expect(size % (1 << 20) == 0)
        #expect(MultipartUpload.partCount(size: huge, partSize: size) <= 10_000)
    }

    @Test func jobUploadKeysTheOutputAndChecksOwnership() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swarm-job-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let local = LocalStorage(directory: directory, baseURL: "http://cp", signingSecret: Secret("s"))
        let request = JobUpload.UploadRequest(name: "clip 1.mp4", size: 1_000, contentType: "video/mp4")
        let target = try await JobUpload.target(for: request, endpoint: "swarmui", jobID: "job-9", storage: local, completeURL: nil)
        #expect(target.key == "swarmui/job-9/clip_1.mp4")
        await #expect(throws: StorageError.self) {
            try await JobUpload.target(
                for: .init(name: "x", size: -1, contentType: "image/png"),
                endpoint: "swarmui",
                jobID: "job-9",
                storage: local,
                completeURL: nil
            )
        }
        await #expect(throws: StorageError.self) {
            try await JobUpload.target(
                for: .init(name: "x", size: 1, contentType: "png"),
                endpoint: "swarmui",
                jobID: "job-9",
                storage: local,
                completeURL: nil
            )
        }
        _ = try await local.write(key: target.key, expectedSize: 1_000, body: TestBytes(size: 1_000, failAfter: nil))
        let foreign = await #expect(throws: StorageError.self) {
            try await JobUpload.complete(.init(target: target, parts: []), endpoint: "swarmui", jobID: "job-8", storage: local)
        }
        #expect(foreign?.message.contains("does not belong to job job-8") == true)
        let done = try await JobUpload.complete(.init(target: target, parts: []), endpoint: "swarmui", jobID: "job-9", storage: local)
        #expect(done.object.bytes == 1_000)
        #expect(done.url.hasPrefix("http://cp/files/swarmui/job-9/clip_1.mp4?expires="))
    }
}

@Suite struct OutputUploaderTests {
    @Test func unreachableStorageIsRetriedThenFailsClearly() async throws {
        let uploader = OutputUploader(
            httpClient: .shared,
            maxAttempts: 3,
            backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(20)),
            baseTimeout: .seconds(2)
        )
        // Port 9 (discard) on loopback: nothing listens, so every attempt is refused.
        let target = UploadTarget.put(
            SingleUpload(key: "e/j/a.png", size: 1_000, url: "http://127.0.0.1:9/bucket/e/j/a.png?X-Amz-Signature=deadbeef", headers: [:])
        )
        let source = FlakySource(size: 1_000)
        let error = await #expect(throws: StorageError.self) { try await uploader.upload(target) { source.open() } }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("PUT of e/j/a.png to http://127.0.0.1:9/bucket/e/j/a.png failed") == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("gave up after 3 attempts") == true)
        #expect(error?.message.contains("deadbeef") == false)
        #expect(source.opened == 3)
    }

    @Test func controlPlaneRequestsToUnreachableStorageFailClearly() async throws {
        let configuration = S3Configuration(
            endpoint: try S3Endpoint(url: "http://127.0.0.1:9"),
            bucket: "outputs",
            region: "us-east-1",
            credentials: S3Credentials(accessKeyID: "AKID", secretAccessKey: Secret("topsecret"))
        )
        let storage = S3Storage(
            configuration: configuration,
            httpClient: .shared,
            requestTimeout: .seconds(1),
            attempts: 2,
            backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(20))
        )
        let error = await #expect(throws: StorageError.self) { try await storage.createMultipartUpload(key: "e/j/v.mp4", contentType: "video/mp4") }
        #expect(error?.code == .unavailable)
        #expect(
            error?.message.hasPrefix("CreateMultipartUpload of e/j/v.mp4 in outputs at http://127.0.0.1:9 failed") == true,
            "\(error?.message ?? "")"
        )
        #expect(error?.message.contains("topsecret") == false)
    }
}
