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

/// A file fetched as byte ranges over several connections into a preallocated `.partial`.
///
/// - Each range is written at its offset (pwrite) and advances on its own; the plan is synced to the volume every
///   `stateInterval` after an fdatasync of the data, so a restart resumes every range from what is surely on disk.
/// - The sha256 is computed as the contiguous prefix grows: ranges are handed out in file order, and a reader
///   hashes the prefix back from the file (page cache) in 1 MiB pieces while later ranges still download. Hashing
///   the received buffers directly is impossible out of order, and reading the whole file back after the last
///   byte would add its full read time to every boot; this way only the last few ranges are hashed at the end.
/// - Memory: the client's body stream has a backpressure watermark of one buffer, and NIO reads at most 4 × 64 KiB
///   from a socket before that stops it, so a connection holds at most 256 KiB; plus the 1 MiB hash buffer and the plan
///   (a few bytes per range): at most `totalConnections` × 256 KiB + 1 MiB (17 MiB with the defaults), whatever the
///   file size.
extension ModelDownload {
    /// `source`: where the first answer came from after redirects (a CDN's presigned URL); ranges ask it directly,
    /// sparing the origin a request per range, and go back to the manifest URL when it is refused (expired).
    func segmented(_ plan: SegmentPlan, source: String? = nil) async throws(ModelProvisioningError) {
        tracker.update(index, state: .downloading, done: plan.done, total: plan.total)
        // The server's size is the real one (the manifest's is an estimate): checked before the file grows to it.
        let needed = plan.total - FileSystem.allocatedBytes(partialPath)
        let directory = URL(fileURLWithPath: destination).deletingLastPathComponent().path
        if needed > 0, let free = try? options.freeSpace(directory), free < needed {
            throw .notEnoughDisk(path: directory, needed: needed, free: free, models: 1)
        }
        // The plan exists before the partial reaches its full size: a full-size partial without one would pass
        // for a single stream's prefix.
        try save(plan)
        let fd = open(partialPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fileError("open", partialPath, errno) }
        defer { close(fd) }
        try preallocate(fd, size: plan.total)

        let board = SegmentBoard(plan, source: source == entry.url ? nil : source)
        let (failure, digest) = await transfer(board: board, fd: fd)
        if let reason = board.invalid {
            try removePartial()
            tracker.update(index, done: 0)
            throw .transfer(model: entry.name, detail: "\(reason); starting over")
        }
        if let failure {
            // What was written so far is kept for the next attempt or run.
            try? await saveProgress(board, fd: fd, offloaded: false)
            throw failure
        }
        try await finish(hasher: digest ?? SHA256(), size: plan.total)
    }

    /// The plan saved next to the partial; an unreadable or foreign plan is deleted with its partial.
    func loadPlan() throws(ModelProvisioningError) -> SegmentPlan? {
        guard FileSystem.linkInfo(planPath) != nil else { return nil }
        if FileSystem.linkInfo(partialPath) != nil, let plan = SegmentPlan.load(planPath), plan.url == entry.url { return plan }
        logger.warning("discarding a download state that does not match its file", metadata: ["model": "\(entry.name)", "path": "\(planPath)"])
        try removePartial()
        return nil
    }

    private enum Part: Sendable {
        case connections(ModelProvisioningError?)
        case digest(Result<SHA256, ModelProvisioningError>)
        case flushed(ModelProvisioningError?)
        case saver
    }

    /// The connections, the hasher and the periodic save, until every range is written, hashed and flushed to disk, or
    /// it failed. The final fsync starts as soon as the last byte is written, alongside the hash of the last ranges.
    private func transfer(board: SegmentBoard, fd: Int32) async -> (ModelProvisioningError?, SHA256?) {
        await withTaskGroup(of: Part.self) { group in
            group.addTask { .connections(await connections(board: board, fd: fd)) }
            let hashes = entry.sha256 != nil
            if hashes { group.addTask { .digest(await hashAsItGrows(board: board, fd: fd)) } }
            group.addTask {
                while (try? await Task.sleep(for: options.stateInterval)) != nil { try? await saveProgress(board, fd: fd) }
                return .saver
            }
            var failure: ModelProvisioningError?
            var digest: SHA256?
            var flushed = false
            for await part in group {
                switch part {
                case .connections(let error):
                    failure = failure ?? error
                    if error == nil {
                        group.addTask {
                            do throws(ModelProvisioningError) {
                                try await sync(fd)
                                return .flushed(nil)
                            } catch {
                                return .flushed(error)
                            }
                        }
                    }
                case .digest(.success(let hasher)): digest = hasher
                case .digest(.failure(let error)): failure = failure ?? error
                case .flushed(let error):
                    flushed = true
                    failure = failure ?? error
                case .saver: break
                }
                if failure != nil || (flushed && (digest != nil || !hashes)) { group.cancelAll() }
            }
            return (failure, digest)
        }
    }

