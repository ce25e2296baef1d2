#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AsyncHTTPClient
import Logging
import NIOCore
import NIOPosix
import SwarmCore

import Foundation

/// Puts the manifest's models under `Models/<folder>/<file>`: works out what is missing, refuses to start when a
/// needed token is unset or the disk is too small, downloads a few files at a time and writes SwarmUI's metadata
/// sidecars. What is already in place is never touched, so running it again is cheap.
public struct ModelProvisioner: Sendable {
    public struct Options: Sendable {
        /// Files downloading at once.
        public var concurrency: Int
        /// Connections fetching ranges of one file at once; 1 downloads every file as one stream.
        public var connections: Int
        /// Connections open at once across all files.
        public var totalConnections: Int
        /// Range sizes (`SegmentPlan`); a file under two minimum ranges comes as one stream.
        public var minimumSegment: Int64
        public var maximumSegment: Int64
        /// How often the ranges' progress is flushed and saved on the volume: what a kill -9 can cost to re-fetch.
        public var stateInterval: Duration
        /// Consecutive attempts without progress before a file is given up.
        public var maxAttempts: Int
        public var backoff: Backoff
        /// Kept free beyond the downloads: manifest sizes are estimates, and SwarmUI writes outputs to the same disk.
        public var diskReserve: Int64
        public var progressInterval: Duration
        /// Free bytes on the file system holding a path (statvfs); replaceable for tests.
        public var freeSpace: @Sendable (String) throws -> Int64

        public init(
            concurrency: Int = 3,
            connections: Int = 32,
            totalConnections: Int = 64,
            minimumSegment: Int64 = 1 << 20,
            maximumSegment: Int64 = 64 << 20,
            stateInterval: Duration = .seconds(1),
            maxAttempts: Int = 6,
            backoff: Backoff = Backoff(initial: .seconds(2), maximum: .seconds(60)),
            diskReserve: Int64 = 1 << 30,
            progressInterval: Duration = .seconds(1),
            freeSpace: @escaping @Sendable (String) throws -> Int64 = ModelProvisioner.freeSpace(at:)
        ) {
            self.concurrency = max(1, concurrency)
            self.connections = max(1, connections)
            self.totalConnections = max(1, totalConnections)
            self.minimumSegment = max(1, minimumSegment)
            self.maximumSegment = max(self.minimumSegment, maximumSegment)
            self.stateInterval = stateInterval
            self.maxAttempts = max(1, maxAttempts)
            self.backoff = backoff
            self.diskReserve = diskReserve
            self.progressInterval = progressInterval
            self.freeSpace = freeSpace
        }
    }

    public enum FileStatus: Sendable, Equatable {
        case present(bytes: Int64)
        /// A `.partial` file from an interrupted download (bytes written, by its ranges' plan when it has one); the
        /// next download resumes it.
        case partial(bytes: Int64)
        case missing
    }

    public struct ModelStatus: Sendable, Equatable {
        public var entry: ModelManifest.Entry
        public var path: String
        public var status: FileStatus

        /// Bytes still to download, by the manifest's estimate.
        public var remainingBytes: Int64 {
            switch status {
            case .present: 0
            case .partial(let bytes): max(0, entry.sizeBytes - bytes)
            case .missing: entry.sizeBytes
            }
        }
    }

    public struct Summary: Sendable, Equatable {
        public var downloaded: [String]
        public var alreadyPresent: [String]
        public var bytes: Int64
    }

    public var manifest: ModelManifest
    /// `$VOLUME_PATH/SwarmUI/Models`.
    public var modelsRoot: String
    public var tokens: [String: Secret]
    public var httpClient: HTTPClient
    public var options: Options
    public var logger: Logger

    public init(
        manifest: ModelManifest,
        modelsRoot: String,
        tokens: [String: Secret],
        httpClient: HTTPClient,
        options: Options = Options(),
        logger: Logger
    ) {
        self.manifest = manifest
        self.modelsRoot = modelsRoot
        self.tokens = tokens
        self.httpClient = httpClient
        self.options = options
        self.logger = logger
    }

