import AsyncHTTPClient
import Crypto
import Foundation
import Storage
import SwarmCore

/// Where the control plane keeps job outputs (`SWARM_STORAGE` and friends, see `StorageConfiguration`) and how it
/// signs the links of local storage.
public struct OutputStorageSettings: Sendable, CustomStringConvertible {
    public var configuration: StorageConfiguration
    /// Signs local-storage links (`SWARM_STORAGE_SECRET`); links stay valid across restarts only when it is set.
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
