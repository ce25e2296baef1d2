import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import SwarmCore
import Testing

import Foundation

/// `swarmctl serve --local-worker` as a real process: the whole pipeline on a machine without a GPU.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct LocalWorkerTests {
    @Test func servesAndRunsJobsWithTheEmulatorWhenNoSwarmUIAnswers() async throws {
        let directory = try Paths.temporaryDirectory("swarmctl-local")
        defer { try? FileManager.default.removeItem(at: directory) }
        let swarmUIPort = freePort()
        let server = try ChildProcess(
            "swarmctl", executable: Paths.binary("swarmctl"),
            arguments: ["serve", "--local-worker", "--port", "0", "--data-dir", directory.path],
            environment: ["SWARMUI_API_URL": "http://127.0.0.1:\(swarmUIPort)", "SWARM_API_KEYS": "", "SWARM_WORKER_KEYS": ""])
        defer { server.stop() }
        let line = try await server.waitForLine(containing: "swarmctl serve: listening on")
        let afterHost = try #require(line.range(of: "127.0.0.1:")).upperBound
        let port = try #require(Int(line[afterHost...].prefix { $0.isNumber }))
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
                    HTTPClientRequest(url: "http://127.0.0.1:\(port)/v2/swarmui/status/\(id)"), timeout: .seconds(10))
                let value = JSONValue.parse(Data(try await status.body.collect(upTo: 16 << 20).readableBytesView))
                return value?["status"] == "COMPLETED" || value?["status"] == "FAILED" ? value : nil
            }
        }
        #expect(job["status"] == "COMPLETED", "\(job)")
        #expect(job["output"]?["files"]?.arrayValue?.first?["content_type"] == "image/png")

        server.signal(SIGTERM)
        #expect(try await server.waitForExit(timeout: .seconds(30)) == 0)
    }
}
