import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Testing

import Foundation

/// `swarmctl serve` as a real process under SIGTERM, with workers' long polls held open as they are in production.
@Suite(.timeLimit(.minutes(2)))
struct ServeShutdownTests {
    @Test func sigtermAnswersHeldLongPollsAndExitsWithoutWaitingThemOut() async throws {
        let directory = try Paths.temporaryDirectory("swarmctl-shutdown")
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try ChildProcess(
            "swarmctl",
            executable: Paths.binary("swarmctl"),
            arguments: ["serve", "--port", "0", "--data-dir", directory.path],
            environment: ["SWARM_API_KEYS": "", "SWARM_WORKER_KEYS": ""]
        )
        defer { server.stop() }
        let base = "http://127.0.0.1:\(try await server.servePort())/v2/swarmui"

        // Held for the default 30 s long poll: an empty queue, and no job of this worker to stop.
        async let take = HTTPClient.shared.execute(HTTPClientRequest(url: "\(base)/job-take/w1?gpu=test"), timeout: .seconds(60))
        async let stop = HTTPClient.shared.execute(HTTPClientRequest(url: "\(base)/job-stop/w1"), timeout: .seconds(60))
        try await Task.sleep(for: .seconds(1))

        let signalled = ContinuousClock.now
        server.signal(SIGTERM)
        #expect(try await take.status == .noContent)
        #expect(try await stop.status == .noContent)
        #expect(try await server.waitForExit(timeout: .seconds(60)) == 0)
        // Well under the 30 s the polls would otherwise have been held for.
        #expect(ContinuousClock.now - signalled < .seconds(15))
    }
}
