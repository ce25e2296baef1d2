/// What went wrong with output storage, worded for an operator. Messages never contain credentials or signatures.
public struct StorageError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// A variable is missing or malformed; the message names it.
        case configuration
        /// The service could not be reached, timed out or answered 5xx/429: worth retrying.
        case unavailable
        /// The service refused the request (4xx: signature, permissions, expired URL, missing bucket).
        case rejected
        /// The object or upload does not exist.
        case notFound
        /// The bytes do not match what was announced (size) or the source changed while it was read.
        case integrity
        /// Reading the source or writing the local store failed.
        case io
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Whether the same request may succeed later.
    public var isRetryable: Bool { code == .unavailable || code == .io }

    public var description: String { message }
}
