import Foundation

/// A credential that never prints itself: logs, errors and `String(describing:)` show `<redacted>`.
public struct Secret: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The value itself; read it only where it is sent (a header, a signature).
    public let value: String

    public init(_ value: String) { self.value = value }

    public var description: String { "<redacted>" }
    public var debugDescription: String { "<redacted>" }
    public var isEmpty: Bool { value.isEmpty }
}

extension String {
    /// This text with every occurrence of the given secrets replaced, for logging text that might echo one back.
    public func redacting(_ secrets: [Secret]) -> String {
        SecretRedactor(secrets).redact(self)
    }
}

/// The one scrubber of every secret the worker holds, applied to each line it passes on from elsewhere (SwarmUI's
/// output in its log, pings and `/health`). Besides the value itself it catches the percent-encoded form a URL or a
/// form body would carry. Values under 4 characters are left alone: replacing them would shred ordinary text.
public struct SecretRedactor: Sendable {
    private let needles: [String]

    public init(_ secrets: [Secret]) {
        var needles = Set<String>()
        for secret in secrets where secret.value.count >= 4 {
            needles.insert(secret.value)
            needles.insert(secret.value.percentEncodedForQuery)
        }
        // Longest first: a secret that contains another is replaced whole.
        self.needles = needles.sorted { $0.count > $1.count }
    }

    public func redact(_ text: String) -> String {
        needles.reduce(text) { text, needle in text.contains(needle) ? text.replacingOccurrences(of: needle, with: "<redacted>") : text }
    }

    /// Every string in `value` (keys too) redacted: a report or a health answer built from relayed text.
    public func redact(_ value: JSONValue) -> JSONValue {
        guard !needles.isEmpty else { return value }
        switch value {
        case .string(let text): return .string(redact(text))
        case .array(let items): return .array(items.map(redact))
        case .object(let fields):
            return .object(Dictionary(fields.map { (redact($0.key), redact($0.value)) }, uniquingKeysWith: { first, _ in first }))
        default: return value
        }
    }

    /// Whether `text` holds one of the secrets (an environment value that must not be handed on).
    public func reveals(_ text: String) -> Bool {
        needles.contains { text.contains($0) }
    }
}
