import AsyncHTTPClient
import Crypto
import NIOCore
import SwarmCore
import Testing

import Foundation

/// swarm-worker as a real process, with SwarmUI (the emulator, launched by the worker through launch-linux.sh) and
/// a queue peer as real processes, over loopback. Serialized: each test owns a handful of processes.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct WorkerProcessTests {
    @Test func runsJobsThroughTheSwarmUIItLaunched() async throws {
        let rig = try await WorkerRig.start(emulatorArgs: "--step-ms 150")
        defer { rig.stop() }
        try await rig.peer.enqueue("j1", WorkerRig.textToImage(steps: 12))
        let result = try await rig.peer.result("j1")
        let file = try #require(result["output"]?["files"]?.arrayValue?.first)
        #expect(result["error"] == nil)
        #expect(file["content_type"] == "image/png")
        // The data URL carries exactly the bytes the sha256 and size describe.
        let url = try #require(file["url"]?.stringValue)
        let data = try #require(Data(base64Encoded: String(url.drop { $0 != "," }.dropFirst())))
        #expect(file["bytes"]?.intValue == data.count)
        #expect(file["sha256"]?.stringValue == SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined())
        #expect(result["output"]?["mode"] == "text-to-image")

        let state = try await rig.peer.state()
        #expect(state["progress"]?["j1"]?.arrayValue?.isEmpty == false, "progress updates reach the queue while the job runs")
        let pings = state["pings"]?.arrayValue ?? []
        #expect(pings.contains { $0["job_ids"]?.arrayValue?.contains("j1") == true }, "pings name the job in progress")
        #expect(pings.allSatisfy { $0["runpod_version"] == "1.12.0" })
        #expect(
            pings.contains { $0["report"]?["stage"] == "READY" && $0["report"]?["log_tail"]?.arrayValue?.isEmpty == false },
            "pings report the stage and SwarmUI's last lines to swarmctl-style queues"
        )
        #expect(state["deliveries"]?.arrayValue?.first?["is_stream"] == "false")
        let (status, health) = try await rig.health()
        #expect(status == 200)
        #expect(health["stage"] == "READY")

        // Delivered: SwarmUI's own copy is deleted from the volume, so bulk runs do not fill it.
        try await eventually("SwarmUI's copy of j1's output deleted", timeout: .seconds(10)) {
            try rig.savedOutputs(of: "j1").isEmpty ? true : nil
        }

        // SwarmUI restarting forgets every session: the worker renews its session and the next job still runs.
        try await rig.emulator("Restart")
        try await rig.peer.enqueue("j2", WorkerRig.textToImage())
        #expect(try await rig.peer.result("j2")["output"]?["files"]?.arrayValue?.count == 1)
    }

    @Test func keepsSwarmUIsCopyOfDeliveredOutputsWhenAskedTo() async throws {
        let rig = try await WorkerRig.start(environment: ["SWARM_KEEP_SWARMUI_OUTPUTS": "1"])
        defer { rig.stop() }
        try await rig.peer.enqueue("kept", WorkerRig.textToImage())
        #expect(try await rig.peer.result("kept")["error"] == nil)
        // Deletion would follow the result within milliseconds; give it ample time not to happen.
        try await Task.sleep(for: .seconds(1))
        #expect(try rig.savedOutputs(of: "kept").count == 1)
    }

    @Test func waitsWhileTheBackendLoads() async throws {
        let rig = try await WorkerRig.start(emulatorArgs: "--loading-seconds 4 --step-ms 10")
        defer { rig.stop() }
        try await rig.peer.enqueue("j1", WorkerRig.textToImage())
        try await rig.worker.waitForLine(containing: "waiting for SwarmUI")
        let (_, health) = try await rig.health()
        #expect(health["stage"] == "STARTING_APP")
        #expect(try await rig.peer.state()["taken"]?.arrayValue?.isEmpty == true, "no job is taken before SwarmUI can generate")
        #expect(try await rig.peer.result("j1")["output"] != nil)
        // At READY the worker logs where the boot's time went, SwarmUI's loading (4 s here) included.
        let timings = try #require(rig.worker.output.first { $0.contains("READY") && $0.contains("after start") })
        for step in ["process start", "seed check", "preset models", "SwarmUI launched", "SwarmUI answers", "backend ready"] {
            #expect(timings.contains(step), "\(step) in: \(timings)")
        }
    }

    /// A manifest of one model at `url` (a zero-filled file of `size` bytes), written to a new directory. A LoRA, since
    /// zeros are no GGUF file and a diffusion model in GGUF form has its header checked.
    static func manifest(url: String, size: Int, extra: String = "") throws -> (path: String, directory: URL) {
        let directory = try Paths.temporaryDirectory("swarm-worker-manifest")
        let sha = SHA256.hash(data: Data(count: size)).map { String(format: "%02x", $0) }.joined()
        let text = """
            {"schema": 1, "models": [{"name": "slow.safetensors", "subtype": "LoRA", "folder": "Lora", "file": "slow.safetensors",
              "url": "\(url)", "size_bytes": \(size), "sha256": "\(sha)"\(extra)}]}
            """
        let path = directory.appendingPathComponent("models.json").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return (path, directory)
    }

    @Test func pingsFromTheFirstSecondWhileTheModelsDownload() async throws {
        let files = try await QueuePeer.start(stateFile: try Paths.temporaryDirectory("trickle").appendingPathComponent("state.json").path)
        defer { files.stop() }
        let size = 4_000_000
        let manifest = try Self.manifest(url: "http://127.0.0.1:\(files.port)/control/trickle/slow.safetensors?bytes=\(size)&seconds=8", size: size)
        defer { try? FileManager.default.removeItem(at: manifest.directory) }
        let rig = try await WorkerRig.start(environment: ["SWARM_MODELS_FILE": manifest.path])
        defer { rig.stop() }

        // The queue hears of the download while it runs, with its bytes, long before the worker can take a job.
        let downloading = try await eventually("a DOWNLOADING ping with progress", timeout: .seconds(30)) { () async throws -> JSONValue? in
            try await rig.peer.state()["pings"]?.arrayValue?.lazy.compactMap { $0["report"] }.first { report in
                guard report["stage"] == "DOWNLOADING", let done = report["download"]?["done_bytes"]?.intValue else { return false }
                return done > 0 && done < size
            }
        }
        #expect(downloading["download"]?["total_bytes"]?.intValue == size)
        #expect(downloading["download"]?["percent"]?.doubleValue.map { $0 > 0 && $0 < 100 } == true)
        let (_, health) = try await rig.health()
        #expect(health["stage"] == "DOWNLOADING")

        // Then READY, and the stages came in boot order.
        _ = try await eventually("a READY ping", timeout: .seconds(60)) { () async throws -> Bool? in
            try await rig.peer.state()["pings"]?.arrayValue?.contains { $0["report"]?["stage"] == "READY" } == true ? true : nil
        }
        let stages = try await rig.peer.state()["pings"]?.arrayValue?.compactMap { $0["report"]?["stage"]?.stringValue } ?? []
        let order = ["INITIALIZING", "PROVISIONING", "DOWNLOADING", "STARTING_APP", "READY"]
        let ranks = stages.compactMap { order.firstIndex(of: $0) }
        #expect(ranks == ranks.sorted(), "stages in boot order: \(stages)")
        #expect(["INITIALIZING", "PROVISIONING"].contains(stages.first ?? ""), "the first ping comes before the downloads: \(stages)")
    }

    @Test func aPreparationErrorIsReportedNotRestartedInALoop() async throws {
        let manifest = try Self.manifest(
            url: "http://127.0.0.1:9/never",
            size: 1000,
            extra: #", "token_env": "CIVITAI_API_TOKEN", "token_required": true"#
        )
        defer { try? FileManager.default.removeItem(at: manifest.directory) }
        let rig = try await WorkerRig.start(environment: ["SWARM_MODELS_FILE": manifest.path, "SWARM_ERROR_HOLD": "600", "CIVITAI_API_TOKEN": ""])
        defer { rig.stop() }
        let error = try await eventually("an ERROR ping", timeout: .seconds(30)) { () async throws -> JSONValue? in
            try await rig.peer.state()["pings"]?.arrayValue?.lazy.compactMap { $0["report"] }.first { $0["stage"] == "ERROR" }
        }
        #expect(error["error_kind"] == "permanent")
        #expect(error["error"]?.stringValue?.contains("CIVITAI_API_TOKEN") == true, "\(error)")
        // Still there and still saying so a few pings later, rather than exiting into its supervisor's restart loop.
        let seen = try await rig.peer.state()["pings"]?.arrayValue?.filter { $0["report"]?["stage"] == "ERROR" }.count ?? 0
        try await Task.sleep(for: .seconds(3))
        #expect(rig.worker.isRunning)
        let later = try await rig.peer.state()["pings"]?.arrayValue?.filter { $0["report"]?["stage"] == "ERROR" }.count ?? 0
        #expect(later >= seen + 2)
        let (status, health) = try await rig.health()
        #expect(status == 503 && health["error_kind"] == "permanent")
        // SIGTERM ends the wait at once.
        rig.worker.signal(SIGTERM)
        #expect(try await rig.worker.waitForExit(timeout: .seconds(10)) == 3)
    }

    @Test func anInvalidConfigurationIsReportedToTheQueueBeforeExiting() async throws {
        let rig = try await WorkerRig.start(environment: ["STARTUP_TIMEOUT": "soon", "SWARM_ERROR_HOLD": "600"])
        defer { rig.stop() }
        let error = try await eventually("an ERROR ping", timeout: .seconds(30)) { () async throws -> JSONValue? in
            try await rig.peer.state()["pings"]?.arrayValue?.lazy.compactMap { $0["report"] }.first { $0["stage"] == "ERROR" }
        }
        #expect(error["error_kind"] == "permanent")
        #expect(error["error"]?.stringValue?.contains("STARTUP_TIMEOUT='soon'") == true, "\(error)")
        try await Task.sleep(for: .seconds(2))
        #expect(rig.worker.isRunning, "held, not exited into a restart loop")
        rig.worker.signal(SIGTERM)
        #expect(try await rig.worker.waitForExit(timeout: .seconds(10)) == 2)
    }

    @Test func aPreparationErrorReachesTheControlPlane() async throws {
        let directory = try Paths.temporaryDirectory("swarmctl-boot")
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try ChildProcess(
            "swarmctl",
            executable: Paths.binary("swarmctl"),
            arguments: ["serve", "--port", "0", "--data-dir", directory.path],
            environment: ["SWARM_API_KEYS": "", "SWARM_WORKER_KEYS": ""]
        )
        defer { server.stop() }
        let base = "http://127.0.0.1:\(try await server.servePort())/v2/swarmui"
        let manifest = try Self.manifest(
            url: "http://127.0.0.1:9/never",
            size: 1000,
            extra: #", "token_env": "CIVITAI_API_TOKEN", "token_required": true"#
        )
        defer { try? FileManager.default.removeItem(at: manifest.directory) }
        let rig = try await WorkerRig.start(environment: [
            "SWARM_MODELS_FILE": manifest.path, "SWARM_ERROR_HOLD": "600", "CIVITAI_API_TOKEN": "", "SWARM_QUEUE_URL": base,
        ])
        defer { rig.stop() }
        // swarmctl's RunPod-style health counts the worker in ERROR as unhealthy, while it stays up.
        let workers = try await eventually("the worker counted unhealthy", timeout: .seconds(30)) { () async throws -> JSONValue? in
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "\(base)/health"), timeout: .seconds(10))
            let health = JSONValue.parse(Data(try await response.body.collect(upTo: 1 << 20).readableBytesView))
            return health?["workers"]?["unhealthy"] == 1 ? health?["workers"] : nil
        }
        #expect(workers == ["idle": 0, "running": 0, "unhealthy": 1, "initializing": 0, "throttled": 0, "stopped": 0])
        #expect(rig.worker.isRunning)
    }

    @Test func failsFastWhenTheBackendIsErrored() async throws {
        let rig = try await WorkerRig.start(emulatorArgs: "--backend-errored")
        defer { rig.stop() }
        let status = try await rig.worker.waitForExit(timeout: .seconds(30))
        #expect(status == 3)
        #expect(rig.worker.output.contains { $0.contains("errored") && $0.contains("critical") })
        #expect(await !rig.swarmUIAnswers(), "SwarmUI was stopped with the worker")
    }

    @Test func failsFastWhenSwarmUIExitsDuringStart() async throws {
        let rig = try await WorkerRig.start(environment: ["SWARMUI_EMULATOR_BIN": "/bin/false"])
        defer { rig.stop() }
        let status = try await rig.worker.waitForExit(timeout: .seconds(30))
        #expect(status == 3)
        #expect(rig.worker.output.contains { $0.contains("SwarmUI exited during start") })
    }

    @Test func missingPresetModelsStopTheWorkerBeforeSwarmUIStarts() async throws {
        let rig = try await WorkerRig.start(withPresetModels: false)
        defer { rig.stop() }
        let status = try await rig.worker.waitForExit(timeout: .seconds(30))
        #expect(status == 3)
        #expect(rig.worker.output.contains { $0.contains("Wan2.2-I2V-A14B-HighNoise-Q4_K_M.gguf") })
        #expect(!rig.worker.output.contains { $0.contains("launching SwarmUI") }, "no SwarmUI is started for a volume that cannot serve the presets")
    }

    @Test func swarmUICrashMidJobIsRetryableAndSwarmUIIsRestarted() async throws {
        let rig = try await WorkerRig.start(emulatorArgs: "--step-ms 300")
        defer { rig.stop() }
        try await rig.peer.enqueue("j1", WorkerRig.textToImage(steps: 30))
        try await rig.waitUntilTaken("j1")
        try await Task.sleep(for: .seconds(1))
        try? await rig.emulator("Crash", ["exit_code": 137])
        let failed = try await rig.peer.result("j1")
        #expect(failed["retryable"] == true, "a crash is not the job's fault: \(failed)")
        #expect(failed["error"]?.stringValue?.contains("SwarmUI") == true)
        try await rig.worker.waitForLine(containing: "SwarmUI died")
        try await rig.peer.enqueue("j2", WorkerRig.textToImage(steps: 2))
        #expect(try await rig.peer.result("j2")["output"]?["files"] != nil, "the relaunched SwarmUI runs the next job")
        let (_, health) = try await rig.health()
        #expect(health["swarmui_restarts"] == 1)
    }

    @Test func comfyUICrashMidJobIsWaitedOutAndTheJobIsRetryable() async throws {
        let rig = try await WorkerRig.start(emulatorArgs: "--step-ms 100")
        defer { rig.stop() }
        try await rig.peer.enqueue("j1", WorkerRig.textToImage(steps: 60))
        try await rig.waitUntilTaken("j1")
        try await Task.sleep(for: .seconds(1))
        // SwarmUI marks the backend errored at once and restarts ComfyUI about 2 s later; the process stays up.
        try await rig.emulator("ComfyCrash", ["errored_ms": 3000, "loading_ms": 1000])
        let failed = try await rig.peer.result("j1")
        #expect(failed["retryable"] == true, "a ComfyUI crash is not the job's fault: \(failed)")
        try await rig.peer.enqueue("j2", WorkerRig.textToImage(steps: 2))
        #expect(try await rig.peer.result("j2")["output"]?["files"] != nil, "the worker waited for the backend and runs the next job")
        let (status, health) = try await rig.health()
        #expect(status == 200)
        #expect(health["stage"] == "READY")
        #expect(health["swarmui_restarts"] == 0, "SwarmUI itself was never relaunched")
        #expect(rig.worker.output.contains { $0.contains("waiting up to 60 s for SwarmUI to restart it") })
        #expect(!rig.worker.output.contains { $0.contains(rig.peer.key) }, "the worker key never reaches the log")
    }

    @Test func missingGGUFSupportStopsTheWorkerWithAnErrorNamingIt() async throws {
        let rig = try await WorkerRig.start(emulatorArgs: "--drop-feature gguf --drop-node UnetLoaderGGUF")
        defer { rig.stop() }
        try await rig.peer.enqueue("j1", WorkerRig.textToImage())
        let status = try await rig.worker.waitForExit(timeout: .seconds(60))
        #expect(status == 3)
        #expect(
            rig.worker.output.contains {
                $0.contains("supported_features lacks gguf") && $0.contains("UnetLoaderGGUF") && $0.contains("ComfyUI-GGUF")
            }
        )
        #expect(try await rig.peer.state()["taken"]?.arrayValue?.isEmpty == true, "no job is taken by a worker that cannot run it")
    }

    @Test func sigtermDuringAJobReportsItRetryableAndStopsSwarmUI() async throws {
        let rig = try await WorkerRig.start(emulatorArgs: "--step-ms 500")
        defer { rig.stop() }
        try await rig.peer.enqueue("j1", WorkerRig.textToImage(steps: 60))
        try await rig.worker.waitForLine(containing: "generating")
        rig.worker.signal(SIGTERM)
        let status = try await rig.worker.waitForExit(timeout: .seconds(40))
        #expect(status == 0)
        let result = try await rig.peer.result("j1", timeout: .seconds(5))
        #expect(result["retryable"] == true, "\(result)")
        #expect(await !rig.swarmUIAnswers(), "SIGTERM reached SwarmUI's process group")
    }

    @Test func resultOutlivesAQueueOutageAndAWorkerRestart() async throws {
        var rig = try await WorkerRig.start(emulatorArgs: "--step-ms 200")
        defer { rig.stop() }
        try await rig.peer.enqueue("j1", WorkerRig.textToImage(steps: 10))
        try await rig.waitUntilTaken("j1")
        // The queue goes away while the job runs; the result waits on the volume.
        try await rig.peer.kill()
        try await rig.worker.waitForLine(containing: "kept on the volume")
        let outbox = rig.volume.appendingPathComponent(".swarm-worker/outbox").path
        #expect(try FileManager.default.contentsOfDirectory(atPath: outbox).contains { $0.hasSuffix(".json") })
        // The worker dies too (kill -9); a new one on the same volume delivers once the queue is back.
        rig.worker.signal(SIGKILL)
        _ = try await rig.worker.waitForExit()
        rig.peer = try await rig.peer.restarted()
        try rig.restartWorker()
        let result = try await rig.peer.result("j1")
        #expect(result["output"]?["files"] != nil)
        try await Task.sleep(for: .seconds(2))
        #expect(try await rig.peer.deliveries(of: "j1") == 1, "the result arrives exactly once")
        // Removed once acknowledged (on a loaded machine the acknowledgement can take a moment past the delivery).
        _ = try await eventually("the outbox emptied", timeout: .seconds(20)) {
            try FileManager.default.contentsOfDirectory(atPath: outbox).contains { $0.hasSuffix(".json") } ? nil : true
        }
    }
}