    /// Up to `connections` connections, each taking the next range in file order until none is left.
    private func connections(board: SegmentBoard, fd: Int32) async -> ModelProvisioningError? {
        let count = min(options.connections, board.plan.remainingSegments)
        return await withTaskGroup(of: ModelProvisioningError?.self) { group in
            for _ in 0..<count { group.addTask { await connection(board: board, fd: fd) } }
            var last: ModelProvisioningError?
            for await failure in group {
                guard let failure else { continue }
                // The others' cancellation, after a failure that stopped them, is not the news.
                if last == nil || last?.isCancellation == true { last = failure }
                if !failure.isRetryable { group.cancelAll() }
            }
            if board.plan.isComplete { return nil }
            return last ?? .transfer(model: entry.name, detail: board.invalid ?? "ranges left unfinished")
        }
    }

    /// One connection's loop. A range cut after some bytes resumes at once where it stopped (the next claim is the
    /// first unfinished range); a failure without progress ends this connection, and the others carry on.
    private func connection(board: SegmentBoard, fd: Int32) async -> ModelProvisioningError? {
        while let (range, segment) = board.claim() {
            do {
                try await slots.acquire()
            } catch {
                board.release(range)
                return .cancelled
            }
            let failure = await fetch(range, segment, board: board, fd: fd)
            slots.release()
            board.release(range)
            guard let failure else { continue }
            guard failure.isRetryable, !Task.isCancelled, board.plan.segments[range].done > segment.done else {
                return Task.isCancelled ? .cancelled : failure
            }
            logger.info(
                "range cut, resuming it",
                metadata: ["model": "\(entry.name)", "at": "\(board.plan.segments[range].next)", "error": "\(failure)"]
            )
        }
        return nil
    }

    /// Requests what is left of one range and writes it at its offset.
    private func fetch(_ range: Int, _ segment: SegmentPlan.Segment, board: SegmentBoard, fd: Int32) async -> ModelProvisioningError? {
        let source = board.source
        let response: HTTPClientResponse
        do {
            response = try await send(range: "bytes=\(segment.next)-\(segment.end - 1)", to: source)
        } catch {
            if let source {
                board.forget(source)
                return await fetch(range, segment, board: board, fd: fd)
            }
            return error
        }
        let status = Int(response.status.code)
        if let source, status >= 400 {
            // A presigned URL expired or was refused: the manifest URL redirects to a fresh one.
            logger.info("CDN URL refused (HTTP \(status)); asking \(host) again", metadata: ["model": "\(entry.name)"])
            board.forget(source)
            return await fetch(range, segment, board: board, fd: fd)
        }
        if source == nil, let final = response.url?.absoluteString, final != entry.url { board.remember(final) }
        switch status {
        case 206:
            let answered = response.headers.first(name: "content-range").flatMap(ContentRange.init)
            guard answered?.start == segment.next, answered?.total == nil || answered?.total == board.plan.total else {
                board.invalidate("\(host) answered a range request with other bytes or another file size")
                return .transfer(model: entry.name, detail: board.invalid ?? "")
            }
        case 200:
            board.invalidate("\(host) stopped honouring Range requests")
            return .transfer(model: entry.name, detail: board.invalid ?? "")
        default:
            return refusal(status: status)
        }
        var position = segment.next
        do {
            for try await buffer in response.body {
                let count = Int(min(Int64(buffer.readableBytes), segment.end - position))
                try buffer.withUnsafeReadableBytes { (bytes) throws(FileSystem.Failure) in
                    try FileSystem.writeAll(fd, UnsafeRawBufferPointer(rebasing: bytes[..<count]), at: position, path: partialPath)
                }
                position += Int64(count)
                tracker.raise(index, done: board.advance(range, by: Int64(count)))
                if position >= segment.end { break }
            }
        } catch let failure as FileSystem.Failure {
            return .fileSystem(model: entry.name, detail: failure.description)
        } catch {
            return Task.isCancelled
                ? .cancelled : .transfer(model: entry.name, detail: "connection to \(host) broke at \(formatBytes(position)): \(error)")
        }
        guard position >= segment.end else {
            return .transfer(model: entry.name, detail: "\(host) ended a range at \(formatBytes(position)) of \(formatBytes(segment.end))")
        }
        return nil
    }

