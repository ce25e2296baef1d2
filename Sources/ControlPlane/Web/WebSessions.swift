import Crypto
import Foundation
import Hummingbird
import JobStore
import SwarmCore
import Synchronization

/// The web page's sessions: a cookie signed with HMAC-SHA256, so that nothing but sign-outs is kept on the server.
///
/// The cookie holds a random session id, its expiry and, once signed in, the SHA-256 of the client key used; every
/// request checks that key again (`KeyRing`), so revoking the key ends its sessions. A browser on an open server
/// (no client keys, loopback) gets an anonymous session all the same: its id is what the CSRF token is derived from.
public final class WebSessions: Sendable {
    static let cookieName = "swarm_session"
    static let lifetime: TimeInterval = 12 * 3600

    struct Session: Sendable, Equatable {
        var id: String
        var expires: Date
        /// Hex SHA-256 of the client key signed in with; nil for an anonymous session.
        var keyDigest: String?
    }

    private let key: SymmetricKey
    /// `Secure` on the cookie when the server runs TLS.
    let secure: Bool
    /// Ended sessions, until they would have expired anyway.
    private let signedOut = Mutex<[String: Date]>([:])

    /// - Parameter secret: the storage signing secret (kept across restarts), or nil for one of this process only.
    init(secret: Secret?, secure: Bool) {
        let base = secret.map { SymmetricKey(data: Data($0.value.utf8)) } ?? SymmetricKey(size: .bits256)
        // A key of its own, so that a session cookie is never a valid storage link signature or the reverse.
        self.key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data("swarm web session v1".utf8), using: base)))
        self.secure = secure
    }

    // MARK: Cookies

    func newSession(keyDigest: String?, now: Date = Date()) -> Session {
        Session(id: UUID().uuidString.lowercased(), expires: now.addingTimeInterval(Self.lifetime), keyDigest: keyDigest)
    }

    /// `<id>~<expiry epoch s>~<key digest or ->.<hex HMAC>`
    func cookieValue(_ session: Session) -> String {
        let payload = "\(session.id)~\(Int(session.expires.timeIntervalSince1970))~\(session.keyDigest ?? "-")"
        return payload + "." + sign(payload)
    }

    func setCookie(_ session: Session) -> String {
        "\(Self.cookieName)=\(cookieValue(session)); Path=/; Max-Age=\(Int(Self.lifetime)); HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    var clearCookie: String {
        "\(Self.cookieName)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    /// The request's session when its cookie is intact, unexpired and not signed out.
    func session(_ request: Request, now: Date = Date()) -> Session? {
        guard let value = Self.cookie(Self.cookieName, in: request.headers[values: .cookie]) else { return nil }
        return session(cookieValue: value, now: now)
    }

    func session(cookieValue value: String, now: Date = Date()) -> Session? {
        guard let dot = value.lastIndex(of: ".") else { return nil }
        let payload = String(value[..<dot])
        let signature = String(value[value.index(after: dot)...])
        guard KeyRing.constantTimeEqual(Array(signature.utf8), Array(sign(payload).utf8)) else { return nil }
        let parts = payload.split(separator: "~", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, let epoch = Int(parts[1]) else { return nil }
        let session = Session(id: parts[0], expires: Date(timeIntervalSince1970: TimeInterval(epoch)), keyDigest: parts[2] == "-" ? nil : parts[2])
        guard session.expires > now else { return nil }
        if signedOut.withLock({ $0[session.id] }) != nil { return nil }
        return session
    }

    func signOut(_ session: Session, now: Date = Date()) {
        signedOut.withLock { ended in
            ended = ended.filter { $0.value > now }
            ended[session.id] = session.expires
        }
    }

    /// The scope of the key the request's session was signed in with, while that key is valid.
    func signedInScope(_ request: Request, keys: KeyRing) async throws -> KeyScope? {
        guard let digest = session(request)?.keyDigest, let bytes = Self.bytes(hex: digest) else { return nil }
        return try await keys.scope(ofKeyDigest: bytes)
    }

    // MARK: CSRF

    /// The token every state-changing form carries: bound to the session, so a page of another site cannot know it.
    func csrfToken(for session: Session) -> String { sign("csrf~" + session.id) }

    func checkCSRF(_ token: String?, for session: Session) -> Bool {
        guard let token else { return false }
        return KeyRing.constantTimeEqual(Array(token.utf8), Array(csrfToken(for: session).utf8))
    }

    // MARK: Helpers

    private func sign(_ text: String) -> String {
        Data(HMAC<SHA256>.authenticationCode(for: Data(text.utf8), using: key)).hexString
    }

    static func cookie(_ name: String, in headers: [String]) -> String? {
        for header in headers {
            for pair in header.split(separator: ";") {
                let trimmed = pair.trimmingCharacters(in: .whitespaces)
                guard let equals = trimmed.firstIndex(of: "=") else { continue }
                if trimmed[..<equals] == name { return String(trimmed[trimmed.index(after: equals)...]) }
            }
        }
        return nil
    }

    static func bytes(hex: String) -> [UInt8]? {
        let characters = Array(hex.utf8)
        guard characters.count == 64 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for index in stride(from: 0, to: characters.count, by: 2) {
            guard let byte = UInt8(String(decoding: characters[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
