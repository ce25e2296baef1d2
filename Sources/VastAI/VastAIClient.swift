import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SwarmCore

/// A client of vast.ai's REST API (vastai.md §1). Every call sends the key as a bearer header only (query strings
/// get logged), retries 429 and 5xx with backoff that honors `Retry-After`, and decodes as loosely as vast answers.
///
/// Methods throw `VastAIError`, or `CancellationError` when the task is cancelled while waiting to retry.
public struct VastAIClient: Sendable {
    public struct Configuration: Sendable {
        /// `https://console.vast.ai`; a trailing `/api/v0` (the older form of the URL) is accepted and dropped.
        public var baseURL: String
        public var apiKey: Secret
        /// Tries per call, the first included.
        public var maxAttempts: Int
        /// Waits between tries when vast sends no `Retry-After`.
        public var backoff: Backoff
        /// The longest `Retry-After` obeyed; longer ones are cut to this (the CLI does the same at 60 s).
        public var maxRetryAfter: Duration
        public var requestTimeout: Duration
        /// How often, and how many times, to look for a `request_logs` file before giving up (the CLI: 30 × 0.3 s).
        public var logPollInterval: Duration
        public var logPollAttempts: Int

        public init(
            apiKey: Secret,
            baseURL: String = "https://console.vast.ai",
            maxAttempts: Int = 6,
            backoff: Backoff = Backoff(initial: .seconds(1), maximum: .seconds(30)),
            maxRetryAfter: Duration = .seconds(60),
            requestTimeout: Duration = .seconds(60),
            logPollInterval: Duration = .milliseconds(300),
            logPollAttempts: Int = 30
        ) {
            var base = baseURL.trimmingCharacters(in: .whitespaces)
            while base.hasSuffix("/") { base.removeLast() }
            if base.hasSuffix("/api/v0") { base.removeLast("/api/v0".count) }
            self.baseURL = base
            self.apiKey = apiKey
            self.maxAttempts = max(1, maxAttempts)
            self.backoff = backoff
            self.maxRetryAfter = maxRetryAfter
            self.requestTimeout = requestTimeout
            self.logPollInterval = logPollInterval
            self.logPollAttempts = max(1, logPollAttempts)
        }

        /// `VAST_API_KEY` (required) and `VAST_API_URL` (optional).
        public init(environment: [String: String]) throws(VastAIError) {
            guard let key = environment["VAST_API_KEY"]?.trimmingCharacters(in: .whitespacesAndNewlines), !key.isEmpty else {
                throw VastAIError(.unauthorized, operation: "configuration", message: "VAST_API_KEY is not set")
            }
            let url = environment["VAST_API_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://console.vast.ai"
            self.init(apiKey: Secret(key), baseURL: url)
        }
    }

    public let configuration: Configuration
    private let httpClient: HTTPClient
    private let logger: Logger

    public init(configuration: Configuration, httpClient: HTTPClient = .shared, logger: Logger = Logger(label: "vastai")) {
        self.configuration = configuration
        self.httpClient = httpClient
        self.logger = logger
    }

    // MARK: - Offers

    /// `POST /api/v0/bundles/` with a query built by `OfferFilter.searchQuery`. Offers without an id are dropped.
    public func searchOffers(query: JSONValue) async throws -> [Offer] {
        let answer = try await send(.POST, "/api/v0/bundles/", body: query, operation: "search offers", retry: .always)
        let list = try OfferList(json: answer)
        if list.undecodable > 0 {
            logger.warning("vast.ai search returned offers without an id; ignored", metadata: ["count": "\(list.undecodable)"])
        }
        return list.offers
    }

    // MARK: - Templates

    /// `GET /api/v0/template/` filtered on `hash_id` (vastai.md §1.8); nil when no template has it. Different users can
    /// share a hash, and any of them has the same content.
    public func template(hashID: String) async throws -> JSONValue? {
        let filters: JSONValue = ["hash_id": ["eq": .string(hashID)]]
        var query = URLComponents()
        query.queryItems = [URLQueryItem(name: "select_cols", value: "[\"*\"]"), URLQueryItem(name: "select_filters", value: filters.jsonString())]
        let answer = try await send(
            .GET,
            "/api/v0/template/?" + (query.percentEncodedQuery ?? ""),
            operation: "read template \(hashID)",
            retry: .always
        )
        return answer["templates"]?.arrayValue?.first { $0["hash_id"]?.stringValue == hashID }
    }

    // MARK: - Instances

