import AsyncHTTPClient
import Crypto
import JobProtocol
import Logging
import NIOCore
import NIOHTTP1
import SwarmCore
import Synchronization

/// The worker's half of an upload: streams one output to an `UploadTarget`, hashing it on the way.
/// Memory stays bounded: a single PUT streams the source with a known length; a multipart upload holds at most
/// `partConcurrency + 1` parts (8 MiB each by default): those being sent and the next, read meanwhile. A failed
/// request is retried with backoff; a single PUT, or a source that breaks mid-way, is retried by reopening the source.
public struct OutputUploader: Sendable {
    /// What was stored: byte count, SHA-256 of the bytes sent, and the ETags S3 returned.
    public struct Result: Sendable, Hashable {
        public var bytes: Int64
        public var sha256: String
        /// The ETag of a single PUT, when the server sent one.
        public var etag: String?
        /// Every part of a multipart upload, in order; empty for a single PUT.
        public var parts: [CompletedPart]
    }

    private let httpClient: HTTPClient
    private let maxAttempts: Int
    private let backoff: Backoff
    private let baseTimeout: TimeAmount
    private let minimumBytesPerSecond: Int64
    private let partConcurrency: Int
    private let logger: Logger

    public init(
        httpClient: HTTPClient,
        maxAttempts: Int = 5,
        backoff: Backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(20)),
        baseTimeout: TimeAmount = .seconds(30),
        minimumBytesPerSecond: Int64 = 512 << 10,
        partConcurrency: Int = 1,
        logger: Logger = Logger(label: "swarm.storage.upload")
    ) {
        self.partConcurrency = max(1, partConcurrency)
        self.httpClient = httpClient
        self.maxAttempts = max(1, maxAttempts)
        self.backoff = backoff
        self.baseTimeout = baseTimeout
        self.minimumBytesPerSecond = max(1, minimumBytesPerSecond)
        self.logger = logger
    }

    /// Uploads `target.size` bytes read from `open()`, which must return the output from its first byte every
    /// time it is called. Throws `.integrity` when the source holds a different number of bytes.
    public func upload<Source: AsyncSequence<ByteBuffer, any Error> & Sendable>(
        _ target: UploadTarget,
        open: @escaping @Sendable () async throws -> Source
    ) async throws(StorageError) -> Result {
        switch target {
        case .put(let upload): try await put(upload, open: open)
        case .multipart(let upload): try await multipart(upload, open: open)
        }
    }

    // MARK: Single PUT

    private func put<Source: AsyncSequence<ByteBuffer, any Error> & Sendable>(
        _ upload: SingleUpload,
        open: @escaping @Sendable () async throws -> Source
    ) async throws(StorageError) -> Result {
        try await retrying("upload of \(upload.key)") { () async throws(StorageError) -> Result in
            let source: Source
            do {
                source = try await open()
            } catch {
                throw StorageError(.io, "cannot open \(upload.key) for upload: \(error)")
            }
            let meter = Meter(key: upload.key, expected: upload.size)
            var request = HTTPClientRequest(url: upload.url)
            request.method = HTTPMethod(rawValue: upload.method)
            for (name, value) in upload.headers { request.headers.add(name: name, value: value) }
            request.body = .stream(MeteredSequence(base: source, meter: meter), length: .known(upload.size))
            let etag = try await send(request, bytes: upload.size, what: "PUT of \(upload.key) to \(Self.describe(upload.url))", meter: meter)
            let (bytes, sha256) = try meter.finish()
            return Result(bytes: bytes, sha256: sha256, etag: etag, parts: [])
        }
    }

    // MARK: Multipart

    private func multipart<Source: AsyncSequence<ByteBuffer, any Error> & Sendable>(
        _ upload: MultipartUpload,
        open: @escaping @Sendable () async throws -> Source
    ) async throws(StorageError) -> Result {
        let parts = upload.parts.sorted { $0.number < $1.number }
        let lengths = parts.indices.map { index in min(upload.partSize, upload.size - Int64(index) * upload.partSize) }
        guard lengths.allSatisfy({ $0 > 0 }) || (upload.size == 0 && parts.count == 1) else {
            throw StorageError(
                .integrity,
                "upload of \(upload.key) has \(parts.count) parts of \(upload.partSize) bytes, more than \(upload.size) bytes need"
            )
        }
        var reader = ReopeningReader(key: upload.key, open: open, maxAttempts: maxAttempts)
        var completed: [CompletedPart] = []
        // The next part is read while up to `partConcurrency` parts are sent: a slow source or a slow link costs the
        // larger of the two times rather than their sum, and the server's work on one part (hashing, storing)
        // overlaps the transfer of the next.
        let failure: StorageError? = await withTaskGroup(of: Swift.Result<CompletedPart, StorageError>.self) { group in
            /// Keeps a sent part; a part that failed for good ends the upload.
            func record(_ sent: Swift.Result<CompletedPart, StorageError>) -> StorageError? {
                switch sent {
                case .success(let part):
                    completed.append(part)
                    return nil
                case .failure(let error):
                    group.cancelAll()
                    return error
                }
            }
            var inFlight = 0
            for (index, part) in parts.enumerated() {
                let body: ByteBuffer
                do throws(StorageError) {
                    body = try await reader.read(Int(lengths[index]))
                } catch {
                    group.cancelAll()
                    return error
                }
                if inFlight == partConcurrency, let sent = await group.next() {
                    inFlight -= 1
                    if let error = record(sent) { return error }
                }
                group.addTask { await sendPart(body, bytes: lengths[index], to: part, key: upload.key) }
                inFlight += 1
            }
            for await sent in group {
                if let error = record(sent) { return error }
            }
            return nil
        }
        if let failure { throw failure }
        let (bytes, sha256) = try await reader.finish(expected: upload.size)
        return Result(bytes: bytes, sha256: sha256, etag: nil, parts: completed.sorted { $0.number < $1.number })
    }

    /// One part, with retries; a `Swift.Result` because a task group's child cannot carry a typed error.
    private func sendPart(
        _ body: ByteBuffer,
        bytes: Int64,
        to part: MultipartUpload.Part,
        key: String
    ) async -> Swift.Result<CompletedPart, StorageError> {
        let what = "part \(part.number) of \(key) to \(Self.describe(part.url))"
        do {
            let etag = try await retrying(what) { () async throws(StorageError) -> String? in
                var request = HTTPClientRequest(url: part.url)
                request.method = .PUT
                request.body = .bytes(body)
                return try await send(request, bytes: bytes, what: what, meter: nil)
            }
            guard let etag else {
                return .failure(StorageError(.rejected, "\(what) succeeded without an ETag, which completing the upload needs"))
            }
            return .success(CompletedPart(number: part.number, etag: etag))
        } catch {
            return .failure(error)
        }
    }

    // MARK: Transport

    /// Sends one request of `bytes` and returns the reply's ETag; errors carry `what`, never the URL's signature.
    /// The deadline grows with the size: AHC keeps retrying a refused connection until the deadline, so a fixed
    /// long one would turn "storage is down" into a hang instead of a retry and then a clear failure.
    private func send(_ request: HTTPClientRequest, bytes: Int64, what: String, meter: Meter?) async throws(StorageError) -> String? {
        let response: HTTPClientResponse
        let body: String
        let timeout = baseTimeout + .seconds(bytes / minimumBytesPerSecond)
        do {
            response = try await httpClient.execute(request, timeout: timeout, logger: logger)
            body = String(buffer: try await response.body.collect(upTo: 64 << 10))
        } catch {
            // A problem with the source shows up here as the request's failure; report the source's own error.
            if let failure = meter?.failure { throw failure }
            throw StorageError(.unavailable, "\(what) failed: \(error)")
        }
        guard (200..<300).contains(response.status.code) else {
            throw S3Storage.failure(status: response.status, body: body, what: what)
        }
        return response.headers.first(name: "etag")
    }

    private func retrying<T: Sendable>(_ what: String, _ body: () async throws(StorageError) -> T) async throws(StorageError) -> T {
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch {
                attempt += 1
                guard error.isRetryable, attempt < maxAttempts, !Task.isCancelled else {
                    throw attempt > 1 ? StorageError(error.code, "\(error.message) (gave up after \(attempt) attempts)") : error
                }
                let delay = backoff.delay(attempt: attempt - 1)
                logger.warning(
                    "\(what) failed, retrying",
                    metadata: ["error": "\(error)", "attempt": "\(attempt)", "delay_ms": "\(delay.milliseconds)"]
                )
                try? await Task.sleep(for: delay)
            }
        }
    }

    /// Scheme, host and path of a URL: presigned queries hold signatures, which do not belong in logs.
    static func describe(_ url: String) -> String {
        String(url.prefix { $0 != "?" })
    }
}

