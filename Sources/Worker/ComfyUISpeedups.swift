import Crypto
import Logging
import Subprocess
import SwarmCore

#if canImport(System)
import System
#else
import SystemPackage
#endif

import Foundation

/// ComfyUI's speed-ups that depend on the machine, settled before SwarmUI starts it (docs/performance.md).
///
/// The image ships `--use-sage-attention` in the backend's ExtraArgs. Whether sageattention's triton kernels really run
/// on this GPU (sm_120 included) and triton finds libcuda.so is checked by `builder/gpu-check.py`, once per GPU,
/// driver and image: the answer is cached on the volume, so a warm boot only reads a file. Where the check fails the
/// flag is taken out of `Data/Backends.fds`, so ComfyUI starts with PyTorch attention instead of failing over in
/// every attention call; the libcuda folder the check found is handed to ComfyUI as TRITON_LIBCUDA_PATH.
public struct ComfyUISpeedups: Sendable {
    public enum SageAttention: String, Sendable, CaseIterable {
        /// Enabled where the check passes.
        case auto
        /// Enabled without a check.
        case on
        case off
    }

    public static let sageFlag = "--use-sage-attention"

    public var sageAttention: SageAttention
    /// `$VOLUME_PATH/SwarmUI/Data/Backends.fds`.
    public var backendsFile: String
    /// `$VOLUME_PATH/.swarm-worker/gpu-check.json`.
    public var cacheFile: String
    public var checkScript: String
    public var python: String
    /// What identifies the machine's GPU and driver for the cache: read, never parsed.
    public var driverFiles: [String]
    public var timeout: Duration

    public init(
        sageAttention: SageAttention,
        backendsFile: String,
        cacheFile: String,
        checkScript: String,
        python: String,
        driverFiles: [String] = ComfyUISpeedups.nvidiaDriverFiles(),
        timeout: Duration = .seconds(300)
    ) {
        self.sageAttention = sageAttention
        self.backendsFile = backendsFile
        self.cacheFile = cacheFile
        self.checkScript = checkScript
        self.python = python
        self.driverFiles = driverFiles
        self.timeout = timeout
    }

    public init(configuration: WorkerConfiguration) {
        self.init(
            sageAttention: configuration.sageAttention,
            backendsFile: configuration.swarmUIFolder + "/Data/Backends.fds",
            cacheFile: Self.cacheFile(volume: configuration.volumePath),
            checkScript: configuration.gpuCheckScript,
            python: configuration.gpuCheckPython
        )
    }

    static func cacheFile(volume: String) -> String { volume + "/.swarm-worker/gpu-check.json" }

    /// The check's answer, as `gpu-check.py` prints it, with the key it was made under.
    struct Check: Codable, Sendable, Equatable {
        var key: String?
        var sageAttention: Bool
        var detail: String
        var gpu: String?
        var capability: String?
        var libcudaDir: String?

        enum CodingKeys: String, CodingKey {
            case key
            case sageAttention = "sage_attention"
            case detail, gpu, capability
            case libcudaDir = "libcuda_dir"
        }
    }

    /// Settles the flag in Backends.fds; never fails the boot (a speed-up is not worth an instance).
    public func apply(logger: Logger) async {
        let enable: Bool
        switch sageAttention {
        case .on: enable = true
        case .off: enable = false
        case .auto:
            guard let check = await check(logger: logger) else { return }
            enable = check.sageAttention
            logger.log(
                level: enable ? .info : .warning,
                "sageattention \(enable ? "enabled" : "disabled, ComfyUI uses PyTorch attention"): \(check.detail)"
            )
        }
        guard let text = try? String(contentsOfFile: backendsFile, encoding: .utf8) else {
            logger.warning("cannot read \(backendsFile); ComfyUI's flags are left as they are")
            return
        }
        let updated = Self.settingFlag(Self.sageFlag, enabled: enable, in: text)
        guard updated != text else { return }
        do {
            try Data(updated.utf8).write(to: URL(fileURLWithPath: backendsFile), options: .atomic)
        } catch {
            logger.warning("cannot update \(backendsFile): \(error.localizedDescription); ComfyUI's flags are left as they are")
        }
    }

