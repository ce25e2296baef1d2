import AsyncHTTPClient
import LoopbackServer
import NIOCore
import NIOHTTP1
import SwarmCore

import Foundation

/// One swarm-worker process with its own volume, a queue peer and SwarmUI: either launched by the worker through
/// the fake `launch-linux.sh` (which execs the emulator) or, with `attach`, an emulator process started here.
struct WorkerRig {
    let directory: URL
    let volume: URL
    var peer: QueuePeer
    let swarmUIPort: Int
    let healthPort: Int
    var worker: ChildProcess
    let environment: [String: String]
    let emulatorProcess: ChildProcess?

    static let model = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"

    static func start(
        emulatorArgs: String = "--step-ms 20",
        environment extra: [String: String] = [:],
        attach: Bool = false,
        withPresetModels: Bool = true
    ) async throws -> WorkerRig {
        let directory = try Paths.temporaryDirectory("swarm-worker-test")
        let volume = directory.appendingPathComponent("volume")
        let swarmUI = volume.appendingPathComponent("SwarmUI")
        try FileManager.default.createDirectory(at: swarmUI, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: Paths.root.appendingPathComponent("tests/Fixtures/fake-swarmui/launch-linux.sh"),
            to: swarmUI.appendingPathComponent("launch-linux.sh")
        )
        if withPresetModels { try placePresetModels(in: swarmUI.appendingPathComponent("Models")) }
        let peer = try await QueuePeer.start(stateFile: directory.appendingPathComponent("queue.json").path)
        let swarmUIPort = try freeLoopbackPort()
        var emulatorProcess: ChildProcess?
        if attach {
            let process = try ChildProcess(
                "emulator",
                executable: Paths.binary("swarmui-emulator"),
                arguments: ["--port", String(swarmUIPort), "--data-dir", swarmUI.path] + emulatorArgs.split(separator: " ").map(String.init)
            )
            try await process.waitForLine(containing: "SwarmUI emulator listening on")
            emulatorProcess = process
        }
        let healthPort = try freeLoopbackPort()
        var environment = [
            "VOLUME_PATH": volume.path, "SWARMUI_HOST": "127.0.0.1", "SWARMUI_PORT": String(swarmUIPort),
            "SWARMUI_API_URL": "http://127.0.0.1:\(swarmUIPort)", "SWARMUI_ATTACH": attach ? "1" : "0",
            "SWARMUI_EMULATOR_BIN": Paths.binary("swarmui-emulator"), "SWARMUI_EMULATOR_ARGS": emulatorArgs,
            // SwarmUI gets an allow-list environment; the fake launch-linux.sh needs these two.
            "SWARMUI_PASS_ENV": "SWARMUI_EMULATOR_BIN,SWARMUI_EMULATOR_ARGS",
            "SWARM_QUEUE_URL": peer.queueURL, "SWARM_WORKER_KEY": peer.key, "SWARM_WORKER_ID": "test-worker",
            "RUNPOD_PING_INTERVAL": "1000", "STARTUP_TIMEOUT": "60", "SHUTDOWN_GRACE": "1", "SWARM_ERROR_HOLD": "1",
            "WORKER_HEALTH_HOST": "127.0.0.1", "WORKER_HEALTH_PORT": String(healthPort), "LOG_LEVEL": "info",
        ]
        environment.merge(extra) { _, new in new }
        let worker = try ChildProcess("swarm-worker", executable: Paths.binary("swarm-worker"), environment: environment)
        return WorkerRig(
            directory: directory,
            volume: volume,
            peer: peer,
            swarmUIPort: swarmUIPort,
            healthPort: healthPort,
            worker: worker,
            environment: environment,
            emulatorProcess: emulatorProcess
        )
    }

    /// Empty files where the image's manifest puts each model, so the worker finds what its presets need.
    static func placePresetModels(in models: URL) throws {
        let manifest = try Data(contentsOf: Paths.root.appendingPathComponent("builder/models.json"))
        for entry in JSONValue.parse(manifest)?["models"]?.arrayValue ?? [] {
            guard let folder = entry["folder"]?.stringValue, let file = entry["file"]?.stringValue else { continue }
            let path = models.appendingPathComponent(folder).appendingPathComponent(file)
            try FileManager.default.createDirectory(at: path.deletingLastPathComponent(), withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: path.path, contents: Data("model".utf8))
        }
    }

    /// A second worker process on the same volume and configuration (after the first was killed).
    mutating func restartWorker() throws {
        worker = try ChildProcess("swarm-worker", executable: Paths.binary("swarm-worker"), environment: environment)
    }

    func stop() {
        worker.stop()
        peer.stop()
        emulatorProcess?.stop()
        // The emulator the worker launched is in its own process group; a killed worker leaves it to us.
        _ = try? ChildProcess("cleanup", executable: "/usr/bin/env", arguments: ["pkill", "-9", "-f", "--", "--port \(swarmUIPort)"])
        try? FileManager.default.removeItem(at: directory)
    }

    var swarmUIURL: String { "http://127.0.0.1:\(swarmUIPort)" }

    func emulator(_ route: String, _ body: JSONValue = [:]) async throws {
        var request = HTTPClientRequest(url: "\(swarmUIURL)/Emulator/\(route)")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: body.jsonString()))
        _ = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
    }

    func emulatorState() async throws -> JSONValue {
        try await getJSON("\(swarmUIURL)/Emulator/State").1
    }

    func health() async throws -> (Int, JSONValue) {
        try await getJSON("http://127.0.0.1:\(healthPort)/health")
    }

    func swarmUIAnswers() async -> Bool {
        (try? await getJSON("\(swarmUIURL)/Emulator/State")) != nil
    }

    private func getJSON(_ url: String) async throws -> (Int, JSONValue) {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(5))
        let body = try await response.body.collect(upTo: 16 << 20)
        return (Int(response.status.code), JSONValue.parse(Data(body.readableBytesView)) ?? .null)
    }

    /// Waits until the queue has handed `id` to the worker.
    /// The files SwarmUI saved on the volume for job `id` (the worker names them `swarm-jobs/<id>-<batch>`).
    func savedOutputs(of id: String) throws -> [String] {
        let folder = volume.appendingPathComponent("SwarmUI/Output/local/swarm-jobs").path
        guard FileManager.default.fileExists(atPath: folder) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("\(id)-") }
    }

    func waitUntilTaken(_ id: String) async throws {
        _ = try await eventually("job \(id) taken") {
            try await peer.state()["taken"]?.arrayValue?.contains { $0["id"]?.stringValue == id } == true ? true : nil
        }
    }

    static func textToImage(steps: Int = 4) -> JSONValue {
        ["prompt": "a red fox in the snow", "model": .string(model), "steps": .int(steps), "seed": 7]
    }
}
