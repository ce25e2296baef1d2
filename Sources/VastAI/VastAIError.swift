import Foundation

/// A failed vast.ai call, worded for the operator who reads it in a log: what was attempted, what vast said, and
/// what to change where that is known.
public struct VastAIError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: Sendable, Hashable {
        /// No `VAST_API_KEY`, or vast refused it (401/403 `auth_error`).
        case unauthorized
        /// The offer was taken or withdrawn between search and create (404 `no_such_ask`, 409, 410).
        case offerUnavailable
        /// No such instance (404), e.g. destroyed already.
        case notFound
        /// Still 429 after every retry.
        case rateLimited
        /// The daily search quota is spent (`search_quota_exceeded`); retrying before `resetAt` is useless.
        case searchQuotaExceeded(resetAt: Date?)
        /// The account has no credit or no billing (`missing_billing`, "insufficient credit").
        case insufficientCredit
        /// vast rejected the request (400: `invalid_args`, `label_too_long`, …).
        case rejected
        /// vast answered 5xx on every try.
        case serverError
        /// No answer (DNS, connect, timeout).
        case transport
        /// The answer was not the shape the contract describes, or `success` was false.
        case unexpectedResponse
        /// `request_logs` gave a `result_url` but the file never appeared.
        case logsNotReady
    }

    public var code: Code
    /// What was being done: "create instance on offer 123", "destroy instance 456".
    public var operation: String
    public var status: Int?
    /// vast's `error` code, when it sent one.
    public var apiError: String?
    /// vast's `msg`, or the body's first characters (secrets removed).
    public var message: String

    public init(_ code: Code, operation: String, status: Int? = nil, apiError: String? = nil, message: String) {
        self.code = code
        self.operation = operation
        self.status = status
        self.apiError = apiError
        self.message = message
    }

    public var description: String {
        var text = "vast.ai \(operation) failed"
        if let status { text += " (HTTP \(status)\(apiError.map { ", \($0)" } ?? ""))" } else if let apiError { text += " (\(apiError))" }
        if !message.isEmpty { text += ": \(message)" }
        if let hint { text += "; \(hint)" }
        return text
    }

    /// What the operator can do about it.
    public var hint: String? {
        switch code {
        case .unauthorized:
            "check VAST_API_KEY (a key with the scopes misc, user_read, instance_read and instance_write)"
        case .offerUnavailable:
            "someone else rented it first; search again"
        case .rateLimited:
            "vast is rate limiting this key; poll less often"
        case .searchQuotaExceeded(let resetAt):
            "the daily search quota is used up" + (resetAt.map { "; it resets at \($0.formatted(.iso8601))" } ?? "")
        case .insufficientCredit:
            "add credit to the vast.ai account"
        case .transport:
            "check the network and VAST_API_URL"
        case .notFound, .rejected, .serverError, .unexpectedResponse, .logsNotReady:
            nil
        }
    }
}
