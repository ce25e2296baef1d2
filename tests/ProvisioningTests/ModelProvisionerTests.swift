import AsyncHTTPClient
import Logging
import SwarmCore
import Testing

@testable import Worker

import Foundation

/// A fresh `Models/` folder in a temporary directory, and helpers to provision into it.
final class ModelsFolder: Sendable {
    let root: String
    var models: String { root + "/Models" }

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("provisioning-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func contents(_ relative: String) -> [UInt8]? {
        FileManager.default.contents(atPath: models + "/" + relative).map { [UInt8]($0) }
    }

    func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: models + "/" + relative) }

    func write(_ relative: String, _ bytes: [UInt8]) throws {
        let url = URL(fileURLWithPath: models + "/" + relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
    }
}

/// Progress reports in the order they arrived.
actor ProgressLog {
    private(set) var reports: [ModelDownloadProgress] = []
    func add(_ progress: ModelDownloadProgress) { reports.append(progress) }
}

let quiet = Logger(label: "provisioning-tests", factory: { _ in SwiftLogNoOpLogHandler() })

func entry(
    _ file: String,
    url: String,
    bytes: [UInt8],
    sha256: String? = nil,
    folder: String = "diffusion_models",
    tokenEnv: String? = nil,
    tokenRequired: Bool = false,
    architecture: String? = nil
) -> ModelManifest.Entry {
    ModelManifest.Entry(
        name: file,
        subtype: folder == "Lora" ? "LoRA" : "Stable-Diffusion",
        folder: folder,
        file: file,
        url: url,
        sizeBytes: Int64(bytes.count),
        sha256: sha256,
        tokenEnv: tokenEnv,
        tokenRequired: tokenRequired,
        architecture: architecture
    )
}

func provision(
    _ entries: [ModelManifest.Entry],
    into folder: ModelsFolder,
    tokens: [String: Secret] = [:],
    freeSpace: @escaping @Sendable (String) throws -> Int64 = { _ in 1 << 50 },
    maxAttempts: Int = 4,
    connections: Int = 4,
    totalConnections: Int = 8,
    progress: @escaping @Sendable (ModelDownloadProgress) async -> Void = { _ in }
) async throws(ModelProvisioningError) -> ModelProvisioner.Summary {
    let client = ModelProvisioner.makeHTTPClient()
    let provisioner = ModelProvisioner(
        manifest: ModelManifest(models: entries),
        modelsRoot: folder.models,
        tokens: tokens,
        httpClient: client,
        options: .init(
            concurrency: 2,
            connections: connections,
            totalConnections: totalConnections,
            minimumSegment: 256 << 10,
            stateInterval: .milliseconds(50),
            maxAttempts: maxAttempts,
            backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(20)),
            diskReserve: 0,
            progressInterval: .milliseconds(20),
            freeSpace: freeSpace
        ),
        logger: quiet
    )
    let result: Result<ModelProvisioner.Summary, ModelProvisioningError>
    do {
        result = .success(try await provisioner.provision(progress: progress))
    } catch {
        result = .failure(error)
    }
    try? await client.shutdown()
    return try result.get()
}

@Suite struct ModelProvisionerTests {
    static let model = ggufBytes(architecture: "wan", filler: testBytes(count: 3 << 20, seed: 1))
    static let lora = testBytes(count: 700_000, seed: 2)

