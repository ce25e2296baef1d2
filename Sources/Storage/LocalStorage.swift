import Crypto
import Foundation
import JobProtocol
import NIOCore
import NIOPosix
import SwarmCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Outputs as files under a directory of the control plane. Workers PUT them to a link the control plane signed,
/// clients GET them with another: `<baseURL>/files/<key>?expires=<unix time>&signature=<hex HMAC-SHA256>`.
/// The control plane routes `PUT`/`GET /files/**` to `verify(...)`, then `write(...)` or `fileURL(key:)`.
public struct LocalStorage: OutputStorage {
    public static let routePrefix = "/files/"

    public let directory: String
    /// The control plane as workers and clients reach it, e.g. `https://swarm.example.com`.
    public let baseURL: String
    public let linkExpires: Int
    private let signingKey: SymmetricKey
    private let now: @Sendable () -> Date

    public init(
        directory: String,
        baseURL: String,
        signingSecret: Secret,
        linkExpires: Int = StorageConfiguration.defaultPresignExpires,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.directory = directory
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.linkExpires = linkExpires
        self.signingKey = SymmetricKey(data: SHA256.hash(data: Data("swarm-local-storage\n\(signingSecret.value)".utf8)))
        self.now = now
    }

    // MARK: Links

    /// A link that allows `method` (`PUT` or `GET`) on `key` until `expires` seconds from now.
    public func signedURL(method: String, key: String, expires: Int? = nil) -> String {
        let deadline = Int64(now().timeIntervalSince1970) + Int64(expires ?? linkExpires)
        return baseURL + Self.routePrefix + SigV4.encodePath(key)
            + "?expires=\(deadline)&signature=\(signature(method: method, key: key, deadline: deadline))"
    }

    /// Checks a link's `expires` and `signature` query values for `method` on `key` (the decoded path after `/files/`).
    public func verify(method: String, key: String, expires: String?, signature: String?) throws(StorageError) {
        guard let expires, let deadline = Int64(expires), let signature, let given = Self.bytes(fromHex: signature) else {
            throw StorageError(.rejected, "the link to \(key) is not signed (expires and signature are required)")
        }
        guard
            HMAC<SHA256>.isValidAuthenticationCode(
                given,
                authenticating: Self.message(method: method, key: key, deadline: deadline),
                using: signingKey
            )
        else {
            throw StorageError(.rejected, "the link to \(key) has a wrong signature for \(method)")
        }
        guard Int64(now().timeIntervalSince1970) <= deadline else {
            throw StorageError(.rejected, "the link to \(key) expired")
        }
    }

    private func signature(method: String, key: String, deadline: Int64) -> String {
        HMAC<SHA256>.authenticationCode(for: Self.message(method: method, key: key, deadline: deadline), using: signingKey).hexString
    }

    private static func message(method: String, key: String, deadline: Int64) -> Data {
        Data("\(method.uppercased())\n\(key)\n\(deadline)".utf8)
    }

    private static func bytes(fromHex hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count == 64 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }

    // MARK: Files

