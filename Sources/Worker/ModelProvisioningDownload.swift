#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AsyncHTTPClient
import Crypto
import Logging
import NIOCore
import NIOHTTP1
import SwarmCore

import Foundation

/// One manifest entry downloaded to `<destination>.partial` and renamed into place once its sha256 matches.
/// A server that honours Range and says the size gets several connections, each fetching ranges of the
/// preallocated file (`ModelDownload+Segments`); otherwise the file comes as one stream, resumed with Range across
/// attempts and runs. Nothing is held in memory beyond one received buffer per connection.
struct ModelDownload: Sendable {
    var entry: ModelManifest.Entry
    var destination: String
    var token: Secret?
    var httpClient: HTTPClient
    var options: ModelProvisioner.Options
    /// Shared by every file: the cap on connections across them.
    var slots: ConnectionSlots
    var tracker: DownloadProgressTracker
    var index: Int
    var logger: Logger

    var partialPath: String { destination + ".partial" }
    /// The ranges' progress (`SegmentPlan`), next to the partial it describes.
    var planPath: String { Self.planPath(partial: partialPath) }
    static func planPath(partial: String) -> String { partial + ".segments" }
    var host: String { URL(string: entry.url)?.host ?? entry.url }

    /// Attempts until the file is in place; the attempt budget refills whenever an attempt got bytes onto disk,
    /// so a long download over a flaky link keeps going as long as it advances.
    func run() async throws(ModelProvisioningError) {
        var failures = 0
        var hashed: HashedPrefix?
        while true {
            let before = tracker.done(index)
            do {
                try await attempt(hashed: &hashed)
                return
            } catch {
                guard error.isRetryable, !Task.isCancelled else {
                    tracker.update(index, state: .failed)
                    throw Task.isCancelled ? .cancelled : error
                }
                failures = tracker.done(index) > before ? 1 : failures + 1
                guard failures < options.maxAttempts else {
                    tracker.update(index, state: .failed)
                    throw .gaveUp(model: entry.name, attempts: failures, last: error)
                }
                let delay = options.backoff.delay(attempt: failures - 1)
                logger.warning(
                    "model download failed, retrying",
                    metadata: ["model": "\(entry.name)", "error": "\(error)", "retry_in_s": "\(String(format: "%.1f", delay.seconds))"]
                )
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    tracker.update(index, state: .failed)
                    throw .cancelled
                }
            }
        }
    }

    private func partialSize() -> Int64 { FileSystem.size(partialPath) ?? 0 }

    /// The digest of a partial file's first `bytes`, kept between attempts so a resume after a cut does not read
    /// gigabytes back from disk.
    private struct HashedPrefix {
        var hasher: SHA256
        var bytes: Int64
    }

    /// Resumes the ranges saved on the volume, or asks the server for the file: its answer says whether ranges
    /// can be fetched in parallel (then the first connection closes and the ranges take over) or one stream it is.
    private func attempt(hashed: inout HashedPrefix?) async throws(ModelProvisioningError) {
        if options.connections > 1, let plan = try loadPlan() {
            try await segmented(plan)
            return
        }
        do {
            try await slots.acquire()
        } catch {
            throw .cancelled
        }
        let handover: (plan: SegmentPlan, source: String?)?
        do {
            handover = try await stream(hashed: &hashed)
        } catch {
            slots.release()
            throw error
        }
        slots.release()
        if let handover { try await segmented(handover.plan, source: handover.source) }
    }

    /// One stream from the end of the partial file, or the plan for ranges when the server allows them, with the URL
    /// the answer finally came from (after redirects) for the ranges to ask directly.
    private func stream(hashed: inout HashedPrefix?) async throws(ModelProvisioningError) -> (plan: SegmentPlan, source: String?)? {
        var offset = partialSize()
        var hasher = SHA256()
        if entry.sha256 != nil, offset > 0 {
            if let hashed, hashed.bytes == offset {
                hasher = hashed.hasher
            } else {
                tracker.update(index, state: .verifying, done: offset)
                let (path, length) = (partialPath, offset)
                hasher = try await FileSystem.offload(orIfCancelled: .cancelled) { () throws(ModelProvisioningError) in
                    try hashFile(path, length: length, model: entry.name)
                }
            }
        }
        // Whatever happens below, the digest matches the partial's bytes written so far (a removed partial has
        // size 0 and is never matched).
        defer { hashed = HashedPrefix(hasher: hasher, bytes: offset) }
        tracker.update(index, state: .downloading, done: offset)

        // `bytes=0-` asks whether the server does ranges at all: its 206 and Content-Range say so, and the size.
        let response = try await send(range: offset > 0 || options.connections > 1 ? "bytes=\(offset)-" : nil)

        let status = Int(response.status.code)
        let length = response.headers.first(name: "content-length").flatMap { Int64($0) }
        let total: Int64?
        switch status {
        case 206:
            let range = response.headers.first(name: "content-range").flatMap(ContentRange.init)
            guard let range, range.start == offset else {
                // Not the bytes asked for: throw the partial away rather than guess.
                try removePartial()
                throw .transfer(model: entry.name, detail: "\(host) sent a range that does not continue the partial file; starting over")
            }
            total = range.total ?? length.map { offset + $0 }
            if options.connections > 1, let total, total - offset >= 2 * options.minimumSegment {
                // The response is dropped unread, which closes its connection; the ranges open their own.
                let plan = SegmentPlan(
                    url: entry.url,
                    total: total,
                    prefix: offset,
                    connections: options.connections,
                    minimum: options.minimumSegment,
                    maximum: options.maximumSegment
                )
                return (plan, response.url?.absoluteString)
            }
        case 200:
            if offset > 0 {
                logger.info("server ignored the Range request; downloading from the start", metadata: ["model": "\(entry.name)"])
                offset = 0
                hasher = SHA256()
                tracker.update(index, done: 0)
            } else if options.connections > 1 {
                logger.info("server does not offer ranges; downloading as one stream", metadata: ["model": "\(entry.name)"])
            }
            total = length
        case 416:
            // The partial is at least as long as the file: either it is complete, or it belongs to another file.
            let size = response.headers.first(name: "content-range").flatMap(ContentRange.init)?.total
            guard size == offset else {
                try removePartial()
                throw .transfer(model: entry.name, detail: "\(host) says the partial file is past the end of the file; starting over")
            }
            try await finish(hasher: hasher, size: offset)
            return nil
        default:
            throw refusal(status: status)
        }
        if let total { tracker.update(index, total: total) }

        let fd = open(partialPath, O_WRONLY | O_CREAT | O_CLOEXEC | (offset == 0 ? O_TRUNC : O_APPEND), 0o644)
        guard fd >= 0 else { throw fileError("open", partialPath, errno) }
        defer { close(fd) }
        do {
            for try await chunk in response.body {
                try chunk.withUnsafeReadableBytes { (bytes) throws(FileSystem.Failure) in
                    try FileSystem.writeAll(fd, bytes, path: partialPath)
                    hasher.update(bufferPointer: bytes)
                }
                offset += Int64(chunk.readableBytes)
                tracker.update(index, done: offset)
            }
        } catch let failure as FileSystem.Failure {
            throw .fileSystem(model: entry.name, detail: failure.description)
        } catch {
            throw Task.isCancelled
                ? .cancelled : .transfer(model: entry.name, detail: "connection to \(host) broke at \(formatBytes(offset)): \(error)")
        }
        if let total, offset != total {
            throw .transfer(model: entry.name, detail: "\(host) ended the transfer at \(formatBytes(offset)) of \(formatBytes(total))")
        }
        try await sync(fd)
        try await finish(hasher: hasher, size: offset)
        return nil
    }

    /// A GET of the manifest URL (or where it redirected to), for `range` when given. The token goes only to the
    /// manifest URL's origin: the client drops Authorization when a redirect leaves it (Hugging Face and Civitai send
    /// the bytes from presigned CDN URLs), and a CDN URL asked directly never gets it.
    func send(range: String?, to url: String? = nil) async throws(ModelProvisioningError) -> HTTPClientResponse {
        let url = url ?? entry.url
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "User-Agent", value: "swarm-worker")
        if let token, Self.sameOrigin(url, entry.url) { request.headers.add(name: "Authorization", value: "Bearer \(token.value)") }
        if let range { request.headers.add(name: "Range", value: range) }
        do {
            return try await httpClient.execute(request, deadline: .distantFuture, logger: logger)
        } catch {
            throw Task.isCancelled ? .cancelled : .transfer(model: entry.name, detail: "request to \(host) failed: \(error)")
        }
    }

    static func sameOrigin(_ a: String, _ b: String) -> Bool {
        guard let a = URLComponents(string: a), let b = URLComponents(string: b) else { return false }
        return a.scheme?.lowercased() == b.scheme?.lowercased() && a.host?.lowercased() == b.host?.lowercased() && a.port == b.port
    }

    /// The error for an answer that carries no bytes of the file.
    func refusal(status: Int) -> ModelProvisioningError {
        switch status {
        case 401, 403:
            let hint =
                switch (token, entry.tokenEnv) {
                case (nil, let variable?): "it needs a token: set \(variable)"
                case (_?, let variable?): "the token in \(variable) was refused: check it is valid and may download this model"
                default: "the file is not public; check the URL in models.json"
                }
            return .refused(model: entry.name, status: status, host: host, hint: hint)
        case 404, 410:
            return .refused(model: entry.name, status: status, host: host, hint: "the URL in models.json is wrong or the file was removed")
        case 408, 425, 429, 500...599:
            return .transfer(model: entry.name, detail: "\(host) answered HTTP \(status)")
        default:
            return .refused(model: entry.name, status: status, host: host, hint: "unexpected answer to a download request")
        }
    }

    /// Flushes the partial file to the disk, off the cooperative threads.
    func sync(_ fd: Int32) async throws(ModelProvisioningError) {
        let syncError = try await FileSystem.offload(orIfCancelled: .cancelled) { () throws(ModelProvisioningError) in fsync(fd) == 0 ? nil : errno }
        if let syncError { throw fileError("fsync", partialPath, syncError) }
    }

    /// Checks the digest and renames the partial into place; a mismatch deletes it, so a retry starts clean.
    func finish(hasher: SHA256, size: Int64) async throws(ModelProvisioningError) {
        if let expected = entry.sha256 {
            let actual = hasher.finalize().hexString
            guard actual == expected else {
                try removePartial()
                tracker.update(index, done: 0)
                throw .checksumMismatch(model: entry.name, expected: expected, actual: actual)
            }
        }
        do throws(FileSystem.Failure) {
            try FileSystem.move(partialPath, destination)
        } catch {
            throw .fileSystem(model: entry.name, detail: error.description)
        }
        // After the rename: a plan left by a crash in between names no partial and is discarded as stale.
        unlink(planPath)
        tracker.update(index, state: .done, done: size, total: size)
        logger.info("model downloaded", metadata: ["model": "\(entry.name)", "path": "\(destination)", "size": "\(formatBytes(size))"])
    }

    /// The digest state after the first `length` bytes of a file.
    private func hashFile(_ path: String, length: Int64, model: String) throws(ModelProvisioningError) -> SHA256 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fileError("open", path, errno) }
        defer { close(fd) }
        return try hashRange(fd, from: 0, to: length, continuing: SHA256())
    }

    /// `hasher` fed with bytes `[from, to)` of an open file, read in 1 MiB pieces: the bound on what hashing holds.
    func hashRange(_ fd: Int32, from: Int64, to: Int64, continuing hasher: SHA256) throws(ModelProvisioningError) -> SHA256 {
        var hasher = hasher
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var position = from
        while position < to {
            let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, min($0.count, Int(to - position)), off_t(position)) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { throw fileError("read", partialPath, count < 0 ? errno : EIO) }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            position += Int64(count)
        }
        return hasher
    }

    /// Deletes the partial file and the ranges' plan for it.
    func removePartial() throws(ModelProvisioningError) {
        for path in [planPath, partialPath] {
            guard unlink(path) == 0 || errno == ENOENT else { throw fileError("delete", path, errno) }
        }
    }

    func fileError(_ operation: String, _ path: String, _ code: Int32) -> ModelProvisioningError {
        .fileSystem(model: entry.name, detail: FileSystem.Failure(operation: operation, path: path, code: code).description)
    }
}

/// `Content-Range: bytes 100-199/1000`, or `bytes */1000` on a 416.
struct ContentRange: Sendable, Equatable {
    var start: Int64?
    var total: Int64?
}

extension ContentRange {
    init?(_ header: String) {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard trimmed.lowercased().hasPrefix("bytes ") else { return nil }
        let spec = trimmed.dropFirst("bytes ".count)
        let parts = spec.split(separator: "/", maxSplits: 1)
        guard parts.count == 2 else { return nil }
        var start: Int64?
        if parts[0] != "*" {
            guard let first = parts[0].split(separator: "-").first, let value = Int64(first) else { return nil }
            start = value
        }
        self.init(start: start, total: parts[1] == "*" ? nil : Int64(parts[1]))
    }
}