    @Test func downloadsFreshFilesWritesSidecarAndSkipsThemNextTime() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model, "lora.safetensors": Self.lora]) { servers in
            let entries = [
                entry(
                    "model.gguf",
                    url: servers.a + "/files/model.gguf",
                    bytes: Self.model,
                    sha256: sha256Hex(Self.model),
                    architecture: "wan-2_2-image2video-14b"
                ),
                entry("lora.safetensors", url: servers.a + "/files/lora.safetensors", bytes: Self.lora, folder: "Lora"),
            ]
            let summary = try await provision(entries, into: folder)
            #expect(Set(summary.downloaded) == ["model.gguf", "lora.safetensors"])
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)
            #expect(folder.contents("Lora/lora.safetensors") == Self.lora)
            #expect(!folder.exists("diffusion_models/model.gguf.partial"))
            let sidecar = folder.contents("diffusion_models/model.swarm.json").map { String(decoding: $0, as: UTF8.self) }
            #expect(sidecar == #"{"modelspec.architecture":"wan-2_2-image2video-14b"}"#)
            #expect(!folder.exists("Lora/lora.swarm.json"))

            let before = await servers.log.requests.count
            let again = try await provision(entries, into: folder)
            #expect(again.downloaded.isEmpty)
            #expect(Set(again.alreadyPresent) == ["model.gguf", "lora.safetensors"])
            #expect(await servers.log.requests.count == before)
        }
    }

    @Test func resumesWithRangeAfterTheConnectionIsCutAndReportsMonotonicProgress() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            await servers.log.cutNext("model.gguf")
            let reports = ProgressLog()
            let entries = [entry("model.gguf", url: servers.a + "/files/model.gguf", bytes: Self.model, sha256: sha256Hex(Self.model))]
            _ = try await provision(entries, into: folder, connections: 1, progress: { await reports.add($0) })
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)

            let requests = await servers.log.requests
            #expect(requests.count == 2)
            #expect(requests.first?.range == nil)
            let resumedAt = requests.last?.range.flatMap { Int($0.dropFirst("bytes=".count).dropLast()) } ?? 0
            #expect(resumedAt > 0 && resumedAt < Self.model.count)

            let done = await reports.reports.map(\.done)
            #expect(done == done.sorted())
            let last = try #require(await reports.reports.last)
            #expect(last.percent == 100)
            #expect(last.done == Int64(Self.model.count) && last.total == Int64(Self.model.count))
            #expect(last.files.map(\.state) == [.done])
        }
    }

    @Test func resumesAPartialFileFromAnEarlierRunAndHashesItFirst() async throws {
        let folder = try ModelsFolder()
        try folder.write("diffusion_models/model.gguf.partial", Array(Self.model[..<1_000_000]))
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let entries = [entry("model.gguf", url: servers.a + "/files/model.gguf", bytes: Self.model, sha256: sha256Hex(Self.model))]
            let statuses = ModelProvisioner.status(of: ModelManifest(models: entries), modelsRoot: folder.models)
            #expect(statuses.map(\.status) == [.partial(bytes: 1_000_000)])
            _ = try await provision(entries, into: folder, connections: 1)
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)
            #expect(await servers.log.requests.map(\.range) == ["bytes=1000000-"])
        }
    }

    @Test func aServerErrorIsRetriedAndAMissingFileIsNot() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            await servers.log.failNext("model.gguf")
            let entries = [
                entry("model.gguf", url: servers.a + "/files/model.gguf", bytes: Self.model, sha256: sha256Hex(Self.model)),
                entry("gone.gguf", url: servers.a + "/files/gone.gguf", bytes: Self.model),
            ]
            let error = await #expect(throws: ModelProvisioningError.self) { try await provision(entries, into: folder, connections: 1) }
            guard case .refused("gone.gguf", 404, _, let hint)? = error else {
                Issue.record("expected a 404 for gone.gguf only, got \(String(describing: error))")
                return
            }
            #expect(hint.contains("URL in models.json"))
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)
            let requests = await servers.log.requests.map(\.path)
            #expect(requests.filter { $0 == "/files/model.gguf" }.count == 2)
            #expect(requests.filter { $0 == "/files/gone.gguf" }.count == 1)
        }
    }

    @Test(arguments: [1, 4]) func restartsWhenTheServerIgnoresRange(connections: Int) async throws {
        let folder = try ModelsFolder()
        try folder.write("diffusion_models/model.gguf.partial", testBytes(count: 5000, seed: 99))
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let entries = [entry("model.gguf", url: servers.a + "/norange/model.gguf", bytes: Self.model, sha256: sha256Hex(Self.model))]
            _ = try await provision(entries, into: folder, connections: connections)
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)
            // One stream: the answer to the first request is the whole file.
            #expect(await servers.log.requests.map(\.range) == ["bytes=5000-"])
            #expect(!folder.exists("diffusion_models/model.gguf.partial.segments"))
        }
    }

    @Test func aCompletePartialAnswered416IsFinishedWithoutDownloading() async throws {
        let folder = try ModelsFolder()
        try folder.write("diffusion_models/model.gguf.partial", Self.model)
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let entries = [entry("model.gguf", url: servers.a + "/files/model.gguf", bytes: Self.model, sha256: sha256Hex(Self.model))]
            _ = try await provision(entries, into: folder)
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)
            #expect(await servers.log.requests.count == 1)
        }
    }

    @Test func aChecksumMismatchIsRetriedThenRejectedLeavingNoFile() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let wrong = String(repeating: "ab", count: 32)
            let entries = [entry("model.gguf", url: servers.a + "/files/model.gguf", bytes: Self.model, sha256: wrong)]
            let error = await #expect(throws: ModelProvisioningError.self) {
                try await provision(entries, into: folder, maxAttempts: 2, connections: 1)
            }
            guard case .gaveUp(let model, let attempts, .checksumMismatch(_, let expected, let actual))? = error else {
                Issue.record("expected a checksum mismatch, got \(String(describing: error))")
                return
            }
            #expect(model == "model.gguf" && attempts == 2 && expected == wrong && actual == sha256Hex(Self.model))
            #expect(error?.description.contains("sha256") == true)
            #expect(!folder.exists("diffusion_models/model.gguf"))
            #expect(!folder.exists("diffusion_models/model.gguf.partial"))
            #expect(await servers.log.requests.count == 2)
        }
    }

    @Test func aMissingRequiredTokenIsReportedBeforeAnyDownload() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let entries = [
                entry("model.gguf", url: servers.a + "/private/model.gguf", bytes: Self.model, tokenEnv: "CIVITAI_API_TOKEN", tokenRequired: true)
            ]
            let error = await #expect(throws: ModelProvisioningError.self) { try await provision(entries, into: folder) }
            guard case .tokensMissing(let missing)? = error else {
                Issue.record("expected tokensMissing, got \(String(describing: error))")
                return
            }
            #expect(missing == [.init(model: "model.gguf", variable: "CIVITAI_API_TOKEN")])
            #expect(error?.description.contains("set the variable") == true)
            #expect(await servers.log.requests.isEmpty)

            _ = try await provision(entries, into: folder, tokens: ["CIVITAI_API_TOKEN": Secret(TestFileServers.token)])
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)
        }
    }

    @Test func aRefusalWithoutTokenNamesTheVariableAndIsNotRetried() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let entries = [entry("model.gguf", url: servers.a + "/private/model.gguf", bytes: Self.model, tokenEnv: "HUGGINGFACE_API_TOKEN")]
            let error = await #expect(throws: ModelProvisioningError.self) { try await provision(entries, into: folder) }
            guard case .refused(_, 401, _, let hint)? = error else {
                Issue.record("expected a 401 refusal, got \(String(describing: error))")
                return
            }
            #expect(hint.contains("set HUGGINGFACE_API_TOKEN"))
            #expect(await servers.log.requests.count == 1)
        }
    }

    @Test func theTokenIsNotForwardedWhenARedirectLeavesTheHost() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let entries = [
                entry(
                    "model.gguf",
                    url: servers.a + "/redirect/model.gguf",
                    bytes: Self.model,
                    sha256: sha256Hex(Self.model),
                    tokenEnv: "HUGGINGFACE_API_TOKEN"
                )
            ]
            _ = try await provision(entries, into: folder, tokens: ["HUGGINGFACE_API_TOKEN": Secret(TestFileServers.token)])
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)
            // The first request goes to the origin with the token and follows the redirect to B without it; the ranges
            // then ask B directly, without it.
            let requests = await servers.log.requests
            #expect(requests.filter { $0.server == "A" }.map(\.range) == ["bytes=0-"])
            #expect(requests.first?.authorization == "Bearer \(TestFileServers.token)")
            #expect(requests.count > 2 && requests.dropFirst().allSatisfy { $0.server == "B" && $0.authorization == nil })
        }
    }

    @Test func anExpiredCDNURLSendsTheRangesBackToTheOrigin() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let entries = [
                entry(
                    "model.gguf",
                    url: servers.a + "/presign/model.gguf",
                    bytes: Self.model,
                    sha256: sha256Hex(Self.model),
                    tokenEnv: "CIVITAI_API_TOKEN"
                )
            ]
            _ = try await provision(entries, into: folder, tokens: ["CIVITAI_API_TOKEN": Secret(TestFileServers.token)])
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)
            let requests = await servers.log.requests
            // Each signed URL works once here: every range was refused at B, asked A again, and got a fresh one.
            #expect(requests.filter { $0.server == "A" }.count > 1)
            #expect(requests.filter { $0.server == "A" }.allSatisfy { $0.authorization == "Bearer \(TestFileServers.token)" })
            #expect(requests.filter { $0.server == "B" }.allSatisfy { $0.authorization == nil })
        }
    }

    @Test func tooLittleFreeDiskIsRefusedBeforeAnyByteIsWritten() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let entries = [entry("model.gguf", url: servers.a + "/files/model.gguf", bytes: Self.model)]
            let error = await #expect(throws: ModelProvisioningError.self) {
                try await provision(entries, into: folder, freeSpace: { _ in 1_000_000 })
            }
            guard case .notEnoughDisk(_, let needed, let free, 1)? = error else {
                Issue.record("expected notEnoughDisk, got \(String(describing: error))")
                return
            }
            #expect(needed == Int64(Self.model.count) && free == 1_000_000)
            #expect(error?.description.contains("3.0 MiB") == true)
            #expect(await servers.log.requests.isEmpty)
            #expect(!folder.exists("diffusion_models"))
        }
    }

    @Test func downloadsRunTwoAtATime() async throws {
        let folder = try ModelsFolder()
        let files = (1...4).map { testBytes(count: 300_000, seed: UInt64(10 + $0)) }
        let named = Dictionary(uniqueKeysWithValues: files.enumerated().map { ("m\($0.offset).safetensors", $0.element) })
        try await TestFileServers.withServers(files: named) { servers in
            let entries = named.keys.sorted().map { name in
                entry(name, url: servers.a + "/slow/" + name, bytes: named[name]!, sha256: sha256Hex(named[name]!), folder: "Lora")
            }
            let summary = try await provision(entries, into: folder)
            #expect(summary.downloaded.count == 4)
            for (name, bytes) in named { #expect(folder.contents("Lora/" + name) == bytes) }
            #expect(await servers.log.mostInFlight == 2)
        }
    }

    @Test func contentRangeHeadersParse() {
        #expect(ContentRange("bytes 100-199/1000") == ContentRange(start: 100, total: 1000))
        #expect(ContentRange("bytes 5-9/*")?.total == nil)
        #expect(ContentRange("bytes */42") == ContentRange(start: nil, total: 42))
        #expect(ContentRange("items 1-2/3") == nil)
    }
}
