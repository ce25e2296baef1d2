import AsyncHTTPClient
import Crypto
import LoopbackServer
import NIOCore
import NIOHTTP1
import SwarmCore
import Testing

import Foundation

/// `swarmctl serve --local-worker` as a real process: the whole pipeline on a machine without a GPU.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct LocalWorkerTests {
    @Test func servesAndRunsJobsWithTheEmulatorWhenNoSwarmUIAnswers() async throws {
        // Local storage is the default: the worker uploads to the control plane, whose signed link serves the file.
        try await Self.withServer(environment: [:]) { job, port in
            #expect(job["output"]?["files"]?.arrayValue?.first?["content_type"] == "image/png")
            try await Self.expectDownloadableFiles(job)

            // The CLI fetches the same files and checks their sha256 itself.
            let out = try Paths.temporaryDirectory("swarmctl-download")
            defer { try? FileManager.default.removeItem(at: out) }
            let id = try #require(job["id"]?.stringValue)
            let download = try ChildProcess(
                "swarmctl download",
                executable: Paths.binary("swarmctl"),
                arguments: ["download", id, "--out", out.path],
                environment: ["SWARM_URL": "http://127.0.0.1:\(port)", "SWARM_API_KEY": ""]
            )
            #expect(try await download.waitForExit(timeout: .seconds(60)) == 0)
            for file in job["output"]?["files"]?.arrayValue ?? [] {
                let data = try Data(contentsOf: out.appendingPathComponent(try #require(file["name"]?.stringValue)))
                #expect(SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined() == file["sha256"]?.stringValue)
            }
        }
    }

    @Test(
        .enabled(
            if: s3TestEndpoint != nil,
            "S3 storage test skipped: set SWARM_TEST_S3_ENDPOINT, e.g. SWARM_TEST_S3_ENDPOINT=$(scripts/s3-server.sh)"
        )
    )
    func storesOutputsInS3WithMultipartAboveTheThreshold() async throws {
        let endpoint = try #require(s3TestEndpoint)
        let bucket = "swarm-it-" + UUID().uuidString.prefix(8).lowercased()
        // moto does not check signatures, so a bare PUT creates the bucket.
        var create = HTTPClientRequest(url: "\(endpoint)/\(bucket)")
        create.method = .PUT
        #expect(try await HTTPClient.shared.execute(create, timeout: .seconds(10)).status == .ok)
        let environment = [
            "SWARM_STORAGE": "s3", "SWARM_S3_ENDPOINT": endpoint, "SWARM_S3_BUCKET": bucket, "SWARM_S3_REGION": "us-east-1",
            "SWARM_S3_ACCESS_KEY_ID": "test", "SWARM_S3_SECRET_ACCESS_KEY": "test", "SWARM_S3_FORCE_PATH_STYLE": "1",
            "SWARM_MULTIPART_THRESHOLD": "\(5 << 20)", "SWARM_EMULATOR_OUTPUT_BYTES": "\(12 << 20)",
        ]
        try await Self.withServer(environment: environment) { job, _ in
            let files = try #require(job["output"]?["files"]?.arrayValue)
            #expect(files.allSatisfy { $0["bytes"]?.intValue == 12 << 20 })
            #expect(files.allSatisfy { $0["url"]?.stringValue?.hasPrefix(endpoint) == true })
            try await Self.expectDownloadableFiles(job)
        }
    }

    /// The RunPod SwarmUI worker's `keep_alive` action, through the whole path: a client's runsync, the control
    /// plane's queue, the worker pulling it, and SwarmUI (the emulator) answering its pings.
    @Test func keepAliveRunsAsAJobEndToEnd() async throws {
        try await Self.withServer(environment: [:]) { _, port in
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v2/swarmui/runsync?wait=60000")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            let input: JSONValue = ["input": ["action": "keep_alive", "duration": 3, "interval": 1]]
            request.body = .bytes(ByteBuffer(string: input.jsonString()))
            let started = ContinuousClock.now
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(90))
            let job = try #require(JSONValue.parse(Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)))
            #expect(job["status"] == "COMPLETED", "\(job)")
            let output = try #require(job["output"])
            #expect(output["success"] == true && output["failures"] == 0, "\(output)")
            #expect(output["duration"] == 3 && output["interval"] == 1)
            // One ping at the start and one a second after, until the 3 s are over.
            #expect((output["pings"]?.intValue ?? 0) >= 3, "\(output)")
            #expect(ContinuousClock.now - started >= .seconds(3), "the worker held the job for its whole duration")
            #expect((job["executionTime"]?.intValue ?? 0) >= 3000, "\(job)")
        }
    }

    @Test func submitUploadsLocalPicturesAsInitImages() async throws {
        try await Self.withServer(environment: [:]) { _, port in
            let folder = try Paths.temporaryDirectory("swarmctl-pictures")
            defer { try? FileManager.default.removeItem(at: folder) }
            let png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + (0..<5_000).map { UInt8(truncatingIfNeeded: $0) })
            try png.write(to: folder.appendingPathComponent("a.png"))
            try Data([0xFF, 0xD8, 0xFF, 0xE0] + Array(repeating: 9, count: 3_000)).write(to: folder.appendingPathComponent("b.jpg"))
            try Data("not a picture".utf8).write(to: folder.appendingPathComponent("notes.txt"))
            let environment = ["SWARM_URL": "http://127.0.0.1:\(port)", "SWARM_API_KEY": ""]
            let model = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"
            func swarmctl(_ arguments: [String]) async throws -> (status: Int32, lines: [String]) {
                let process = try ChildProcess(
                    "swarmctl \(arguments[0])",
                    executable: Paths.binary("swarmctl"),
                    arguments: arguments,
                    environment: environment
                )
                let status = try await process.waitForExit(timeout: .seconds(120))
                return (status, process.output)
            }
            /// Waits for the job's end; a job whose init_image the worker could not fetch fails instead of completing.
            func expectImageToImage(_ id: String) async throws {
                let job = try await eventually("job \(id) to finish", timeout: .seconds(90)) { () async throws -> JSONValue? in
                    let response = try await HTTPClient.shared.execute(
                        HTTPClientRequest(url: "http://127.0.0.1:\(port)/v2/swarmui/status/\(id)"),
                        timeout: .seconds(10)
                    )
                    let value = JSONValue.parse(Data(try await response.body.collect(upTo: 16 << 20).readableBytesView))
                    return ["COMPLETED", "FAILED"].contains(value?["status"]?.stringValue ?? "") ? value : nil
                }
                #expect(job["status"] == "COMPLETED", "\(job)")
                #expect(job["output"]?["mode"] == "image-to-image", "\(job)")
            }
            /// The job ids a submit printed (its progress bars go to the same captured output).
            func ids(_ lines: [String]) -> [String] {
                lines.map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                    $0.count >= 8 && !$0.contains(" ") && !$0.contains("[") && !$0.contains("{")
                }
            }

            // One job: the picture is uploaded, its link becomes init_image, and the worker fetches it from the control plane.
            let one = try await swarmctl([
                "submit", "--image", folder.appendingPathComponent("a.png").path, "--prompt", "a fox", "--model", model, "--wait",
            ])
            #expect(one.status == 0, "\(one.lines)")
            let result = one.lines.compactMap { JSONValue.parse(Data($0.utf8)) }.last { $0["status"] != nil }
            #expect(result?["status"] == "COMPLETED", "\(one.lines)")
            #expect(result?["output"]?["mode"] == "image-to-image", "\(one.lines)")

            // A folder with one prompt: one job per picture, the text file left out.
            let folderRun = try await swarmctl(["submit", "--images", folder.path, "--prompt", "the same scene", "--model", model])
            #expect(folderRun.status == 0, "\(folderRun.lines)")
            #expect(ids(folderRun.lines).count == 2, "\(folderRun.lines)")
            for id in ids(folderRun.lines) { try await expectImageToImage(id) }

            // A CSV of picture and prompt, pictures relative to the file.
            let csv = folder.appendingPathComponent("jobs.csv")
            try Data("image,prompt\nb.jpg,first\na.png,second\n".utf8).write(to: csv)
            let batch = try await swarmctl(["submit", "--batch", csv.path, "--model", model])
            #expect(batch.status == 0, "\(batch.lines)")
            #expect(ids(batch.lines).count == 2, "\(batch.lines)")
            for id in ids(batch.lines) { try await expectImageToImage(id) }

            // Not a picture: refused before anything is sent.
            let wrong = try await swarmctl(["submit", "--image", folder.appendingPathComponent("notes.txt").path, "--prompt", "x"])
            #expect(wrong.status != 0)
            #expect(wrong.lines.contains { $0.contains("is not a .png, .jpg, .webp or .gif image") }, "\(wrong.lines)")
        }
    }

    /// Runs one text-to-image job on a fresh `serve --local-worker` with `environment` and hands over the final job
    /// and the server's port.
    static func withServer(environment: [String: String], _ check: (JSONValue, Int) async throws -> Void) async throws {
        let directory = try Paths.temporaryDirectory("swarmctl-local")
        defer { try? FileManager.default.removeItem(at: directory) }
        let swarmUIPort = try freeLoopbackPort()
        let server = try ChildProcess(
            "swarmctl",
            executable: Paths.binary("swarmctl"),
            arguments: ["serve", "--local-worker", "--port", "0", "--data-dir", directory.path],
            environment: environment.merging(["SWARMUI_API_URL": "http://127.0.0.1:\(swarmUIPort)", "SWARM_API_KEYS": "", "SWARM_WORKER_KEYS": ""]) {
                $1
            }
        )
        defer { server.stop() }
        let port = try await server.servePort()
        try await server.waitForLine(containing: "SwarmUI EMULATOR")

        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v2/swarmui/runsync?wait=60000")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        let input: JSONValue = ["input": ["prompt": "a lighthouse", "model": "OfficialStableDiffusion/sd_xl_base_1.0.safetensors", "steps": 4]]
        request.body = .bytes(ByteBuffer(string: input.jsonString()))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(90))
        let body = try #require(JSONValue.parse(Data(try await response.body.collect(upTo: 16 << 20).readableBytesView)))
        var job = body
        if job["status"] != "COMPLETED", let id = job["id"]?.stringValue {
            job = try await eventually("job \(id) to finish") {
                let status = try await HTTPClient.shared.execute(
                    HTTPClientRequest(url: "http://127.0.0.1:\(port)/v2/swarmui/status/\(id)"),
                    timeout: .seconds(10)
                )
                let value = JSONValue.parse(Data(try await status.body.collect(upTo: 16 << 20).readableBytesView))
                return value?["status"] == "COMPLETED" || value?["status"] == "FAILED" ? value : nil
            }
        }
        #expect(job["status"] == "COMPLETED", "\(job)")
        try await check(job, port)

        server.signal(SIGTERM)
        #expect(try await server.waitForExit(timeout: .seconds(30)) == 0)
    }

    /// Every file of the job downloads from its URL (not a data URL) with the bytes and sha256 the result lists.
    static func expectDownloadableFiles(_ job: JSONValue) async throws {
        let files = try #require(job["output"]?["files"]?.arrayValue)
        #expect(!files.isEmpty)
        for file in files {
            let url = try #require(file["url"]?.stringValue)
            #expect(url.hasPrefix("http"), "expected a link, got \(url.prefix(40))")
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(60))
            #expect(response.status == .ok)
            var hasher = SHA256()
            var bytes = 0
            for try await chunk in response.body {
                bytes += chunk.readableBytes
                chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            }
            #expect(bytes == file["bytes"]?.intValue)
            #expect(hasher.finalize().map { String(format: "%02x", $0) }.joined() == file["sha256"]?.stringValue)
        }
    }
}

/// The S3-compatible server the test script started (`scripts/s3-server.sh`), if any.
let s3TestEndpoint = ProcessInfo.processInfo.environment["SWARM_TEST_S3_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 }
