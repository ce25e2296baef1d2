import Testing

@testable import Worker

import Foundation

/// A fake seed (launch script, a nested file, the venv link, Data/) and an empty volume, in a temporary directory.
final class SeedFixture: Sendable {
    let root: String
    var seed: String { root + "/seed" }
    var volume: String { root + "/volume" }
    var install: String { volume + "/SwarmUI" }

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("seed-\(UUID().uuidString)").path
        let files = FileManager.default
        try files.createDirectory(atPath: seed + "/src/bin/live_release", withIntermediateDirectories: true)
        try files.createDirectory(atPath: seed + "/dlbackend/ComfyUI", withIntermediateDirectories: true)
        try files.createDirectory(atPath: seed + "/Data", withIntermediateDirectories: true)
        try files.createDirectory(atPath: volume, withIntermediateDirectories: true)
        try write(seed + "/launch-linux.sh", "#!/bin/bash\necho launch\n", mode: 0o755)
        try write(seed + "/src/bin/live_release/SwarmUI", "binary", mode: 0o750)
        try write(seed + "/src/bin/last_build", "062407c", mode: 0o644)
        try write(seed + "/Data/Settings.fds", "IsInstalled: true\n", mode: 0o644)
        try write(seed + "/Data/Backends.fds", "0:\n    type: comfyui_selfstart\n", mode: 0o644)
        try files.createSymbolicLink(atPath: seed + "/dlbackend/ComfyUI/venv", withDestinationPath: "/opt/venv")
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func write(_ path: String, _ text: String, mode: Int = 0o644) throws {
        try FileManager.default.createDirectory(
            atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path,
            withIntermediateDirectories: true
        )
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    func mode(_ path: String) -> Int? {
        (try? FileManager.default.attributesOfItem(atPath: path)[.posixPermissions]) as? Int
    }

    /// Names in the volume folder, to spot leftovers from a copy.
    var volumeEntries: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: volume)) ?? []).sorted() }

    var seeder: SwarmUISeed { SwarmUISeed(seedPath: seed, installPath: install) }
}

@Suite struct SwarmUISeedTests {
    @Test func firstBootCopiesTheSeedKeepingLinksAndModes() throws {
        let fixture = try SeedFixture()
        let outcome = try fixture.seeder.ensureInstalled(logger: quiet)
        guard case .copied(let files, let bytes) = outcome else {
            Issue.record("expected a copy, got \(outcome)")
            return
        }
        #expect(files == 5 && bytes > 0)
        #expect(fixture.seeder.isInstalled)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: fixture.install + "/dlbackend/ComfyUI/venv") == "/opt/venv")
        #expect(fixture.mode(fixture.install + "/launch-linux.sh") == 0o755)
        #expect(fixture.mode(fixture.install + "/src/bin/live_release/SwarmUI") == 0o750)
        #expect(fixture.read(fixture.install + "/Data/Settings.fds") == "IsInstalled: true\n")
        #expect(fixture.volumeEntries == ["SwarmUI"])
    }

    @Test func laterBootsLeaveTheInstallAndItsDataAlone() throws {
        let fixture = try SeedFixture()
        _ = try fixture.seeder.ensureInstalled(logger: quiet)
        try fixture.write(fixture.install + "/Models/diffusion_models/model.gguf", "weights")
        try fixture.write(fixture.install + "/Data/Settings.fds", "IsInstalled: true\nedited\n")
        #expect(try fixture.seeder.ensureInstalled(logger: quiet) == .alreadyInstalled)
        #expect(fixture.read(fixture.install + "/Models/diffusion_models/model.gguf") == "weights")
        #expect(fixture.read(fixture.install + "/Data/Settings.fds") == "IsInstalled: true\nedited\n")
    }

    @Test func aVolumeWithModelsButNoSwarmUIKeepsItsDataAndGetsTheRest() throws {
        let fixture = try SeedFixture()
        try fixture.write(fixture.install + "/Models/Lora/mine.safetensors", "lora")
        try fixture.write(fixture.install + "/Data/Settings.fds", "IsInstalled: true\nmine\n")
        try fixture.write(fixture.install + "/src/stale", "from an interrupted merge")
        _ = try fixture.seeder.ensureInstalled(logger: quiet)
        #expect(fixture.seeder.isInstalled)
        #expect(fixture.read(fixture.install + "/Models/Lora/mine.safetensors") == "lora")
        #expect(fixture.read(fixture.install + "/Data/Settings.fds") == "IsInstalled: true\nmine\n")
        #expect(fixture.read(fixture.install + "/Data/Backends.fds") != nil)
        #expect(fixture.read(fixture.install + "/src/stale") == nil)
        #expect(fixture.read(fixture.install + "/src/bin/last_build") == "062407c")
        #expect(fixture.volumeEntries == ["SwarmUI"])
    }

    @Test func anInterruptedCopyLeavesNoHalfInstall() throws {
        let fixture = try SeedFixture()
        struct Interrupted: Error {}
        #expect(throws: SwarmUISeedError.self) {
            try fixture.seeder.ensureInstalled(logger: quiet) { progress in
                if progress.files == 2 { throw Interrupted() }
            }
        }
        #expect(!fixture.seeder.isInstalled)
        #expect(fixture.volumeEntries == [])

        // A boot killed mid-copy leaves its staging folder behind; the next boot removes it and installs.
        try fixture.write(fixture.volume + "/.SwarmUI.seeding-dead1234/launch-linux.sh", "half")
        _ = try fixture.seeder.ensureInstalled(logger: quiet)
        #expect(fixture.seeder.isInstalled)
        #expect(fixture.volumeEntries == ["SwarmUI"])
    }

    @Test func noInstallAndNoSeedSaysWhatToDo() throws {
        let fixture = try SeedFixture()
        let seeder = SwarmUISeed(seedPath: fixture.root + "/absent", installPath: fixture.install)
        let error = #expect(throws: SwarmUISeedError.self) { try seeder.ensureInstalled(logger: quiet) }
        #expect(error?.description.contains("SWARMUI_SEED") == true)
        #expect(error?.description.contains(fixture.install) == true)
    }
}
