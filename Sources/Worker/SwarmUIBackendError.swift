/// A SwarmUI failure as the job loop needs to see it: whose fault, and whether another try can help.
public struct SwarmUIBackendError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// SwarmUI refused the request (unknown model, bad parameter): the job's fault, do not retry.
        case rejected
        /// SwarmUI could not be reached or dropped the connection (crash, restart): retry elsewhere or later.
        case unavailable
        /// The generation was interrupted (InterruptAll).
        case interrupted
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