    /// An HTTP client suited to multi-GB downloads: redirects followed (Authorization is dropped when one leaves
    /// the origin), a read timeout so a stalled connection fails and resumes instead of hanging forever, and as many
    /// connections to one host as the downloads may open (the client's default is 8).
    public static func makeHTTPClient(connections: Int = Options().totalConnections) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(8, connections)
        configuration.timeout = .init(connect: .seconds(30), read: .seconds(120))
        configuration.redirectConfiguration = .follow(max: 10, allowCycles: false)
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Each entry's state on disk.
    public func status() -> [ModelStatus] { Self.status(of: manifest, modelsRoot: modelsRoot) }

    public static func status(of manifest: ModelManifest, modelsRoot: String) -> [ModelStatus] {
        manifest.models.map { entry in
            let path = modelsRoot + "/" + entry.relativePath
            let status: FileStatus =
                if let info = FileSystem.info(path) {
                    .present(bytes: Int64(info.st_size))
                } else if let info = FileSystem.linkInfo(path + ".partial") {
                    .partial(bytes: SegmentPlan.load(ModelDownload.planPath(partial: path + ".partial"))?.done ?? Int64(info.st_size))
                } else {
                    .missing
                }
            return ModelStatus(entry: entry, path: path, status: status)
        }
    }

    /// Downloads whatever is missing; `progress` is called at most once per `progressInterval`, then once more at
    /// the end. Files that fail do not stop the others; the error lists every failure.
    public func provision(
        progress: @escaping @Sendable (ModelDownloadProgress) async -> Void = { _ in }
    ) async throws(ModelProvisioningError) -> Summary {
        let statuses = status()
        let present = statuses.filter { if case .present = $0.status { true } else { false } }
        let missing = statuses.filter { if case .present = $0.status { false } else { true } }
        for model in present {
            try checkLoadable(model.entry)
            try writeSidecar(model.entry)
        }
        guard !missing.isEmpty else {
            return Summary(downloaded: [], alreadyPresent: present.map(\.entry.name), bytes: 0)
        }

        let missingTokens = missing.compactMap { model -> ModelProvisioningError.MissingToken? in
            guard model.entry.tokenRequired, let variable = model.entry.tokenEnv, tokens[variable] == nil else { return nil }
            return .init(model: model.entry.name, variable: variable)
        }
        if !missingTokens.isEmpty { throw .tokensMissing(missingTokens) }
        try checkFreeSpace(for: missing)

        logger.info(
            "downloading models",
            metadata: [
                "models": "\(missing.map(\.entry.name).joined(separator: ", "))",
                "estimated": "\(formatBytes(missing.reduce(0) { $0 + $1.remainingBytes }))",
            ]
        )
        let tracker = DownloadProgressTracker(
            files: missing.map { model in
                let done: Int64 = if case .partial(let bytes) = model.status { bytes } else { 0 }
                return (model.entry.name, done, model.entry.sizeBytes)
            }
        )
        let failures = await withTaskGroup(of: Void.self) { reporting -> [ModelProvisioningError] in
            let interval = options.progressInterval
            reporting.addTask {
                while (try? await Task.sleep(for: interval)) != nil { await progress(tracker.snapshot()) }
            }
            let failures = await download(missing, tracker: tracker)
            reporting.cancelAll()
            return failures
        }
        await progress(tracker.snapshot())

        switch failures.count {
        case 0: break
        case 1: throw failures[0]
        default: throw .several(failures)
        }
        return Summary(
            downloaded: missing.map(\.entry.name),
            alreadyPresent: present.map(\.entry.name),
            bytes: tracker.snapshot().done
        )
    }

