import AsyncHTTPClient
import Crypto
import JobProtocol
import Logging
import NIOCore
import NIOHTTP1
import Storage
import SwarmCore
import SwarmUIEmulator
import Synchronization
import Testing

@testable import Worker

import Foundation

/// The S3-compatible server the test script started (`scripts/s3-server.sh`), if any.
let s3TestEndpoint = ProcessInfo.processInfo.environment["SWARM_TEST_S3_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 }

/// A worker that signs its own uploads (RunPod: the job's `s3Config`, or `BUCKET_*`), from SwarmUI's output to the
/// bucket: the job runner against the emulator and a real S3-compatible server on loopback.
@Suite(
    .enabled(if: s3TestEndpoint != nil, "S3 tests skipped: set SWARM_TEST_S3_ENDPOINT, e.g. SWARM_TEST_S3_ENDPOINT=$(scripts/s3-server.sh)"),
    .serialized,
    .timeLimit(.minutes(3))
)
struct SelfSignedUploadTests {
    static let model = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// A fresh bucket (moto checks no signatures: a bare PUT creates it).
    static func makeBucket() async throws -> String {
        let bucket = "swarm-worker-" + UUID().uuidString.prefix(8).lowercased()
        var create = HTTPClientRequest(url: "\(try #require(s3TestEndpoint))/\(bucket)")
        create.method = .PUT
        #expect(try await HTTPClient.shared.execute(create, timeout: .seconds(10)).status == .ok)
        return bucket
    }

    static func s3Config(bucket: String, endpoint: String) -> JSONValue {
        ["accessId": "test-id", "accessSecret": "test-secret", "bucketName": .string(bucket), "endpointUrl": .string(endpoint)]
    }

    static func job(_ id: String, extra: [String: JSONValue] = [:]) -> QueueJob {
        QueueJob(id: id, input: ["prompt": "a fox", "model": .string(model), "steps": 1], extra: extra)
    }

    /// A job runner configured from `environment` (plus SwarmUI's address and a fresh volume), against an emulator
    /// whose outputs are `outputBytes` large and saved under the volume, as SwarmUI's are.
    static func withRunner(
        outputBytes: Int,
        environment: [String: String] = [:],
        queue: any QueueClient = ProgressOnlyQueue(),
        uploadsViaQueue: Bool = false,
        _ body: (JobRunner, RunningEmulator, _ volume: String) async throws -> Void
    ) async throws {
        let volume = FileManager.default.temporaryDirectory.appendingPathComponent("worker-outputs-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: volume) }
        let emulator = SwarmUIEmulator.Configuration(
            stepDuration: .zero,
            defaultSteps: 1,
            largeOutputBytes: outputBytes,
            dataDirectory: volume + "/SwarmUI"
        )
        try await SwarmUIEmulator.withRunning(configuration: emulator) { swarm in
            let configuration = try WorkerConfiguration(
                environment: environment.merging(["SWARMUI_API_URL": swarm.baseURL, "VOLUME_PATH": volume]) { $1 }
            )
            // The worker's own client settings: a refused connection fails at once instead of being retried to the deadline.
            let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPQueueClient.httpClientConfiguration())
            let swarmHTTP = SwarmUIClientBackend.makeHTTPClient(configuration)
            let runner = JobRunner(
                swarm: SwarmUIClientBackend(configuration: configuration, httpClient: swarmHTTP, logger: quiet),
                parser: JobInputParser(presets: try Presets.load(path: nil)),
                queue: queue,
                httpClient: http,
                inlineMaxBytes: configuration.inlineMaxBytes,
                uploadsViaQueue: uploadsViaQueue,
                bucket: configuration.outputBucket,
                keptOutputsPath: configuration.keptOutputsPath,
                deletesDeliveredOutputs: !configuration.keepsSwarmUIOutputs,
                logger: quiet
            )
            do {
                try await body(runner, swarm, volume)
            } catch {
                try? await http.shutdown()
                try? await swarmHTTP.shutdown()
                throw error
            }
            try await http.shutdown()
            try await swarmHTTP.shutdown()
        }
    }

    static func sha256(_ data: some DataProtocol) -> String {
        SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    /// The file SwarmUI (the emulator) saved under the volume for `name`.
    static func savedFile(named name: String, volume: String) throws -> String {
        let root = volume + "/SwarmUI/Output"
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            if (relative as NSString).lastPathComponent == name { return root + "/" + relative }
        }
        throw TestFailure("no saved output \(name) under \(root)")
    }

    /// The completed result's single file; its bytes downloaded from its URL match the listed size and sha256 and
    /// SwarmUI's file on the volume.
    static func expectStored(_ outcome: JobOutcome, bucket: String, bytes: Int, volume: String) async throws {
        guard case .report(let body) = outcome, let output = body.output, body.error == nil else {
            throw TestFailure("expected a result, got \(outcome)")
        }
        let file = try #require(output["files"]?.arrayValue?.first)
        let url = try #require(file["url"]?.stringValue)
        #expect(url.hasPrefix("\(try #require(s3TestEndpoint))/\(bucket)/swarmui/"), "\(url)")
        #expect(file["bytes"]?.intValue == bytes)
        let saved = try Data(contentsOf: URL(fileURLWithPath: try savedFile(named: try #require(file["name"]?.stringValue), volume: volume)))
        #expect(file["sha256"]?.stringValue == sha256(saved))

        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(60))
        #expect(response.status == .ok)
        let downloaded = try await response.body.collect(upTo: bytes + 1)
        #expect(downloaded.readableBytes == bytes)
        #expect(sha256(downloaded.readableBytesView) == file["sha256"]?.stringValue)
    }

    @Test func jobS3ConfigSignsTheUploadIntoTheJobsBucket() async throws {
        let endpoint = try #require(s3TestEndpoint)
        let bucket = try await Self.makeBucket()
        try await Self.withRunner(outputBytes: 300_001) { runner, _, volume in
            let outcome = await runner.run(Self.job("s3config-1", extra: ["s3Config": Self.s3Config(bucket: bucket, endpoint: endpoint)]))
            try await Self.expectStored(outcome, bucket: bucket, bytes: 300_001, volume: volume)
        }
    }

    @Test func bucketVariablesSignAMultipartUpload() async throws {
        let endpoint = try #require(s3TestEndpoint)
        let bucket = try await Self.makeBucket()
        // RunPod's variables; a bucket outside AWS is named by SWARM_S3_BUCKET. Above 64 MiB the upload is multipart.
        let environment = [
            "RUNPOD_WEBHOOK_GET_JOB": "http://127.0.0.1:1/v2/x/job-take/$RUNPOD_POD_ID",
            "RUNPOD_WEBHOOK_POST_OUTPUT": "http://127.0.0.1:1/v2/x/job-done/$RUNPOD_POD_ID/$ID",
            "BUCKET_ENDPOINT_URL": endpoint, "BUCKET_ACCESS_KEY_ID": "test-id", "BUCKET_SECRET_ACCESS_KEY": "test-secret",
            "SWARM_S3_BUCKET": bucket,
        ]
        let size = (65 << 20) + 17
        try await Self.withRunner(outputBytes: size, environment: environment) { runner, _, volume in
            try await Self.expectStored(await runner.run(Self.job("bucket-env-1")), bucket: bucket, bytes: size, volume: volume)
        }
    }

    @Test func unavailableStorageFailsClearlyKeepsTheOutputAndARetryStoresItWithoutGenerating() async throws {
        let endpoint = try #require(s3TestEndpoint)
        let bucket = try await Self.makeBucket()
        try await Self.withRunner(outputBytes: 200_000) { runner, swarm, volume in
            // Nothing listens on port 1: every attempt is refused.
            let down = await runner.run(Self.job("fault-1", extra: ["s3Config": Self.s3Config(bucket: bucket, endpoint: "http://127.0.0.1:1")]))
            guard case .report(let failure) = down, let message = failure.error else { throw TestFailure("expected a failure, got \(down)") }
            #expect(failure.retryable == true)
            #expect(message.contains("storage unavailable"), "\(message)")
            #expect(message.contains("gave up after 5 attempts"), "\(message)")
            #expect(message.contains("stays on the volume"), "\(message)")
            #expect(!message.contains("test-secret") && !message.contains("X-Amz-Signature"), "\(message)")
            let kept = try #require(message.firstRange(of: "Output/local/").map { message[$0.lowerBound...].prefix { $0 != " " && $0 != ";" } })
            #expect(FileManager.default.fileExists(atPath: volume + "/SwarmUI/" + kept), "\(kept) is not on the volume")
            #expect(await swarm.emulator.observe().generateRequests == 1)
            // Not delivered: the job loop's clean-up after the result leaves SwarmUI's file for the retry.
            await runner.removeDeliveredOutputs(of: "fault-1")
            #expect(FileManager.default.fileExists(atPath: volume + "/SwarmUI/" + kept), "\(kept) was deleted before it was stored")

            // The retry (same job id, storage back) stores SwarmUI's file from the volume without generating again.
            let retry = await runner.run(Self.job("fault-1", extra: ["s3Config": Self.s3Config(bucket: bucket, endpoint: endpoint)]))
            try await Self.expectStored(retry, bucket: bucket, bytes: 200_000, volume: volume)
            #expect(await swarm.emulator.observe().generateRequests == 1)
            #expect(!FileManager.default.fileExists(atPath: volume + "/.swarm-worker/kept-outputs/fault-1.json"))
            // Stored now: the clean-up deletes SwarmUI's copy.
            await runner.removeDeliveredOutputs(of: "fault-1")
            #expect(!FileManager.default.fileExists(atPath: volume + "/SwarmUI/" + kept))
        }
    }
}

/// The control plane's upload route as the worker uses it, without storage: the part URL it hands out refuses
/// every connection.
@Suite(.timeLimit(.minutes(2)))
struct QueueUploadFailureTests {
    @Test func multipartUploadThatFailsForGoodIsAbortedThroughTheQueue() async throws {
        let queue = UnreachablePartsQueue()
        try await SelfSignedUploadTests.withRunner(outputBytes: 100_000, queue: queue, uploadsViaQueue: true) { runner, _, _ in
            let outcome = await runner.run(SelfSignedUploadTests.job("abort-1"))
            guard case .report(let failure) = outcome, let message = failure.error else { throw TestFailure("expected a failure, got \(outcome)") }
            #expect(message.contains("storage unavailable") && message.contains("gave up after 5 attempts"), "\(message)")
            #expect(failure.retryable == true)
            // The parts already sent must not stay in the bucket: the worker reported the upload given up.
            #expect(queue.aborted == ["swarmui/abort-1/upload-1"])
            #expect(queue.completed == 0)
        }
    }
}

/// Hands out a one-part multipart target whose part URL nothing answers; records aborts and completions.
final class UnreachablePartsQueue: QueueClient, Sendable {
    private let record = Mutex((aborted: [String](), completed: 0, targets: 0))

    var aborted: [String] { record.withLock { $0.aborted } }
    var completed: Int { record.withLock { $0.completed } }

    func takeJob(jobInProgress: Bool) async throws(QueueError) -> TakeResult { .noJob }
    func postDone(jobID: String, body: JobDoneBody) async throws(QueueError) {}
    func postProgress(jobID: String, output: JSONValue) async throws(QueueError) {}
    func ping(jobIDs: [String], report: WorkerReport?) async throws(QueueError) {}
    func pollStop() async throws(QueueError) -> [String] { [] }

    func requestUpload(jobID: String, _ request: JobUpload.UploadRequest) async throws(QueueError) -> UploadTarget {
        let number = record.withLock { state in
            state.targets += 1
            return state.targets
        }
        return .multipart(
            MultipartUpload(
                key: "swarmui/\(jobID)/upload-\(number)",
                size: request.size,
                uploadID: "upload-\(number)",
                partSize: 5 << 20,
                parts: [.init(number: 1, url: "http://127.0.0.1:1/part-1")],
                completeURL: nil
            )
        )
    }

    func completeUpload(jobID: String, _ completion: JobUpload.UploadCompletion) async throws(QueueError) -> UploadedOutput {
        record.withLock { $0.completed += 1 }
        return UploadedOutput(key: completion.target.key, bytes: completion.target.size, url: "http://127.0.0.1:1/never")
    }

    func abortUpload(jobID: String, _ abort: JobUpload.UploadAbort) async throws(QueueError) {
        record.withLock { $0.aborted.append(abort.target.key) }
    }
}

/// A queue that accepts progress and nothing else: these tests drive the job runner directly.
struct ProgressOnlyQueue: QueueClient {
    func takeJob(jobInProgress: Bool) async throws(QueueError) -> TakeResult { .noJob }
    func postDone(jobID: String, body: JobDoneBody) async throws(QueueError) {}
    func postProgress(jobID: String, output: JSONValue) async throws(QueueError) {}
    func ping(jobIDs: [String], report: WorkerReport?) async throws(QueueError) {}
    func pollStop() async throws(QueueError) -> [String] { [] }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
