import Foundation
import Logging
import SwarmCore
import Testing
import VastAI
import VastAIEmulator

/// `swarmctl serve` as a process keeping a fleet of one on the vast.ai emulator.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct FleetServeTests {
    static let fastVast = VastAIEmulator.Configuration(
        nullAfterCreate: .zero, createdTime: .zero, loadingTime: .zero, rebootTime: .milliseconds(100))

    static func serve(_ directory: URL, _ vast: RunningVastAIEmulator) throws -> ChildProcess {
        try ChildProcess(
            "swarmctl", executable: Paths.binary("swarmctl"),
            arguments: [
                "serve", "--port", "0", "--data-dir", directory.path, "--image", "ghcr.io/o/swarm-worker:test",
                "--public-url", "http://203.0.113.9:8288", "--fleet-interval", "0.2", "--reboot-grace", "1",
            ],
            environment: [
                "VAST_API_KEY": vast.emulator.configuration.apiKey, "VAST_API_URL": vast.baseURL,
                "SWARM_API_KEYS": "", "SWARM_WORKER_KEYS": "", "SWARM_FLEET_SIZE": "1",
            ])
    }

    static func fleet(_ vast: RunningVastAIEmulator) async -> [VastAIEmulator.InstanceState] {
        await vast.emulator.liveInstances.filter { $0.label?.hasPrefix("swarm-") == true && $0.label != "swarm-x" }
    }

    static func creates(_ vast: RunningVastAIEmulator) async -> Int {
        await vast.emulator.requests.filter { $0.method == "PUT" && $0.uri.contains("/asks/") }.count
    }

    @Test func keepsOneInstanceReplacesADeadOneAdoptsAfterRestartAndReapsOrphans() async throws {
        let directory = try Paths.temporaryDirectory("swarmctl-fleet")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await VastAIEmulator.withRunning(configuration: Self.fastVast) { vast in
            let client = VastAIClient(
                configuration: .init(apiKey: Secret(vast.emulator.configuration.apiKey), baseURL: vast.baseURL),
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            // Labeled like the fleet's but unknown to its database: an orphan.
            let orphan = try await client.createInstance(
                offerID: 1001, CreateInstanceRequest(source: .image("ghcr.io/o/other:1"), diskGB: 100, label: "swarm-x"))

            var server = try Self.serve(directory, vast)
            defer { server.stop() }
            try await server.waitForLine(containing: "fleet on")
            let first = try await eventually("one instance rented") { await Self.fleet(vast).count == 1 ? await Self.fleet(vast)[0] : nil }
            #expect(first.env["SWARM_WORKER_ID"] == first.label)
            #expect(first.env["SWARM_QUEUE_URL"] == "http://203.0.113.9:8288/v2/swarmui")
            #expect(first.env["SWARM_WORKER_KEY"]?.hasPrefix("swarm_w_") == true)
            _ = try await eventually("the orphan destroyed") { await vast.emulator.instanceState(id: orphan.id)?.destroyed == true ? true : nil }
            #expect(!server.output.contains { $0.contains(first.env["SWARM_WORKER_KEY"] ?? "-") })

            // Recorded in the database, as `swarmctl instances` shows it.
            let listing = try ChildProcess(
                "instances", executable: Paths.binary("swarmctl"), arguments: ["instances", "--json", "--data-dir", directory.path])
            #expect(try await listing.waitForExit() == 0)
            let listed = try #require(JSONValue.parse(Data(listing.output.joined().utf8))?.arrayValue)
            #expect(listed.map { $0["id"]?.intValue } == [first.id])

            // Dead: rebooted once, dead again: replaced on another machine.
            await vast.emulator.inject(.exited, instance: first.id)
            _ = try await eventually("a reboot") { await vast.emulator.instanceState(id: first.id)?.reboots == 1 ? true : nil }
            try await Task.sleep(for: .milliseconds(500))
            await vast.emulator.inject(.exited, instance: first.id)
            let second = try await eventually("a replacement") {
                await Self.fleet(vast).first { $0.id != first.id && $0.machineID != first.machineID }
            }
            #expect(await vast.emulator.instanceState(id: first.id)?.destroyed == true)

            // Restarted, the server adopts the instance it has rather than renting another.
            server.signal(SIGTERM)
            #expect(try await server.waitForExit(timeout: .seconds(30)) == 0)
            let createsBefore = await Self.creates(vast)
            server = try Self.serve(directory, vast)
            try await server.waitForLine(containing: "fleet on")
            try await Task.sleep(for: .seconds(2))
            #expect(await Self.creates(vast) == createsBefore)
            #expect(await Self.fleet(vast).map(\.id) == [second.id])
            server.signal(SIGTERM)
            #expect(try await server.waitForExit(timeout: .seconds(30)) == 0)
        }
    }
}