/// Counts and hashes the bytes a request body pulls from its source, from whatever task AHC reads it on.
final class Meter: Sendable {
    private struct State {
        var hasher = SHA256()
        var bytes: Int64 = 0
        var failure: StorageError?
    }

    private let key: String
    private let expected: Int64
    private let state = Mutex(State())

    init(key: String, expected: Int64) {
        self.key = key
        self.expected = expected
    }

    var failure: StorageError? { state.withLock { $0.failure } }

    func add(_ chunk: ByteBuffer) throws(StorageError) {
        try state.withLock { (state) throws(StorageError) in
            state.bytes += Int64(chunk.readableBytes)
            guard state.bytes <= expected else {
                let error = StorageError(.integrity, "\(key) grew past the \(expected) bytes announced for its upload")
                state.failure = error
                throw error
            }
            chunk.withUnsafeReadableBytes { state.hasher.update(bufferPointer: $0) }
        }
    }

    func fail(_ error: StorageError) {
        state.withLock { $0.failure = $0.failure ?? error }
    }

    /// Byte count and hex SHA-256, once the whole announced length went out.
    func finish() throws(StorageError) -> (Int64, String) {
        try state.withLock { (state) throws(StorageError) in
            guard state.bytes == expected else {
                throw StorageError(.integrity, "\(key) ended after \(state.bytes) of the \(expected) bytes announced for its upload")
            }
            return (state.bytes, state.hasher.finalize().hexString)
        }
    }
}