    /// At most `concurrency` downloads at once; returns the failures.
    private func download(_ models: [ModelStatus], tracker: DownloadProgressTracker) async -> [ModelProvisioningError] {
        let slots = ConnectionSlots(options.totalConnections)
        return await withTaskGroup(of: ModelProvisioningError?.self) { group in
            var queue = Array(models.enumerated()).makeIterator()
            func startNext() {
                guard let next = queue.next() else { return }
                let (index, model) = (next.offset, next.element)
                let download = ModelDownload(
                    entry: model.entry,
                    destination: model.path,
                    token: model.entry.tokenEnv.flatMap { tokens[$0] },
                    httpClient: httpClient,
                    options: options,
                    slots: slots,
                    tracker: tracker,
                    index: index,
                    logger: logger
                )
                group.addTask {
                    do throws(ModelProvisioningError) {
                        try FileSystem.makeDirectories(URL(fileURLWithPath: model.path).deletingLastPathComponent().path, for: model.entry.name)
                        try await download.run()
                        try checkLoadable(model.entry)
                        try writeSidecar(model.entry)
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            for _ in 0..<options.concurrency { startNext() }
            var failures: [ModelProvisioningError] = []
            for await failure in group {
                if let failure { failures.append(failure) }
                startNext()
            }
            return failures
        }
    }

    private func checkFreeSpace(for missing: [ModelStatus]) throws(ModelProvisioningError) {
        // A preallocated partial already holds its blocks.
        let needed = missing.reduce(options.diskReserve) { $0 + max(0, $1.entry.sizeBytes - FileSystem.allocatedBytes($1.path + ".partial")) }
        try FileSystem.makeDirectories(modelsRoot, for: "Models/")
        let free: Int64
        do {
            free = try options.freeSpace(modelsRoot)
        } catch {
            throw .fileSystem(model: "Models/", detail: "cannot check free space under \(modelsRoot): \(error)")
        }
        guard free >= needed else { throw .notEnoughDisk(path: modelsRoot, needed: needed, free: free, models: missing.count) }
    }

    /// Reads a GGUF diffusion model's header: one ComfyUI-GGUF would refuse fails here, not at the first job. The file
    /// stays (a new download would be the same file); the error says what to change.
    private func checkLoadable(_ entry: ModelManifest.Entry) throws(ModelProvisioningError) {
        guard entry.subtype == "Stable-Diffusion", entry.file.lowercased().hasSuffix(".gguf") else { return }
        let path = modelsRoot + "/" + entry.relativePath
        let reason: String?
        do {
            reason = try GGUFHeader.read(path: path).refusal(forSwarmUIArchitecture: entry.architecture)
        } catch {
            reason = "\(error)"
        }
        if let reason { throw .unloadableGGUF(model: entry.name, path: path, reason: reason) }
    }

    /// SwarmUI cannot read the architecture from GGUF headers, so it gets a sidecar; one SwarmUI already wrote
    /// (with the user's edits) is left alone.
    private func writeSidecar(_ entry: ModelManifest.Entry) throws(ModelProvisioningError) {
        guard let architecture = entry.architecture else { return }
        let path = modelsRoot + "/" + entry.sidecarRelativePath
        guard FileSystem.linkInfo(path) == nil else { return }
        let text = JSONValue.object(["modelspec.architecture": .string(architecture)]).jsonString()
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw .fileSystem(model: entry.name, detail: "cannot write \(path): \(error.localizedDescription)")
        }
    }

    /// Bytes available to this user on the file system holding `path`.
    public static func freeSpace(at path: String) throws -> Int64 {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { throw FileSystem.Failure(operation: "statvfs", path: path, code: errno) }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }
}

extension FileSystem {
    /// Runs blocking file work (copying a tree, hashing gigabytes, fsync) on NIO's thread pool: Swift's cooperative
    /// threads are as few as the cores, and `/health` needs one while this runs.
    static func offload<T: Sendable, Failure: Error>(
        orIfCancelled cancelled: Failure,
        _ body: @escaping @Sendable () throws(Failure) -> T
    ) async throws(Failure) -> T {
        let result: Result<T, Failure>
        do {
            result = try await NIOThreadPool.singleton.runIfActive { Result { () throws(Failure) in try body() } }
        } catch {
            throw cancelled
        }
        return try result.get()
    }

    static func makeDirectories(_ path: String, for model: String) throws(ModelProvisioningError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw .fileSystem(model: model, detail: "cannot create \(path): \(error.localizedDescription)")
        }
    }
}
