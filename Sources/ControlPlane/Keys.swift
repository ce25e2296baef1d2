import Crypto
import Foundation
import Hummingbird
import JobStore
import SwarmCore
import Synchronization

extension APIKey {
    /// The key an `Authorization` header carries: `Bearer <key>` (the SDK's clients), `Key <key>` (fal's clients) or
    /// the raw key (RunPod's workers and curl examples).
    static func fromAuthorization(_ header: String?) -> String? {
        guard var value = header?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if value.lowercased().hasPrefix("bearer ") {
            value = value.dropFirst(7).trimmingCharacters(in: .whitespaces)
        }
        // fal's clients send `Key <FAL_KEY>` (falai.md §1).
        else if value.lowercased().hasPrefix("key ") {
            value = value.dropFirst(4).trimmingCharacters(in: .whitespaces)
        }
        return value.isEmpty ? nil : value
    }
}

/// Checks presented keys against the environment's keys and the store's, and knows which routes run open.
///
/// Client routes ask for a key once a client key exists; worker routes once any key exists. So the worker keys the
/// fleet mints for its instances close the worker routes of a server that had no keys, but never lock its clients
/// out (`serve` refuses to listen beyond loopback without client keys, so an open client API stays local).
final class KeyRing: Sendable {
    private let environmentKeys: [(digest: [UInt8], scope: KeyScope)]
    /// Scopes with keys in the environment; in-process worker keys are not among them.
    private let environmentScopes: Set<KeyScope>
    private let store: any JobStore
    /// Stored-key lookups, kept briefly so that a busy worker does not cost a query per request; a revoked key stops
    /// working within `cacheLifetime`.
    private let cache = Mutex<[String: (scope: KeyScope?, until: ContinuousClock.Instant)]>([:])
    private let storedScopeCache = Mutex<(value: Set<KeyScope>, until: ContinuousClock.Instant)?>(nil)
    private let cacheLifetime: Duration = .seconds(5)

    init(configuration: ControlPlaneConfiguration, store: any JobStore) {
        self.environmentKeys =
            configuration.clientKeys.map { (Self.digest($0.value), KeyScope.client) }
            + (configuration.workerKeys + configuration.inProcessWorkerKeys).map { (Self.digest($0.value), KeyScope.worker) }
        self.environmentScopes = configuration.environmentKeyScopes
        self.store = store
    }

    enum Outcome: Sendable, Equatable {
        /// The route asks for no key (see `isClosed`).
        case open
        case authenticated(KeyScope)
        case missing
        case unknown
    }

    /// What the `Authorization` header is worth on a route that needs a `required` key.
    func authenticate(_ header: String?, for required: KeyScope) async throws -> Outcome {
        guard let key = APIKey.fromAuthorization(header) else {
            return try await isClosed(required) ? .missing : .open
        }
        if let scope = try await scope(ofKeyDigest: Self.digest(key)) { return .authenticated(scope) }
        return try await isClosed(required) ? .unknown : .open
    }

    /// The scope of the key whose SHA-256 is `digest`, when it is an environment key or a stored key not revoked
    /// (the web page's session keeps only the digest of the key it was signed in with).
    func scope(ofKeyDigest digest: [UInt8]) async throws -> KeyScope? {
        // Compare against every environment key without stopping early, byte by byte in constant time, so the time
        // taken says nothing about which key or how much of it matched.
        var matched: KeyScope?
        for candidate in environmentKeys where Self.constantTimeEqual(candidate.digest, digest) {
            matched = candidate.scope
        }
        if let matched { return matched }
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
        return scope
    }

    /// Whether a route that needs a `required` key asks for one.
    func isClosed(_ required: KeyScope) async throws -> Bool {
        Self.closes(required, existing: try await existingScopes())
    }

    /// The rule itself: client routes close with a client key, worker routes with any key.
    static func closes(_ required: KeyScope, existing: Set<KeyScope>) -> Bool {
        switch required {
        case .client: existing.contains(.client)
        case .worker: !existing.isEmpty
        }
    }

    /// Scopes that have a key, in the environment or stored and not revoked.
    private func existingScopes() async throws -> Set<KeyScope> {
        if environmentScopes.count == KeyScope.allCases.count { return environmentScopes }
        let now = ContinuousClock.now
        if let cached = storedScopeCache.withLock({ $0 }), cached.until > now { return environmentScopes.union(cached.value) }
        let stored = try await Self.storedScopes(in: store)
        storedScopeCache.withLock { $0 = (stored, now + cacheLifetime) }
        return environmentScopes.union(stored)
    }

    /// Scopes with an active stored key.
    static func storedScopes(in store: any JobStore) async throws -> Set<KeyScope> {
        Set(try await store.keys().filter { $0.revokedAt == nil }.map(\.scope))
    }

    static func digest(_ key: String) -> [UInt8] { Array(SHA256.hash(data: Data(key.utf8))) }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}

/// Lets a request through only with a key of the given scope, or when the route runs open (`KeyRing.isClosed`).
struct AuthMiddleware: RouterMiddleware {
    typealias Context = ControlPlaneRequestContext
    let required: KeyScope
    let keys: KeyRing
    /// The web page's sessions: a signed-in browser may read (GET) client routes, such as the costs CSV export link.
    var sessions: WebSessions?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch try await keys.authenticate(request.headers[.authorization], for: required) {
        case .open, .authenticated(required):
            break
        case .missing where try await sessions?.signedInScope(request, keys: keys) == required && request.method == .get:
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