    /// The cached answer when it was made on this GPU, driver and image; else runs the check and caches it. Nil when
    /// there is nothing to check with (no script or python: a machine without the image).
    func check(logger: Logger) async -> Check? {
        guard FileManager.default.isExecutableFile(atPath: python), let script = FileManager.default.contents(atPath: checkScript) else {
            logger.info("no GPU check here (\(python) \(checkScript)); ComfyUI's flags are left as shipped")
            return nil
        }
        var digest = SHA256()
        digest.update(data: script)
        for file in driverFiles { digest.update(data: FileManager.default.contents(atPath: file) ?? Data(file.utf8)) }
        let key = digest.finalize().hexString
        if let data = FileManager.default.contents(atPath: cacheFile), let cached = try? JSONDecoder().decode(Check.self, from: data),
            cached.key == key
        {
            return cached
        }
        logger.info("checking that sageattention runs on this GPU (once per GPU, driver and image)")
        guard var check = await run(logger: logger) else { return nil }
        check.key = key
        if let data = try? JSONEncoder().encode(check) {
            try? FileManager.default.createDirectory(
                atPath: URL(fileURLWithPath: cacheFile).deletingLastPathComponent().path,
                withIntermediateDirectories: true
            )
            try? data.write(to: URL(fileURLWithPath: cacheFile), options: .atomic)
        }
        return check
    }

    private func run(logger: Logger) async -> Check? {
        let (python, script, timeout) = (python, checkScript, timeout)
        let output: String? = await withTaskGroup(of: String?.self) { group in
            group.addTask {
                let result = try? await Subprocess.run(
                    .path(FilePath(python)),
                    arguments: [script],
                    output: .string(limit: 1 << 16),
                    error: .discarded
                )
                return result?.standardOutput
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let line = output?.split(separator: "\n").last, let check = try? JSONDecoder().decode(Check.self, from: Data(line.utf8)) else {
            logger.warning("the GPU check gave no answer within \(Int(timeout.seconds)) s; ComfyUI's flags are left as they are")
            return nil
        }
        return check
    }

    /// The `ExtraArgs:` line of a SwarmUI backends file with `flag` present or absent; everything else untouched. A
    /// file without the line (seeded by an older image) gets one after `StartScript:` when the flag is wanted.
    static func settingFlag(_ flag: String, enabled: Bool, in text: String) -> String {
        var lines = text.components(separatedBy: "\n")
        func split(_ line: String) -> (indent: Substring, rest: Substring) {
            let rest = line.drop { $0 == " " || $0 == "\t" }
            return (line.prefix(line.count - rest.count), rest)
        }
        var found = false
        for index in lines.indices {
            let (indent, rest) = split(lines[index])
            guard rest.hasPrefix("ExtraArgs:") else { continue }
            found = true
            var arguments = rest.dropFirst("ExtraArgs:".count).split(separator: " ").map(String.init).filter { $0 != flag }
            if enabled { arguments.append(flag) }
            lines[index] = indent + "ExtraArgs:" + (arguments.isEmpty ? "" : " " + arguments.joined(separator: " "))
        }
        if !found, enabled, let index = lines.firstIndex(where: { split($0).rest.hasPrefix("StartScript:") }) {
            lines.insert(split(lines[index]).indent + "ExtraArgs: " + flag, at: index + 1)
        }
        return lines.joined(separator: "\n")
    }

    /// What SwarmUI (and so ComfyUI) gets in its environment from the check: the libcuda folder triton needs, unless
    /// the operator set one in `given` (the worker's `swarmUIEnvironment`).
    public static func launchEnvironment(volume: String, given: [String: String] = [:]) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: cacheFile(volume: volume)),
            let check = try? JSONDecoder().decode(Check.self, from: data), let directory = check.libcudaDir,
            given["TRITON_LIBCUDA_PATH"] == nil
        else { return [:] }
        return ["TRITON_LIBCUDA_PATH": directory]
    }

    /// The NVIDIA driver's version and each GPU's description, as the kernel module reports them.
    public static func nvidiaDriverFiles() -> [String] {
        let gpus = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/driver/nvidia/gpus")) ?? []
        return ["/proc/driver/nvidia/version"] + gpus.sorted().map { "/proc/driver/nvidia/gpus/\($0)/information" }
    }
}
