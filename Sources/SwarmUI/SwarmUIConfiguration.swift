import AsyncHTTPClient
import NIOCore
import SwarmCore

/// Where SwarmUI is and how long to wait for it.
public struct SwarmUIConfiguration: Sendable {
    /// `http://host:port` of SwarmUI, without a trailing path.
    public var baseURL: String
    /// Sent as `Authorization: Bearer <token>` when SwarmUI's `Network.RequiredAuthorization` gate is on.
    public var bearerToken: Secret?
    /// Deadline for one ordinary API call (status, sessions, model routes).
    public var requestTimeout: Duration
    /// How long to wait for a TCP connection; keep it short so a SwarmUI that is down is reported at once.
    public var connectTimeout: Duration
    /// Deadline for `GenerateText2Image` over HTTP: SwarmUI answers only when every output is done.
    public var httpGenerateTimeout: Duration
    /// Deadline for streaming one output file (large videos over a slow link take a while).
    public var outputTimeout: Duration
    /// Largest JSON response or WebSocket message accepted (data-URL videos with `donotsave` are big).
    public var maxMessageBytes: Int

    public init(
        baseURL: String = "http://127.0.0.1:7801",
        bearerToken: Secret? = nil,
        requestTimeout: Duration = .seconds(30),
        connectTimeout: Duration = .seconds(2),
        httpGenerateTimeout: Duration = .seconds(2 * 3600),
        outputTimeout: Duration = .seconds(3600),
        maxMessageBytes: Int = 512 << 20
    ) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.bearerToken = bearerToken
        self.requestTimeout = requestTimeout
        self.connectTimeout = connectTimeout
        self.httpGenerateTimeout = httpGenerateTimeout
        self.outputTimeout = outputTimeout
        self.maxMessageBytes = maxMessageBytes
    }

    /// An `HTTPClient` configuration suited to SwarmUI: connect timeout as configured, and no silent reconnect
    /// loop, so "connection refused" fails the call at once instead of surfacing as a timeout at the deadline.
    public func httpClientConfiguration() -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .milliseconds(connectTimeout.milliseconds)
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.decompression = .disabled
        return configuration
    }
}
