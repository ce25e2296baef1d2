/// A failed call to SwarmUI, with text meant for an operator: what happened and what to do about it.
/// Secrets never appear here: messages are built from route names, statuses and SwarmUI's own error text.
public struct SwarmUIError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// Nothing accepted the connection: SwarmUI is not running (yet) or listens elsewhere.
        case unreachable
        /// No answer within the deadline.
        case timeout
        /// The connection broke mid-call: SwarmUI crashed or restarted.
        case connectionClosed
        /// The `Network.RequiredAuthorization` gate refused us (HTTP 401 "Unauthorized"): wrong or missing token.
        case unauthorized
        /// SwarmUI rejected the session id even after a fresh session was fetched.
        case invalidSession
        /// SwarmUI answered `{"error": ...}`; `id` is its `error_id` when it sent one (`bad_route`, `basic_api`...).
        case routeError(id: String?)
        /// The generation was cancelled through `InterruptAll`.
        case interrupted
        /// The generation ended without any output (typically interrupted before a backend picked it up).
        case noOutput
        /// An HTTP status other than success, without a JSON error body (for example 404 for a missing output file).
        case httpStatus(Int)
        /// The answer was not what the API documents (not JSON, missing fields).
        case badResponse
        /// The calling task was cancelled.
        case cancelled
    }

    public var code: Code
    /// The API route (`GetCurrentStatus`, `GenerateText2ImageWS`, `View/...`) the failure belongs to.
    public var route: String
    /// SwarmUI's own words, or ours for transport failures.
    public var detail: String

    public init(_ code: Code, route: String, detail: String) {
        self.code = code
        self.route = route
        self.detail = detail
    }

    /// Whether the same call may succeed later without changing it: transport failures and SwarmUI's
    /// "no backend right now" answers are; a rejected parameter or a wrong token are not.
    public var isRetryable: Bool {
        switch code {
        case .unreachable, .timeout, .connectionClosed, .invalidSession:
            return true
        case .routeError(let id):
            if id == "internal_error" { return true }
            return Self.transientRouteErrors.contains { detail.contains($0) }
        case .httpStatus(let status):
            return status >= 500
        case .unauthorized, .interrupted, .noOutput, .badResponse, .cancelled:
            return false
        }
    }

    /// SwarmUI's texts for "try again later" (swarmui.md §12).
    private static let transientRouteErrors = ["No backends available", "All backends are occupied"]

    public var description: String {
        switch code {
        case .unreachable:
            return "SwarmUI is not reachable (\(route)): \(detail). Check that SwarmUI is running and listening on the configured address."
        case .timeout:
            return "SwarmUI did not answer in time (\(route)): \(detail). It may be overloaded or hung; check its log."
        case .connectionClosed:
            return "SwarmUI closed the connection during \(route): \(detail). It probably crashed or restarted; check its log."
        case .unauthorized:
            return
                "SwarmUI refused \(route) with 401 Unauthorized: its Network.RequiredAuthorization is set and the bearer token is missing or wrong. Configure the same token on both sides."
        case .invalidSession:
            return "SwarmUI rejected the session for \(route) even after a new session was created: \(detail)."
        case .routeError(let id):
            let tag = id.map { " [\($0)]" } ?? ""
            return "SwarmUI rejected \(route)\(tag): \(detail)"
        case .interrupted:
            return "The generation was interrupted (\(route)): \(detail)"
        case .noOutput:
            return "SwarmUI finished \(route) without producing any output: \(detail)"
        case .httpStatus(let status):
            return "SwarmUI answered \(route) with HTTP \(status): \(detail)"
        case .badResponse:
            return "SwarmUI sent an unexpected answer to \(route): \(detail). Is this a supported SwarmUI version?"
        case .cancelled:
            return "The call to SwarmUI (\(route)) was cancelled."
        }
    }
}
