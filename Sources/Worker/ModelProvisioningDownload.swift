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

/// One manifest entry downloaded to `<destination>.partial`, resumed with HTTP Range across attempts and runs,
/// checked against its sha256, then renamed into place. Nothing is held in memory beyond one received chunk.
struct ModelDownload: Sendable {
    var entry: ModelManifest.Entry
    var destination: String
    var token: Secret?
    var httpClient: HTTPClient
    var options: ModelProvisioner.Options
    var tracker: DownloadProgressTracker
    var index: Int
    var logger: Logger

    var partialPath: String { destination + ".partial" }
    private var host: String { URL(string: entry.url)?.host ?? entry.url }

    /// Attempts until the file is in place; the attempt budget refills whenever an attempt got bytes onto disk,
    /// so a long download over a flaky link keeps going as long as it advances.
    func run() async throws(ModelProvisioningError) {
        var failures = 0
        var hashed: HashedPrefix?
        while true {
            let before = partialSize()
            do {
                try await attempt(hashed: &hashed)
                return
            } catch {
                guard error.isRetryable, !Task.isCancelled else {
                    tracker.update(index, state: .failed)
                    throw Task.isCancelled ? .cancelled : error
                }
                failures = partialSize() > before ? 1 : failures + 1
                guard failures < options.maxAttempts else {
                    tracker.update(index, state: .failed)
                    throw .gaveUp(model: entry.name, attempts: failures, last: error)
                }
                let delay = options.backoff.delay(attempt: failures - 1)
                logger.warning(
                    "model download failed, retrying",
                    metadata: ["model": "\(entry.name)", "error": "\(error)", "retry_in_s": "\(String(format: "%.1f", delay.seconds))"])
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

    private func attempt(hashed: inout HashedPrefix?) async throws(ModelProvisioningError) {
        var offset = partialSize()
        var hasher = SHA256()
        if entry.sha256 != nil, offset > 0 {
            if let hashed, hashed.bytes == offset {
                hasher = hashed.hasher
            } else {
                tracker.update(index, state: .verifying, done: offset)
                let (download, length) = (self, offset)
                hasher = try await FileSystem.offload(orIfCancelled: .cancelled) { () throws(ModelProvisioningError) in
                    try download.hashFile(download.partialPath, length: length)
                }
            }
        }
        // Whatever happens below, the digest matches the partial's bytes written so far (a removed partial has
        // size 0 and is never matched).
        defer { hashed = HashedPrefix(hasher: hasher, bytes: offset) }
        tracker.update(index, state: .downloading, done: offset)

        var request = HTTPClientRequest(url: entry.url)
        request.headers.add(name: "User-Agent", value: "swarm-worker")
        // The client drops Authorization when a redirect leaves this origin (Hugging Face and Civitai send the
        // bytes from presigned CDN URLs), so the token reaches only the host it belongs to.
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token.value)") }
        if offset > 0 { request.headers.add(name: "Range", value: "bytes=\(offset)-") }
        let response: HTTPClientResponse
        do {
            response = try await httpClient.execute(request, deadline: .distantFuture, logger: logger)
        } catch {
            throw Task.isCancelled ? .cancelled : .transfer(model: entry.name, detail: "request to \(host) failed: \(error)")
        }

        let status = Int(response.status.code)
        let length = response.headers.first(name: "content-length").flatMap { Int64($0) }
        let total: Int64?
        switch status {
        case 206:
            let range = response.headers.first(name: "content-range").flatMap(ContentRange.init)
            guard offset > 0, let range, range.start == offset else {
                // Not the bytes asked for: throw the partial away rather than guess.
                try removePartial()
                throw .transfer(model: entry.name, detail: "\(host) sent a range that does not continue the partial file; starting over")
            }
            total = range.total ?? length.map { offset + $0 }
        case 200:
            if offset > 0 {
                logger.info("server ignored the Range request; downloading from the start", metadata: ["model": "\(entry.name)"])
                offset = 0
                hasher = SHA256()
                tracker.update(index, done: 0)
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
            return
        case 401, 403:
            let hint = switch (token, entry.tokenEnv) {
            case (nil, let variable?): "it needs a token: set \(variable)"
            case (_?, let variable?): "the token in \(variable) was refused: check it is valid and may download this model"
            default: "the file is not public; check the URL in models.json"
            }
            throw .refused(model: entry.name, status: status, host: host, hint: hint)
        case 404, 410:
            throw .refused(model: entry.name, status: status, host: host, hint: "the URL in models.json is wrong or the file was removed")
        case 408, 425, 429, 500...599:
            throw .transfer(model: entry.name, detail: "\(host) answered HTTP \(status)")
        default:
            throw .refused(model: entry.name, status: status, host: host, hint: "unexpected answer to a download request")
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
            throw Task.isCancelled ? .cancelled : .transfer(model: entry.name, detail: "connection to \(host) broke at \(formatBytes(offset)): \(error)")
        }
        if let total, offset != total {
            throw .transfer(model: entry.name, detail: "\(host) ended the transfer at \(formatBytes(offset)) of \(formatBytes(total))")
        }
        let syncError = try await FileSystem.offload(orIfCancelled: .cancelled) { () throws(ModelProvisioningError) in fsync(fd) == 0 ? nil : errno }
        if let syncError { throw fileError("fsync", partialPath, syncError) }
        try await finish(hasher: hasher, size: offset)
    }

    /// Checks the digest and renames the partial into place; a mismatch deletes it, so a retry starts clean.
    private func finish(hasher: SHA256, size: Int64) async throws(ModelProvisioningError) {
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
        tracker.update(index, state: .done, done: size, total: size)
        logger.info("model downloaded", metadata: ["model": "\(entry.name)", "path": "\(destination)", "size": "\(formatBytes(size))"])
    }

    /// The digest state after the first `length` bytes of a file, read in 1 MiB pieces.
    private func hashFile(_ path: String, length: Int64) throws(ModelProvisioningError) -> SHA256 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fileError("open", path, errno) }
        defer { close(fd) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var remaining = length
        while remaining > 0 {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, Int(remaining))) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { throw fileError("read", path, count < 0 ? errno : EIO) }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            remaining -= Int64(count)
        }
        return hasher
    }

    private func removePartial() throws(ModelProvisioningError) {
        guard unlink(partialPath) == 0 || errno == ENOENT else { throw fileError("delete", partialPath, errno) }
    }

    private func fileError(_ operation: String, _ path: String, _ code: Int32) -> ModelProvisioningError {
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