    /// Hashes the contiguous prefix as it grows, reading it back from the file; ends with the whole file's digest.
    private func hashAsItGrows(board: SegmentBoard, fd: Int32) async -> Result<SHA256, ModelProvisioningError> {
        var hasher = SHA256()
        var hashed: Int64 = 0
        let total = board.plan.total
        while hashed < total {
            let prefix = board.contiguousPrefix
            if prefix > hashed {
                let (from, current) = (hashed, hasher)
                do {
                    hasher = try await FileSystem.offload(orIfCancelled: .cancelled) { () throws(ModelProvisioningError) in
                        try hashRange(fd, from: from, to: prefix, continuing: current)
                    }
                } catch {
                    return .failure(error)
                }
                hashed = prefix
            } else if (try? await Task.sleep(for: .milliseconds(20))) == nil {
                return .failure(.cancelled)
            }
        }
        return .success(hasher)
    }

    /// The plan as of now, saved after the data it counts is on disk (fdatasync first), so it never claims more.
    /// `offloaded: false` for the save after a failure, which must happen even when the task is cancelled (the
    /// thread pool refuses work from a cancelled task); one blocking flush then is acceptable.
    private func saveProgress(_ board: SegmentBoard, fd: Int32, offloaded: Bool = true) async throws(ModelProvisioningError) {
        let plan = board.plan
        let flush: @Sendable () throws(ModelProvisioningError) -> Int32? = { fdatasync(fd) == 0 ? nil : errno }
        let syncError: Int32?
        if offloaded {
            syncError = try await FileSystem.offload(orIfCancelled: .cancelled, flush)
        } else {
            syncError = try flush()
        }
        if let syncError { throw fileError("fdatasync", partialPath, syncError) }
        try save(plan)
    }

    private func save(_ plan: SegmentPlan) throws(ModelProvisioningError) {
        do {
            try JSONEncoder().encode(plan).write(to: URL(fileURLWithPath: planPath), options: .atomic)
        } catch {
            throw .fileSystem(model: entry.name, detail: "cannot write \(planPath): \(error.localizedDescription)")
        }
    }

    /// Reserves the file's blocks up front: no fragmentation from out-of-order writes, and a full disk fails here
    /// rather than in the middle (glibc emulates it where the file system lacks fallocate).
    private func preallocate(_ fd: Int32, size: Int64) throws(ModelProvisioningError) {
        let code = posix_fallocate(fd, 0, off_t(size))
        guard code != 0 else { return }
        try? removePartial()
        throw code == ENOSPC
            ? .fileSystem(
                model: entry.name,
                detail: "no space left for \(formatBytes(size)) at \(partialPath): grow the volume or delete files on it"
            )
            : fileError("posix_fallocate", partialPath, code)
    }
}

extension SegmentPlan {
    /// The plan saved at `path`, nil when absent, unreadable or inconsistent.
    static func load(_ path: String) -> SegmentPlan? {
        guard let data = FileManager.default.contents(atPath: path), let plan = try? JSONDecoder().decode(SegmentPlan.self, from: data),
            plan.isConsistent
        else { return nil }
        return plan
    }
}

extension FileSystem {
    /// Bytes the file occupies on disk (a preallocated file counts whole); 0 when absent.
    static func allocatedBytes(_ path: String) -> Int64 { linkInfo(path).map { Int64($0.st_blocks) * 512 } ?? 0 }
}