/// A source as a request body, feeding the meter as AHC pulls it.
struct MeteredSequence<Base: AsyncSequence<ByteBuffer, any Error> & Sendable>: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let base: Base
    let meter: Meter

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let meter: Meter

        mutating func next() async throws -> ByteBuffer? {
            let chunk: ByteBuffer?
            do {
                chunk = try await base.next()
            } catch {
                let failure = StorageError(.io, "reading the output broke off: \(error)")
                meter.fail(failure)
                throw failure
            }
            if let chunk { try meter.add(chunk) } else { _ = try meter.finish() }
            return chunk
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator(), meter: meter)
    }
}

/// Reads a source in exact-size pieces, hashing each byte once. When the source breaks, it is reopened and
/// the bytes already read are skipped, so a multipart upload resumes where it stopped.
struct ReopeningReader<Source: AsyncSequence<ByteBuffer, any Error> & Sendable> {
    let key: String
    let open: @Sendable () async throws -> Source
    let maxAttempts: Int
    private var iterator: Source.AsyncIterator?
    private var pending = ByteBuffer()
    private var consumed: Int64 = 0
    private var hasher = SHA256()

    init(key: String, open: @escaping @Sendable () async throws -> Source, maxAttempts: Int) {
        self.key = key
        self.open = open
        self.maxAttempts = maxAttempts
    }

    /// Exactly `count` bytes; `.integrity` when the source ends first.
    mutating func read(_ count: Int) async throws(StorageError) -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: count)
        while out.readableBytes < count {
            if pending.readableBytes == 0 {
                guard let chunk = try await nextChunk(after: consumed + Int64(out.readableBytes)) else {
                    throw StorageError(.integrity, "\(key) ended after \(consumed + Int64(out.readableBytes)) bytes, before its announced size")
                }
                pending = chunk
            }
            var slice = pending.readSlice(length: min(pending.readableBytes, count - out.readableBytes))!
            out.writeBuffer(&slice)
        }
        out.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        consumed += Int64(count)
        return out
    }

    /// Checks that nothing follows the announced size; returns byte count and hex SHA-256.
    mutating func finish(expected: Int64) async throws(StorageError) -> (Int64, String) {
        if pending.readableBytes > 0 {
            throw StorageError(.integrity, "\(key) holds more than the \(expected) bytes announced for its upload")
        }
        while let extra = try await nextChunk(after: consumed) {
            if extra.readableBytes > 0 {
                throw StorageError(.integrity, "\(key) holds more than the \(expected) bytes announced for its upload")
            }
        }
        return (consumed, hasher.finalize().hexString)
    }

    /// The source's next chunk; after a failure the source is reopened and its first `position` bytes
    /// (those already taken) are skipped.
    private mutating func nextChunk(after position: Int64) async throws(StorageError) -> ByteBuffer? {
        var failures = 0
        while true {
            do {
                if iterator == nil {
                    iterator = try await open().makeAsyncIterator()
                    pending = ByteBuffer()
                    try await skip(position)
                    if pending.readableBytes > 0 { return pending }
                }
                return try await iterator!.next()
            } catch {
                iterator = nil
                failures += 1
                if failures >= maxAttempts || Task.isCancelled {
                    throw StorageError(.io, "reading \(key) failed \(failures) times, the last at byte \(position): \(error)")
                }
            }
        }
    }

    /// Drops the first `count` bytes of a freshly opened source (already read before it broke).
    private mutating func skip(_ count: Int64) async throws {
        var left = count
        while left > 0 {
            guard var chunk = try await iterator!.next() else {
                throw StorageError(.integrity, "\(key) is shorter than before: it ended within the \(count) bytes already uploaded")
            }
            let dropped = min(Int64(chunk.readableBytes), left)
            chunk.moveReaderIndex(forwardBy: Int(dropped))
            left -= dropped
            if chunk.readableBytes > 0 { pending = chunk }
        }
    }
}

/// A byte sequence behind an existential (such as the worker's `OutputSource.body`) as a concrete type,
/// so it can be handed to `OutputUploader.upload` and `LocalStorage.write`, which are generic over their source.
public struct AnyByteSequence: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    private let base: any AsyncSequence<ByteBuffer, any Error> & Sendable

    public init(_ base: any AsyncSequence<ByteBuffer, any Error> & Sendable) {
        self.base = base
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: any AsyncIteratorProtocol<ByteBuffer, any Error>

        public mutating func next() async throws -> ByteBuffer? {
            try await base.next(isolation: nil)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: base.makeAsyncIterator())
    }
}
