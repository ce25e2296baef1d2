import Crypto
import Foundation
import Hummingbird
import JobStore
import SwarmCore
import Synchronization

/// API keys: how they are made, hashed and checked. Keys are never stored or logged, only their SHA-256.
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

    /// The key an `Authorization` header carries: `Bearer <key>` (the SDK's clients) or the raw key (its workers and
    /// RunPod's curl examples).
    static func fromAuthorization(_ header: String?) -> String? {
        guard var value = header?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if value.lowercased().hasPrefix("bearer ") { value = value.dropFirst(7).trimmingCharacters(in: .whitespaces) }
        return value.isEmpty ? nil : value
    }
}

/// Checks presented keys against the environment's keys and the store's, and knows whether the server runs open
/// (no key anywhere, which `serve` allows on loopback only).
final class KeyRing: Sendable {
    private let environmentKeys: [(digest: [UInt8], scope: KeyScope)]
    private let hasEnvironmentKeys: Bool
    private let store: any JobStore
    /// Stored-key lookups, kept briefly so that a busy worker does not cost a query per request; a revoked key stops
    /// working within `cacheLifetime`.
    private let cache = Mutex<[String: (scope: KeyScope?, until: ContinuousClock.Instant)]>([:])
    private let storeHasKeys = Mutex<(value: Bool, until: ContinuousClock.Instant)?>(nil)
    private let cacheLifetime: Duration = .seconds(5)

    init(configuration: ControlPlaneConfiguration, store: any JobStore) {
        self.environmentKeys = configuration.clientKeys.map { (Self.digest($0.value), KeyScope.client) }
            + (configuration.workerKeys + configuration.inProcessWorkerKeys).map { (Self.digest($0.value), KeyScope.worker) }
        self.hasEnvironmentKeys = configuration.hasEnvironmentKeys
        self.store = store
    }

    enum Outcome: Sendable, Equatable {
        /// No keys exist at all: every route is open.
        case open
        case authenticated(KeyScope)
        case missing
        case unknown
    }

    func authenticate(_ header: String?) async throws -> Outcome {
        guard let key = APIKey.fromAuthorization(header) else {
            return try await anyKeyExists() ? .missing : .open
        }
        let digest = Self.digest(key)
        // Compare against every environment key without stopping early, byte by byte in constant time, so the time
        // taken says nothing about which key or how much of it matched.
        var matched: KeyScope?
        for candidate in environmentKeys where Self.constantTimeEqual(candidate.digest, digest) {
            matched = candidate.scope
        }
        if let matched { return .authenticated(matched) }
        let hash = digest.hexString
        let now = ContinuousClock.now
        let scope: KeyScope?
        if let cached = cache.withLock({ $0[hash] }), cached.until > now {
            scope = cached.scope
        } else {
            scope = try await store.key(hash: hash)?.scope
            cache.withLock { entries in
                if entries.count > 10_000 { entries.removeAll() }
                entries[hash] = (scope, now + cacheLifetime)
            }
        }
        if let scope { return .authenticated(scope) }
        return try await anyKeyExists() ? .unknown : .open
    }

    func anyKeyExists() async throws -> Bool {
        if hasEnvironmentKeys { return true }
        let now = ContinuousClock.now
        if let cached = storeHasKeys.withLock({ $0 }), cached.until > now { return cached.value }
        let value = try await store.keys().contains { $0.revokedAt == nil }
        storeHasKeys.withLock { $0 = (value, now + cacheLifetime) }
        return value
    }

    private static func digest(_ key: String) -> [UInt8] { Array(SHA256.hash(data: Data(key.utf8))) }

    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

/// Lets a request through only with a key of the given scope (or when the server has no keys at all).
struct AuthMiddleware: RouterMiddleware {
    typealias Context = ControlPlaneRequestContext
    let required: KeyScope
    let keys: KeyRing

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch try await keys.authenticate(request.headers[.authorization]) {
        case .open, .authenticated(required):
            break
        case .authenticated(let scope):
            throw APIError.unauthorized(
                "this is a \(scope.rawValue) key and this route needs a \(required.rawValue) key; create one with 'swarmctl keys create --scope \(required.rawValue)'"
            )
        case .missing:
            throw APIError.unauthorized("missing API key; send 'Authorization: Bearer <key>' (a \(required.rawValue) key)")
        case .unknown:
            throw APIError.unauthorized("API key not recognised or revoked")
        }
        return try await next(request, context)
    }
}
