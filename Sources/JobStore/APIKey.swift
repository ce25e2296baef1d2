import Crypto
import Foundation
import SwarmCore

/// API keys: how they are made and hashed. Keys are never stored or logged, only their SHA-256 (`StoredKey.hash`).
public enum APIKey {
    /// A new random key, prefixed by scope so that a person can tell a worker key from a client key at a glance.
    public static func generate(scope: KeyScope) -> Secret {
        var bytes = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in bytes.indices { bytes[index] = generator.next() }
        let body = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return Secret("swarm_\(scope == .client ? "c" : "w")_\(body)")
    }

    /// Hex SHA-256, the form keys are stored and looked up in.
    public static func hash(_ key: String) -> String {
        SHA256.hash(data: Data(key.utf8)).hexString
    }
}