    /// `PUT /api/v0/asks/{offer}/`. Retried only on 429: after a 5xx or a lost answer the instance may exist
    /// and be billing, and a blind retry would rent a second one; the label finds such an instance later.
    public func createInstance(offerID: Int, _ request: CreateInstanceRequest) async throws -> CreatedInstance {
        let operation = "create instance on offer \(offerID)"
        let answer = try await send(
            .PUT,
            "/api/v0/asks/\(offerID)/",
            body: request.body,
            operation: operation,
            retry: .onlyWhenRefused,
            secrets: Array(request.secretEnv.values)
        )
        try Self.checkSuccess(answer, operation: operation)
        let fields = LooseFields(answer.objectValue ?? [:])
        guard let id = fields.int("new_contract") else {
            throw VastAIError(
                .unexpectedResponse,
                operation: operation,
                message: "the answer has no new_contract: \(answer.jsonString().prefix(300))"
            )
        }
        return CreatedInstance(id: id, instanceAPIKey: fields.string("instance_api_key").map(Secret.init))
    }

    /// `GET /api/v0/instances/{id}/?owner=me`. Nil when vast answers `{"instances": null}`, which it does both
    /// after a destroy and for a short while after create: only the caller knows which.
    public func instance(id: Int) async throws -> Instance? {
        let operation = "show instance \(id)"
        let answer: JSONValue
        do {
            answer = try await send(.GET, "/api/v0/instances/\(id)/?owner=me", operation: operation, retry: .always)
        } catch let error as VastAIError where error.code == .notFound {
            return nil
        }
        return try InstancesPayload.decode(answer, operation: operation).first { $0.id == id }
    }

    /// `instance(id:)`, but when a running instance comes without `ports` (the by-id endpoint may leave them out,
    /// vastai.md §1.6), its record from the account list instead. For showing URLs, not for polling.
    public func instanceWithPorts(id: Int) async throws -> Instance? {
        guard let record = try await instance(id: id) else { return nil }
        guard record.actualStatus == .running, record.ports.isEmpty else { return record }
        return try await instances().first { $0.id == id } ?? record
    }

    /// `GET /api/v0/instances/?owner=me`: every instance of the account. vast rate-limits the list harder than
    /// the by-id call, so poll single instances and list only to find strays.
    public func instances() async throws -> [Instance] {
        let operation = "list instances"
        let answer = try await send(.GET, "/api/v0/instances/?owner=me", operation: operation, retry: .always)
        return try InstancesPayload.decode(answer, operation: operation)
    }

    /// `DELETE /api/v0/instances/{id}/`: the only call that stops billing. An instance vast no longer knows counts
    /// as destroyed. `success: false` throws, since a destroy that silently fails keeps billing.
    public func destroyInstance(id: Int) async throws {
        do {
            try await expectSuccess(.DELETE, "/api/v0/instances/\(id)/", body: [:], operation: "destroy instance \(id)")
        } catch let error as VastAIError where error.code == .notFound {
            logger.info("vast.ai instance already gone", metadata: ["instance": "\(id)"])
        }
    }