    /// The file holding `key`; keys with empty, `.` or `..` segments are refused so that none leaves the directory.
    public func fileURL(key: String) throws(StorageError) -> URL {
        let segments = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !segments.isEmpty, segments.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw StorageError(.rejected, "\(key) is not a valid object key")
        }
        return URL(fileURLWithPath: directory).appendingPathComponent(key)
    }

    /// Streams `body` to `key`: into a temporary file next to it, hashing on the way, then renamed into place,
    /// so that a reader never sees a partial file and an interrupted upload leaves nothing behind.
    /// With `expectedSize`, a body of any other length is refused.
    public func write(
        key: String,
        expectedSize: Int64?,
        body: some AsyncSequence<ByteBuffer, any Error>
    ) async throws(StorageError) -> (bytes: Int64, sha256: String) {
        let destination = try fileURL(key: key)
        let folder = destination.deletingLastPathComponent()
        let temporary = folder.appendingPathComponent(".\(destination.lastPathComponent).\(UUID().uuidString).partial")
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw StorageError(.io, "cannot create \(folder.path) for \(key): \(error)")
        }
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil),
            let handle = try? FileHandle(forWritingTo: temporary)
        else {
            throw StorageError(.io, "cannot write \(temporary.path) (is the disk full or read-only?)")
        }
        var hasher = SHA256()
        var bytes: Int64 = 0
        // Writes go to NIO's thread pool in batches of about 1 MiB: the cooperative threads are as few as the
        // cores, and the control plane's routes need them while a large upload lands.
        var batch = ByteBuffer()
        do {
            defer { try? handle.close() }
            for try await chunk in body {
                bytes += Int64(chunk.readableBytes)
                if let expectedSize, bytes > expectedSize { break }
                chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                batch.writeImmutableBuffer(chunk)
                if batch.readableBytes >= 1 << 20 {
                    try await Self.offload(batch, to: handle, synchronize: false)
                    batch.clear()
                }
            }
            if let expectedSize, bytes != expectedSize {
                throw StorageError(
                    .integrity,
                    "upload of \(key) sent \(bytes > expectedSize ? "more than" : "only") \(bytes) bytes of the \(expectedSize) announced"
                )
            }
            try await Self.offload(batch, to: handle, synchronize: true)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            if let error = error as? StorageError { throw error }
            throw StorageError(.io, "upload of \(key) broke off after \(bytes) bytes: \(error)")
        }
        // rename(2) replaces an existing file atomically; FileManager.moveItem would refuse to.
        guard rename(temporary.path, destination.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw StorageError(.io, "cannot move the upload of \(key) into place: \(reason)")
        }
        return (bytes, hasher.finalize().hexString)
    }

    private static func offload(_ batch: ByteBuffer, to handle: FileHandle, synchronize: Bool) async throws {
        try await NIOThreadPool.singleton.runIfActive {
            try batch.withUnsafeReadableBytes { try handle.write(contentsOf: $0) }
            if synchronize { try handle.synchronize() }
        }
    }

    public func remove(key: String) throws(StorageError) {
        let file = try fileURL(key: key)
        do {
            try FileManager.default.removeItem(at: file)
        } catch {
            if FileManager.default.fileExists(atPath: file.path) {
                throw StorageError(.io, "cannot remove \(file.path): \(error)")
            }
        }
    }

    // MARK: OutputStorage

    public func uploadTarget(key: String, size: Int64, contentType: String, completeURL: String?) throws(StorageError) -> UploadTarget {
        _ = try fileURL(key: key)
        // The control plane streams any size to disk itself, so there is never a multipart upload here.
        return .put(SingleUpload(key: key, size: size, url: signedURL(method: "PUT", key: key), headers: ["content-type": contentType]))
    }

    public func completeUpload(_ target: UploadTarget, parts: [CompletedPart]) throws(StorageError) -> ObjectInfo {
        guard let info = try head(key: target.key) else {
            throw StorageError(.notFound, "upload of \(target.key) reported done, but \(directory) has no such file")
        }
        guard info.bytes == target.size else {
            try remove(key: target.key)
            throw StorageError(.integrity, "\(target.key) holds \(info.bytes) bytes, but \(target.size) were announced; the file was removed")
        }
        return info
    }

    public func abortUpload(_ target: UploadTarget) {
        // `write` removes its temporary file on every failure; a finished file is only replaced, never partial.
    }

    public func downloadURL(key: String) -> String {
        signedURL(method: "GET", key: key)
    }

    public func head(key: String) throws(StorageError) -> ObjectInfo? {
        let file = try fileURL(key: key)
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: file.path),
            let size = (attributes[.size] as? NSNumber)?.int64Value
        else { return nil }
        return ObjectInfo(bytes: size, etag: nil, contentType: nil)
    }
}
