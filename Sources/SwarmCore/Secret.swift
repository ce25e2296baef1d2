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
        secrets.reduce(self) { text, secret in
            secret.value.count < 4 ? text : text.replacingOccurrences(of: secret.value, with: "<redacted>")
        }
    }
}

import Foundation
