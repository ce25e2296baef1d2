import Foundation
import NIOHTTP1
import SwarmCore
import Testing
import VastAI
import VastAIEmulator

/// `swarmctl serve` with the scaler on, on the vast.ai emulator.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct FleetScalerServeTests {
    @Test func noStoppedOrRunningInstanceOutlivesInstanceDown() async throws {
        let directory = try Paths.temporaryDirectory("swarmctl-fleet-scaler")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await VastAIEmulator.withRunning(configuration: FleetServeTests.fastVast) { vast in
            let server = try ChildProcess(
                "swarmctl",
                executable: Paths.binary("swarmctl"),
                arguments: [
                    "serve", "--port", "0", "--data-dir", directory.path, "--image", "ghcr.io/o/swarm-worker:test",
                    "--public-url", "http://203.0.113.9:8288", "--fleet-interval", "0.2",
                    "--workers-min", "1", "--workers-max", "2", "--scaler", "request-count", "--scaler-value", "1",
                    "--idle-timeout", "1", "--keep-warm", "1",
                ],
                environment: [
                    "VAST_API_KEY": vast.emulator.configuration.apiKey, "VAST_API_URL": vast.baseURL, "SWARM_API_KEYS": "", "SWARM_WORKER_KEYS": "",
                ]
            )
            defer { server.stop() }
            let queue = "http://127.0.0.1:\(try await server.servePort())/v2/swarmui"
            try await server.waitForLine(containing: "fleet on")
            // --workers-min 1: one instance with no job.
            _ = try await eventually("the minimum rented") { await FleetServeTests.fleet(vast).count == 1 ? true : nil }
            // Two queued jobs at one per worker: a second instance.
            for _ in 0..<2 { #expect(try await FleetServeTests.call(.POST, "\(queue)/run", ["input": ["prompt": "a cat"]]).status == 200) }
            let both = try await eventually("two instances") {
                await FleetServeTests.fleet(vast).count == 2 ? await FleetServeTests.fleet(vast) : nil
            }
            for instance in both {
                let key = try #require(instance.env["SWARM_WORKER_KEY"])
                #expect(try await FleetServeTests.call(.POST, "\(queue)/ping/\(instance.label ?? "")", ["stage": "READY"], key: key).status == 200)
            }
            // The jobs go away; past the 1 s idle timeout one worker is stopped (keep-warm 1), one stays (min 1).
            #expect(try await FleetServeTests.call(.POST, "\(queue)/purge-queue").status == 200)
            let stopped = try await eventually("one instance stopped") {
                let fleet = await FleetServeTests.fleet(vast)
                return fleet.count == 2 && fleet.count(where: \.stopped) == 1 ? fleet.first(where: \.stopped) : nil
            }
            try await server.waitForLine(containing: "scaler: stop instance \(stopped.id)")
            // The stop is billed at the disk's storage price (100 GB at the offer's $0.15/GB/month), under `stopped`.
            let stoppedSpend = try await eventually("the stop in the day's costs") {
                let days = try await FleetServeTests.call(.GET, "\(queue)/costs")
                let spend = days.json?["days"]?.arrayValue?.last?["spend_by_state"]?["stopped"]?.doubleValue ?? 0
                return spend > 0 ? spend : nil
            }
            #expect(stoppedSpend < 0.01)
            let health = try await FleetServeTests.call(.GET, "\(queue)/health")
            #expect(health.json?["workers"]?["stopped"] == 1)
            let status = try await FleetServeTests.status(directory, vast)
            #expect(status["instances"]?.arrayValue?.contains { $0["id"]?.intValue == stopped.id && $0["stopped"] == true } == true)
            // The decision, explained: why one is kept and the other stopped.
            let decision = try #require(status["scaler_decision"]?.stringValue)
            #expect(decision.hasPrefix("1 worker(s) wanted (workers 1–2, request-count 1 jobs/worker"), "\(decision)")
            #expect(decision.contains("stop instance \(stopped.id): idle"), "\(decision)")

            let down = try await FleetServeTests.swarmctl(
                ["instance", "down", "--yes", "--data-dir", directory.path, "--settle", "0.5", "--confirm-timeout", "30"],
                vast
            )
            #expect(down.output.contains { $0.contains("destroyed \(stopped.id)") })
            #expect(await vast.emulator.liveInstances.filter { $0.label?.hasPrefix("swarm-") == true }.isEmpty)
            // The running serve keeps to it: nothing rented or resumed.
            let creates = await FleetServeTests.creates(vast)
            try await Task.sleep(for: .seconds(2))
            #expect(await FleetServeTests.creates(vast) == creates)
            #expect(await vast.emulator.liveInstances.filter { $0.label?.hasPrefix("swarm-") == true }.isEmpty)
        }
    }
}
