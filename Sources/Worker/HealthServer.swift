import JobProtocol
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import SwarmCore

/// `/health` (the image's HEALTHCHECK and people with curl) and `/metrics` (Prometheus text format), read from the
/// worker's state on each request so nothing has to be kept in step.
///
/// Plain SwiftNIO rather than Hummingbird: two GET routes need no router, and Hummingbird's server keeps an HTTP
/// `Date` header formatted through Foundation's calendar, which loads ICU's time-zone data into the idle worker
/// (with the router, 4 MiB of the plain static build's 32 MiB idle RSS).
public struct HealthServer: Service {
    let host: String
    let port: Int
    let state: WorkerState
    let monitor: SwarmUIProcessMonitor?
    /// Scrubs the worker's secrets from the answer: an ERROR reason may quote SwarmUI.
    let redactor: SecretRedactor
    let logger: Logger
    /// Told the bound port once the server listens (port 0 picks a free one).
    let onListening: @Sendable (Int) async -> Void

    public init(
        host: String,
        port: Int,
        state: WorkerState,
        monitor: SwarmUIProcessMonitor?,
        redactor: SecretRedactor = SecretRedactor([]),
        logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.host = host
        self.port = port
        self.state = state
        self.monitor = monitor
        self.redactor = redactor
        self.logger = logger
        self.onListening = onListening
    }

    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    /// Serves until graceful shutdown (or cancellation), which closes the listener and every open connection.
    public func run() async throws {
        let server: NIOAsyncChannel<Connection, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port) { child in
                    child.eventLoop.makeCompletedFuture {
                        try child.pipeline.syncOperations.configureHTTPServerPipeline()
                        return try Connection(wrappingChannelSynchronously: child)
                    }
                }
        } catch {
            throw HealthServerError(
                description: "the health endpoint cannot listen on \(host):\(port) (\(error)); set WORKER_HEALTH_PORT to a free port"
            )
        }
        let boundPort = server.channel.localAddress?.port ?? port
        logger.info("health endpoint listening", metadata: ["address": "http://\(host):\(boundPort)/health"])
        await onListening(boundPort)
        do {
            try await cancelWhenGracefulShutdown {
                try await withThrowingDiscardingTaskGroup { group in
                    try await server.executeThenClose { connections in
                        for try await connection in connections {
                            group.addTask { await serve(connection) }
                        }
                    }
                }
            }
        } catch  where Task.isShuttingDownGracefully {
            // The cancellation that stopped the listener; shutting down is what was asked for.
            logger.debug("health endpoint stopped", metadata: ["reason": "\(error)"])
        }
    }

    /// Answers each request on one connection in turn (keep-alive for scrapers); a request body is read and ignored.
    private func serve(_ connection: Connection) async {
        try? await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            for try await part in inbound {
                switch part {
                case .head(let requestHead):
                    head = requestHead
                case .body:
                    continue
                case .end:
                    guard let request = head else { return }
                    head = nil
                    let reply = await answer(request)
                    var headers = HTTPHeaders([("Content-Type", reply.contentType), ("Content-Length", String(reply.body.readableBytes))])
                    if let allow = reply.allow { headers.add(name: "Allow", value: allow) }
                    headers.add(name: "Connection", value: request.isKeepAlive ? "keep-alive" : "close")
                    try await outbound.write(.head(HTTPResponseHead(version: request.version, status: reply.status, headers: headers)))
                    if request.method != .HEAD { try await outbound.write(.body(.byteBuffer(reply.body))) }
                    try await outbound.write(.end(nil))
                    guard request.isKeepAlive else { return }
                }
            }
        }
    }

    struct Reply {
        var status: HTTPResponseStatus
        var contentType: String
        var body: ByteBuffer
        var allow: String? = nil
    }

    func answer(_ request: HTTPRequestHead) async -> Reply {
        let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? request.uri
        guard path == "/health" || path == "/metrics" else {
            return Self.json(["error": .string("no route \(path); the worker serves GET /health and GET /metrics")], status: .notFound)
        }
        guard request.method == .GET || request.method == .HEAD else {
            var reply = Self.json(["error": .string("\(request.method.rawValue) \(path) is not allowed; use GET")], status: .methodNotAllowed)
            reply.allow = "GET, HEAD"
            return reply
        }
        let snapshot = await state.snapshot()
        let restarts = await monitor?.restarts ?? 0
        if path == "/metrics" {
            return Reply(
                status: .ok,
                contentType: "text/plain; version=0.0.4; charset=utf-8",
                body: ByteBuffer(string: Self.prometheusText(snapshot, swarmUIRestarts: restarts))
            )
        }
        var body: [String: JSONValue] = [
            "stage": .string(snapshot.stage.name.rawValue),
            "ready": .bool(snapshot.stage == .ready),
            "swarmui_ready": .bool(snapshot.swarmUIReady),
            "swarmui_restarts": .int(restarts),
            "current_job": snapshot.currentJobID.map(JSONValue.string) ?? .null,
            "pending_results": .int(snapshot.undeliveredJobIDs.count),
            "jobs": ["succeeded": .int(snapshot.jobsSucceeded), "failed": .int(snapshot.jobsFailed)],
        ]
        switch snapshot.stage {
        case .error(let failure):
            body["error"] = .string(failure.reason)
            body["error_kind"] = .string(failure.kind.rawValue)
        case .downloading(let progress): body["download"] = progress.jsonValue
        default: break
        }
        // ERROR is the one stage a restart may fix; every other stage is healthy, even while starting.
        let status: HTTPResponseStatus = if case .error = snapshot.stage { .serviceUnavailable } else { .ok }
        return Self.json(redactor.redact(.object(body)), status: status)
    }

    static func prometheusText(_ snapshot: WorkerState.Snapshot, swarmUIRestarts: Int) -> String {
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: Int)]) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for sample in samples { lines.append("\(name)\(sample.labels) \(sample.value)") }
        }
        metric(
            "swarm_worker_jobs_total",
            "counter",
            "Jobs this worker finished, by outcome.",
            [
                ("{outcome=\"succeeded\"}", snapshot.jobsSucceeded), ("{outcome=\"failed\"}", snapshot.jobsFailed),
            ]
        )
        metric("swarm_worker_busy", "gauge", "1 while a job runs.", [("", snapshot.currentJobID == nil ? 0 : 1)])
        metric(
            "swarm_worker_pending_results",
            "gauge",
            "Results stored on the volume, not yet acknowledged by the queue.",
            [("", snapshot.undeliveredJobIDs.count)]
        )
        metric("swarm_worker_swarmui_ready", "gauge", "1 while SwarmUI can generate.", [("", snapshot.swarmUIReady ? 1 : 0)])
        metric("swarm_worker_swarmui_restarts_total", "counter", "Times SwarmUI died and was launched again.", [("", swarmUIRestarts)])
        metric(
            "swarm_worker_stage",
            "gauge",
            "The worker's boot stage (1 for the current one).",
            WorkerStage.Name.allCases.map { ("{stage=\"\($0.rawValue)\"}", $0 == snapshot.stage.name ? 1 : 0) }
        )
        return lines.joined(separator: "\n") + "\n"
    }

    private static func json(_ value: JSONValue, status: HTTPResponseStatus) -> Reply {
        Reply(status: status, contentType: "application/json", body: ByteBuffer(string: value.jsonString()))
    }
}

public struct HealthServerError: Error, Sendable, CustomStringConvertible {
    public var description: String
}