    /// Polls the instance until vast reports it gone (`{"instances": null}` or `cur_state` `unloaded`).
    /// - Returns: whether it went within `timeout`.
    public func confirmGone(id: Int, timeout: Duration, pollInterval: Duration = .seconds(5)) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            guard let current = try await instance(id: id), !current.isReleased else { return true }
            if ContinuousClock.now + pollInterval > deadline { return false }
            try await Task.sleep(for: pollInterval)
        }
    }

    /// `PUT /api/v0/instances/reboot/{id}/`: docker stop and start on the same machine; GPU and disk kept.
    public func rebootInstance(id: Int) async throws {
        try await expectSuccess(.PUT, "/api/v0/instances/reboot/\(id)/", body: [:], operation: "reboot instance \(id)")
    }

    /// `PUT /api/v0/instances/{id}/` with `{"state": "stopped"}`: the container ends and the GPU is released; the disk
    /// stays and bills storage until the instance is destroyed.
    public func stopInstance(id: Int) async throws {
        try await expectSuccess(.PUT, "/api/v0/instances/\(id)/", body: ["state": "stopped"], operation: "stop instance \(id)")
    }

    /// `PUT /api/v0/instances/{id}/` with `{"state": "running"}`: resumes a stopped instance when its GPU is free.
    /// `success: false` throws (the GPU was rented away); vast may also accept and leave it `scheduling`.
    public func startInstance(id: Int) async throws {
        try await expectSuccess(.PUT, "/api/v0/instances/\(id)/", body: ["state": "running"], operation: "resume instance \(id)")
    }

    /// `PUT /api/v0/instances/{id}/` with `{"label": …}`.
    public func setLabel(id: Int, label: String) async throws {
        try await expectSuccess(.PUT, "/api/v0/instances/\(id)/", body: ["label": .string(label)], operation: "label instance \(id)")
    }

    // MARK: - Logs

    /// `PUT /api/v0/instances/request_logs/{id}/`: asks vast to upload the log; returns the `result_url` where it
    /// will appear. `daemonLogs` gives the host daemon's log (image pull, container create) instead of stdout.
    public func requestLogs(id: Int, tail: Int? = nil, daemonLogs: Bool = false) async throws -> String {
        let operation = "request logs of instance \(id)"
        // vast's CLI sends these as strings.
        var body: [String: JSONValue] = [:]
        if let tail { body["tail"] = .string(String(tail)) }
        if daemonLogs { body["daemon_logs"] = "true" }
        let answer = try await send(.PUT, "/api/v0/instances/request_logs/\(id)/", body: .object(body), operation: operation, retry: .always)
        try Self.checkSuccess(answer, operation: operation)
        guard let url = answer["result_url"]?.stringValue, !url.isEmpty else {
            throw VastAIError(.unexpectedResponse, operation: operation, message: "the answer has no result_url")
        }
        return url
    }

    /// Fetches a `result_url` with plain GETs (no key: it is a presigned storage URL) until the upload is there.
    public func fetchLogText(resultURL: String) async throws -> String {
        let operation = "fetch logs"
        var lastStatus: Int?
        for attempt in 0..<configuration.logPollAttempts {
            if attempt > 0 { try await Task.sleep(for: configuration.logPollInterval) }
            var request = HTTPClientRequest(url: resultURL)
            request.method = .GET
            do {
                let response = try await httpClient.execute(request, timeout: .init(configuration.requestTimeout))
                let body = try await response.body.collect(upTo: 64 << 20)
                if response.status == .ok { return String(buffer: body) }
                lastStatus = Int(response.status.code)
            } catch {
                lastStatus = nil
            }
        }
        throw VastAIError(
            .logsNotReady,
            operation: operation,
            status: lastStatus,
            message: "the log did not appear at its result_url after \(configuration.logPollAttempts) tries"
        )
    }

    /// `requestLogs` then `fetchLogText`.
    public func logs(id: Int, tail: Int? = nil, daemonLogs: Bool = false) async throws -> String {
        try await fetchLogText(resultURL: try await requestLogs(id: id, tail: tail, daemonLogs: daemonLogs))
    }

    // MARK: - Account

    /// `GET /api/v0/users/current/`: checks the key and reads the credit left.
    public func account() async throws -> Account {
        let answer = try await send(.GET, "/api/v0/users/current/", operation: "check the API key", retry: .always)
        let fields = LooseFields(answer.objectValue ?? [:])
        return Account(id: fields.int("id"), email: fields.string("email"), credit: fields.double("credit"))
    }

    public struct Account: Sendable, Hashable {
        public var id: Int?
        public var email: String?
        /// Dollars.
        public var credit: Double?
    }

    // MARK: - Transport

    enum RetryRule {
        /// 429, 5xx and lost connections: the call is safe to repeat.
        case always
        /// 429 only: vast refused the call before doing anything.
        case onlyWhenRefused
    }

    private func expectSuccess(_ method: HTTPMethod, _ path: String, body: JSONValue, operation: String) async throws {
        let answer = try await send(method, path, body: body, operation: operation, retry: .always)
        try Self.checkSuccess(answer, operation: operation)
    }

    /// Throws on `"success": false`; a missing `success` passes, since some endpoints leave it out.
    private static func checkSuccess(_ answer: JSONValue, operation: String) throws(VastAIError) {
        guard LooseFields(answer.objectValue ?? [:]).bool("success") == false else { return }
        let error = ErrorBody(answer)
        throw VastAIError(
            error.code.map(Self.code(forAPIError:)) ?? .unexpectedResponse,
            operation: operation,
            apiError: error.code,
            message: error.message ?? "vast answered success: false"
        )
    }

    private func send(
        _ method: HTTPMethod,
        _ path: String,
        body: JSONValue? = nil,
        operation: String,
        retry: RetryRule,
        secrets: [Secret] = []
    ) async throws -> JSONValue {
        let secrets = secrets + [configuration.apiKey]
        var attempt = 0
        while true {
            attempt += 1
            let isLast = attempt >= configuration.maxAttempts
            var request = HTTPClientRequest(url: configuration.baseURL + path)
            request.method = method
            request.headers.add(name: "Authorization", value: "Bearer \(configuration.apiKey.value)")
            request.headers.add(name: "Accept", value: "application/json")
            request.headers.add(name: "User-Agent", value: "swarmctl-vastai")
            if let body {
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(string: body.jsonString()))
            }

            let response: HTTPClientResponse
            let data: ByteBuffer
            do {
                response = try await httpClient.execute(request, timeout: .init(configuration.requestTimeout))
                data = try await response.body.collect(upTo: 64 << 20)
            } catch {
                try Task.checkCancellation()
                let failure = VastAIError(
                    .transport,
                    operation: operation,
                    message: "no answer from \(configuration.baseURL): \(error)".redacting(secrets)
                )
                guard retry == .always, !isLast else { throw failure }
                try await pause(
                    before: attempt + 1,
                    delay: configuration.backoff.delay(attempt: attempt - 1),
                    operation: operation,
                    reason: "no answer"
                )
                continue
            }

            let status = Int(response.status.code)
            let text = String(buffer: data)
            if (200..<300).contains(status) {
                if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return .object([:]) }
                guard let value = JSONValue.parse(Data(text.utf8)) else {
                    throw VastAIError(
                        .unexpectedResponse,
                        operation: operation,
                        status: status,
                        message: "the answer is not JSON: \(text.prefix(200))".redacting(secrets)
                    )
                }
                return value
            }

            let errorBody = ErrorBody(JSONValue.parse(Data(text.utf8)) ?? .string(text))
            if status == 429, errorBody.code == "search_quota_exceeded" {
                let reset = response.headers.first(name: "X-RateLimit-Reset").flatMap(Double.init).map(Date.init(timeIntervalSince1970:))
                throw VastAIError(
                    .searchQuotaExceeded(resetAt: reset),
                    operation: operation,
                    status: status,
                    apiError: errorBody.code,
                    message: errorBody.message ?? ""
                )
            }
            let retriable = status == 429 || (retry == .always && status >= 500)
            if retriable, !isLast {
                let delay =
                    Self.retryAfter(response.headers.first(name: "Retry-After"), cap: configuration.maxRetryAfter)
                    ?? configuration.backoff.delay(attempt: attempt - 1)
                try await pause(before: attempt + 1, delay: delay, operation: operation, reason: "HTTP \(status)")
                continue
            }
            throw Self.error(status: status, body: errorBody, text: text, operation: operation, secrets: secrets)
        }
    }

    private func pause(before attempt: Int, delay: Duration, operation: String, reason: String) async throws {
        logger.debug(
            "vast.ai call will be retried",
            metadata: ["operation": "\(operation)", "reason": "\(reason)", "attempt": "\(attempt)", "delay_ms": "\(delay.milliseconds)"]
        )
        try await Task.sleep(for: delay)
    }

    /// `Retry-After` as seconds (integer or decimal) or an HTTP date; capped, never negative.
    static func retryAfter(_ header: String?, cap: Duration, now: Date = Date()) -> Duration? {
        guard let header = header?.trimmingCharacters(in: .whitespaces), !header.isEmpty else { return nil }
        let seconds: Double
        if let value = Double(header) {
            seconds = value
        } else {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
            guard let date = formatter.date(from: header) else { return nil }
            seconds = date.timeIntervalSince(now)
        }
        return min(cap, .milliseconds(Int64(max(0, seconds) * 1000)))
    }

    private static func error(status: Int, body: ErrorBody, text: String, operation: String, secrets: [Secret]) -> VastAIError {
        let message = (body.message ?? String(text.prefix(300))).redacting(secrets)
        let code: VastAIError.Code =
            if let apiCode = body.code, case let mapped = Self.code(forAPIError: apiCode), mapped != .unexpectedResponse {
                mapped
            } else if status == 402 || message.lowercased().contains("insufficient") {
                .insufficientCredit
            } else {
                switch status {
                case 401: .unauthorized
                case 403: message.lowercased().contains("key") ? .unauthorized : .rejected
                case 404: message.contains("no_such_ask") ? .offerUnavailable : .notFound
                case 409, 410: .offerUnavailable
                case 429: .rateLimited
                case 400..<500: .rejected
                case 500...: .serverError
                default: .unexpectedResponse
                }
            }
        return VastAIError(code, operation: operation, status: status, apiError: body.code, message: message)
    }

    /// vast's `error` codes (§1.7) that say more than the HTTP status.
    private static func code(forAPIError apiError: String) -> VastAIError.Code {
        switch apiError {
        case "auth_error", "not_authorized": .unauthorized
        case "no_such_ask": .offerUnavailable
        case "no_such_instance", "not_found": .notFound
        case "rate_limit_exceeded": .rateLimited
        case "missing_billing", "insufficient_credit", "insufficient_credits": .insufficientCredit
        case "invalid_args", "invalid_price", "label_too_long", "invalid_id", "no_ssh_key_for_vm": .rejected
        default: .unexpectedResponse
        }
    }
}

/// `{"success": false, "error": "<code>", "msg": "<text>"}`, or `message`/`detail` instead of `msg`, or plain text.
private struct ErrorBody {
    var code: String?
    var message: String?

    init(_ value: JSONValue) {
        switch value {
        case .object(let object):
            let fields = LooseFields(object)
            code = fields.string("error")
            message = fields.string("msg") ?? fields.string("message") ?? fields.string("detail")
        case .string(let text):
            message = text.isEmpty ? nil : String(text.prefix(300))
        default:
            break
        }
    }
}
