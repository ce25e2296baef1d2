import AsyncHTTPClient
import Crypto
import Foundation
import Storage
import SwarmCore

/// Where the control plane keeps job outputs (`SWARM_STORAGE` and friends, see `StorageConfiguration`) and how it
/// signs the links of local storage.
public struct OutputStorageSettings: Sendable, CustomStringConvertible {
    public var configuration: StorageConfiguration
    /// Signs local-storage links (`SWARM_STORAGE_SECRET`, else a secret kept in the data directory).
    public var signingSecret: Secret
    /// The control plane as workers and clients reach it (`SWARM_PUBLIC_URL`); when nil, each request's Host header
    /// is used, which is right unless a proxy rewrites it.
    public var publicURL: String?

    public init(configuration: StorageConfiguration, signingSecret: Secret = OutputStorageSettings.randomSecret(), publicURL: String? = nil) {
        self.configuration = configuration
        self.signingSecret = signingSecret
        self.publicURL = publicURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
    }

    public static func randomSecret() -> Secret {
        Secret(SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() })
    }

    /// The signing secret kept in `<directory>/storage-secret` (owner-only), made on first use: without
    /// `SWARM_STORAGE_SECRET`, a restarted server must still honour the links it gave out before (a finished job's
    /// output URLs are stored with the job).
    public static func persistentSecret(in directory: String) throws(ServeError) -> Secret {
        let path = directory + "/storage-secret"
        if let stored = try? String(contentsOfFile: path, encoding: .utf8), !stored.isEmpty { return Secret(stored) }
        let fresh = randomSecret()
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw ServeError("cannot create \(directory) for the storage secret: \(error.localizedDescription)")
        }
        // Exclusive create: of two servers starting on one data directory, both end up with the first one's secret.
        let created = FileManager.default.createFile(atPath: path + ".new", contents: Data(fresh.value.utf8), attributes: [.posixPermissions: 0o600])
        if created, link(path + ".new", path) == 0 || errno == EEXIST {
            unlink(path + ".new")
            if let stored = try? String(contentsOfFile: path, encoding: .utf8), !stored.isEmpty { return Secret(stored) }
        }
        throw ServeError("cannot write the storage secret to \(path) (or set SWARM_STORAGE_SECRET)")
    }

    /// Says where outputs go, without credentials.
    public var description: String {
        switch configuration.backend {
        case .local(let directory): "local files in \(directory)"
        case .s3(let s3): "S3 bucket \(s3.bucket) at \(s3.endpoint)"
        }
    }

    var isLocal: Bool {
        if case .local = configuration.backend { true } else { false }
    }

    /// The backend, with local links pointing at `baseURL` (the control plane as the caller reached it).
    func storage(httpClient: HTTPClient, baseURL: String) -> any OutputStorage {
        configuration.makeStorage(httpClient: httpClient, controlPlaneURL: publicURL ?? baseURL, signingSecret: signingSecret)
    }
}
