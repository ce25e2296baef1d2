import Logging
import Testing

@testable import Worker

import Foundation

/// The GPU check's effect on the backend's flags, its cache on the volume, and the environment it hands to SwarmUI.
@Suite struct ComfyUISpeedupsTests {
    static let backends = """
        0:
            type: comfyui_selfstart
            settings:
                StartScript: dlbackend/ComfyUI/main.py
                ExtraArgs: --use-sage-attention
                GPU_ID: 0
        """

    @Test func theFlagIsAddedOrRemovedAndNothingElseChanges() {
        let without = ComfyUISpeedups.settingFlag("--use-sage-attention", enabled: false, in: Self.backends)
        #expect(without == Self.backends.replacingOccurrences(of: "ExtraArgs: --use-sage-attention", with: "ExtraArgs:"))
        #expect(ComfyUISpeedups.settingFlag("--use-sage-attention", enabled: true, in: without) == Self.backends)
        #expect(ComfyUISpeedups.settingFlag("--use-sage-attention", enabled: true, in: Self.backends) == Self.backends)
        let other = Self.backends.replacingOccurrences(of: "ExtraArgs: --use-sage-attention", with: "ExtraArgs: --lowvram --use-sage-attention")
        #expect(ComfyUISpeedups.settingFlag("--use-sage-attention", enabled: false, in: other).contains("        ExtraArgs: --lowvram\n"))
        // A Backends.fds from an older image has no ExtraArgs line: it gets one beside StartScript.
        let old = Self.backends.replacingOccurrences(of: "        ExtraArgs: --use-sage-attention\n", with: "")
        #expect(ComfyUISpeedups.settingFlag("--use-sage-attention", enabled: true, in: old) == Self.backends)
        #expect(ComfyUISpeedups.settingFlag("--use-sage-attention", enabled: false, in: old) == old)
    }

    /// A volume with Backends.fds, a fake "python" that prints the check's answer and counts its runs, a driver file.
    struct Machine {
        let folder: ModelsFolder
        var volume: String { folder.root }
        var backends: String { volume + "/SwarmUI/Data/Backends.fds" }
        var runs: String { volume + "/runs" }
        var driver: String { volume + "/driver-version" }

        init(answer: String) throws {
            folder = try ModelsFolder()
            try FileManager.default.createDirectory(atPath: volume + "/SwarmUI/Data", withIntermediateDirectories: true)
            try ComfyUISpeedupsTests.backends.write(toFile: backends, atomically: true, encoding: .utf8)
            try "#!/bin/sh\necho run >> '\(runs)'\necho 'starting'\necho '\(answer)'\n".write(
                toFile: volume + "/python",
                atomically: true,
                encoding: .utf8
            )
            chmod(volume + "/python", 0o755)
            try "print('check')\n".write(toFile: volume + "/gpu-check.py", atomically: true, encoding: .utf8)
            try "NVRM version: 570.1\n".write(toFile: driver, atomically: true, encoding: .utf8)
        }

        func speedups(_ mode: ComfyUISpeedups.SageAttention = .auto) -> ComfyUISpeedups {
            ComfyUISpeedups(
                sageAttention: mode,
                backendsFile: backends,
                cacheFile: ComfyUISpeedups.cacheFile(volume: volume),
                checkScript: volume + "/gpu-check.py",
                python: volume + "/python",
                driverFiles: [driver]
            )
        }

        var runCount: Int { ((try? String(contentsOfFile: runs, encoding: .utf8)) ?? "").split(separator: "\n").count }
        var extraArgs: String? {
            (try? String(contentsOfFile: backends, encoding: .utf8))?.split(separator: "\n").first { $0.contains("ExtraArgs:") }
                .map { $0.trimmingCharacters(in: .whitespaces) }
        }
    }

    @Test func aFailedCheckDropsTheFlagAndIsCachedUntilTheDriverChanges() async throws {
        let machine = try Machine(
            answer:
                #"{"sage_attention": false, "detail": "sageattn failed on RTX 5090 (sm_120)", "gpu": "RTX 5090", "capability": "12.0", "libcuda_dir": "/usr/lib/wsl/lib"}"#
        )
        await machine.speedups().apply(logger: quiet)
        #expect(machine.extraArgs == "ExtraArgs:")
        #expect(machine.runCount == 1)
        #expect(ComfyUISpeedups.launchEnvironment(volume: machine.volume) == ["TRITON_LIBCUDA_PATH": "/usr/lib/wsl/lib"])

        // A warm boot reads the cache; another driver means another check.
        await machine.speedups().apply(logger: quiet)
        #expect(machine.runCount == 1)
        try "NVRM version: 575.2\n".write(toFile: machine.driver, atomically: true, encoding: .utf8)
        await machine.speedups().apply(logger: quiet)
        #expect(machine.runCount == 2)

        // `on` puts the flag back without a check.
        await machine.speedups(.on).apply(logger: quiet)
        #expect(machine.extraArgs == "ExtraArgs: --use-sage-attention")
        #expect(machine.runCount == 2)
    }

    /// The operator's own TRITON_LIBCUDA_PATH, read with the rest of the worker's configuration, is left alone.
    @Test func theOperatorsLibcudaPathWinsOverTheChecks() async throws {
        let machine = try Machine(
            answer: #"{"sage_attention": true, "detail": "ok", "gpu": "RTX 5090", "capability": "12.0", "libcuda_dir": "/usr/lib/wsl/lib"}"#
        )
        await machine.speedups().apply(logger: quiet)
        let configuration = try WorkerConfiguration(environment: ["VOLUME_PATH": machine.volume, "TRITON_LIBCUDA_PATH": "/opt/cuda/lib"])
        #expect(configuration.swarmUIEnvironment["TRITON_LIBCUDA_PATH"] == "/opt/cuda/lib")
        #expect(ComfyUISpeedups.launchEnvironment(volume: machine.volume, given: configuration.swarmUIEnvironment).isEmpty)
        #expect(ComfyUISpeedups.launchEnvironment(volume: machine.volume, given: [:]) == ["TRITON_LIBCUDA_PATH": "/usr/lib/wsl/lib"])
    }

    @Test func aPassingCheckKeepsTheFlagAndOffRemovesIt() async throws {
        let machine = try Machine(answer: #"{"sage_attention": true, "detail": "ok", "gpu": "RTX 4090", "capability": "8.9", "libcuda_dir": null}"#)
        await machine.speedups().apply(logger: quiet)
        #expect(machine.extraArgs == "ExtraArgs: --use-sage-attention")
        #expect(ComfyUISpeedups.launchEnvironment(volume: machine.volume).isEmpty)
        await machine.speedups(.off).apply(logger: quiet)
        #expect(machine.extraArgs == "ExtraArgs:")
    }

    @Test func withoutTheImagesPythonTheFlagsStayAsShipped() async throws {
        let machine = try Machine(answer: "{}")
        var speedups = machine.speedups()
        speedups.python = machine.volume + "/no-such-python"
        await speedups.apply(logger: quiet)
        #expect(machine.extraArgs == "ExtraArgs: --use-sage-attention")
        #expect(!FileManager.default.fileExists(atPath: ComfyUISpeedups.cacheFile(volume: machine.volume)))
    }
}
