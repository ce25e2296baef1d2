import Crypto
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
        #expect(pings.contains { $0["report"]?["stage"] == "READY" && $0["report"]?["log_tail"]?.arrayValue?.isEmpty == false },
                "pings report the stage and SwarmUI's last lines to swarmctl-style queues")
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

    @Test func jobStopInterruptsSwarmUIAndReportsNothing() async throws {
        let rig = try await WorkerRig.start(emulatorArgs: "--step-ms 300")
        defer { rig.stop() }
        try await rig.peer.enqueue("j1", WorkerRig.textToImage(steps: 60))
        try await rig.waitUntilTaken("j1")
        try await Task.sleep(for: .milliseconds(500))
        try await rig.peer.requestStop("j1")
        _ = try await eventually("InterruptAll in SwarmUI") { try await rig.emulatorState()["interrupts"]?.intValue.flatMap { $0 > 0 ? $0 : nil } }
        try await rig.worker.waitForLine(containing: "stopped at the queue's request")
        try await rig.peer.enqueue("j2", WorkerRig.textToImage(steps: 2))
        _ = try await rig.peer.result("j2")
        #expect(try await rig.peer.state()["results"]?["j1"] == nil, "a stopped job gets no result from the worker")
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
        #expect(try FileManager.default.contentsOfDirectory(atPath: outbox).filter { $0.hasSuffix(".json") }.isEmpty)
    }

    @Test func badInputFailsTheJobNamingTheField() async throws {
        let rig = try await WorkerRig.start()
        defer { rig.stop() }
        try await rig.peer.enqueue("j1", ["prompt": "x", "model": .string(WorkerRig.model), "width": 833])
        let result = try await rig.peer.result("j1")
        #expect(result["error"]?.stringValue?.hasPrefix("input.width: must be a multiple of 16") == true, "\(result)")
        #expect(result["retryable"] == nil || result["retryable"] == false)
        #expect(try await rig.emulatorState()["generate_requests"] == 0, "nothing reached SwarmUI")
    }
}
