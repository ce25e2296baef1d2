import AsyncHTTPClient
import Foundation
import JobProtocol
import SwarmCore

/// How the control plane stores outputs, read from `SWARM_STORAGE` and friends.
public struct StorageConfiguration: Sendable {
    public enum Backend: Sendable {
        /// Files under a directory, uploaded to and served by the control plane.
        case local(directory: String)
        case s3(S3Configuration)
    }

    public var backend: Backend
    /// Outputs at least this large are uploaded in parts (`SWARM_MULTIPART_THRESHOLD`, default 64 MiB).
    public var multipartThreshold: Int64
    /// Lifetime of upload and download links in seconds (`SWARM_PRESIGN_EXPIRES`, default 3600; at most 7 days).
    public var presignExpires: Int

    public static let defaultMultipartThreshold: Int64 = 64 << 20
    public static let defaultPresignExpires = 3_600
    /// SigV4 refuses presigned URLs that live longer than a week.
    public static let maximumPresignExpires = 604_800

    public init(backend: Backend, multipartThreshold: Int64 = defaultMultipartThreshold, presignExpires: Int = defaultPresignExpires) {
        self.backend = backend
        self.multipartThreshold = multipartThreshold
        self.presignExpires = presignExpires
    }

    /// Reads the environment; `local` files go to `<dataDirectory>/outputs`.
    public init(environment env: [String: String], dataDirectory: String) throws(StorageError) {
        func trimmed(_ name: String) -> String? {
            env[name].map { $0.trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        func integer(_ name: String, default fallback: Int64, range: ClosedRange<Int64>) throws(StorageError) -> Int64 {
            guard let text = trimmed(name) else { return fallback }
            guard let value = Int64(text), range.contains(value) else {
                throw StorageError(.configuration, "\(name)=\(text) must be a whole number between \(range.lowerBound) and \(range.upperBound)")
            }
            return value
        }
        let backend: Backend
        switch trimmed("SWARM_STORAGE")?.lowercased() ?? "local" {
        case "local":
            backend = .local(directory: (dataDirectory as NSString).appendingPathComponent("outputs"))
        case "s3":
            backend = .s3(try S3Configuration(environment: env))
        case let other:
            throw StorageError(.configuration, "SWARM_STORAGE=\(other) is not a storage backend; use local or s3")
        }
        // S3 parts are at least 5 MiB (except the last), so a smaller threshold could not be honoured.
        let threshold = try integer(
            "SWARM_MULTIPART_THRESHOLD",
            default: Self.defaultMultipartThreshold,
            range: MultipartUpload.minimumPartSize...(5 << 30)
        )
        let expires = try integer(
            "SWARM_PRESIGN_EXPIRES",
            default: Int64(Self.defaultPresignExpires),
            range: 1...Int64(Self.maximumPresignExpires)
        )
        self.init(backend: backend, multipartThreshold: threshold, presignExpires: Int(expires))
    }
}

extension StorageConfiguration {
    /// The backend this configuration describes. `controlPlaneURL` (as workers and clients reach the control
    /// plane) and `signingSecret` sign the links of local storage; S3 signs with the bucket's credentials.
    public func makeStorage(httpClient: HTTPClient, controlPlaneURL: String, signingSecret: Secret) -> any OutputStorage {
        switch backend {
        case .local(let directory):
            LocalStorage(directory: directory, baseURL: controlPlaneURL, signingSecret: signingSecret, linkExpires: presignExpires)
        case .s3(let s3):
            S3Storage(configuration: s3, httpClient: httpClient, multipartThreshold: multipartThreshold, presignExpires: presignExpires)
        }
    }
}
