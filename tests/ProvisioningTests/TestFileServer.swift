import Crypto
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

import Foundation

/// Two local file servers standing in for Hugging Face / Civitai (server A) and their CDN (server B):
/// `/files/<name>` honours Range; `/slow/<name>` too, pausing before the last byte; `/norange/<name>` ignores
/// Range; `/private/<name>` wants `Bearer <token>`;
/// `/nolength/<name>` honours Range but gives no size (chunked, `Content-Range: bytes a-b/*`);
/// `/redirect/<name>` sends a 302 to server B's `/files/<name>`; `/presign/<name>` a 302 to B's
/// `/once/<name>?sig=<n>`, a new n each time, and B serves each sig once and refuses it after (an expiring URL). Every request is logged with its Range and
/// Authorization headers, and a file can be set to cut the connection halfway through its next response (or its next
/// response to a range starting at a given byte). `bytes=a-` and `bytes=a-b` ranges are served.
struct TestFileServers: Sendable {
    static let token = "test-token-123"

    let a: String
    let b: String
    let log: RequestLog

    struct Seen: Sendable, Equatable {
        var server: String
        var path: String
        var range: String?
        var authorization: String?
    }

    actor RequestLog {
        private(set) var requests: [Seen] = []
        private var cuts: Set<String> = []
        private var inFlight = 0
        /// The most responses that were being sent at once.
        private(set) var mostInFlight = 0

        private var rangesInFlight = 0
        /// The most responses to closed ranges (`bytes=a-b`) being sent at once: a ranged download's connections,
        /// without its first request, whose response the client drops (the server notices only at its next write).
        private(set) var mostRangesInFlight = 0

        func responseStarted(closedRange: Bool) {
            inFlight += 1
            mostInFlight = max(mostInFlight, inFlight)
            if closedRange { rangesInFlight += 1 }
            mostRangesInFlight = max(mostRangesInFlight, rangesInFlight)
        }
        func responseEnded(closedRange: Bool) {
            inFlight -= 1
            if closedRange { rangesInFlight -= 1 }
        }

        func record(_ seen: Seen) { requests.append(seen) }
        /// The next response for `name` stops halfway and closes the connection.
        func cutNext(_ name: String) { cuts.insert(name) }
        /// The next response for `name` to a range starting at `start` stops halfway and closes the connection.
        func cutRange(_ name: String, at start: Int) { cuts.insert("\(name)@\(start)") }
        func takeCut(_ name: String, start: Int) -> Bool { cuts.remove(name) != nil || cuts.remove("\(name)@\(start)") != nil }

        private var signatures = 0
        private var usedSignatures: Set<String> = []
        func nextSignature() -> Int {
            signatures += 1
            return signatures
        }
        /// True the first time a signature is shown.
        func use(_ signature: String) -> Bool { usedSignatures.insert(signature).inserted }

        private var unavailable: Set<String> = []
        /// The next request for `name` gets a 503.
        func failNext(_ name: String) { unavailable.insert(name) }
        func takeFailure(_ name: String) -> Bool { unavailable.remove(name) != nil }
    }

    static func withServers<T: Sendable>(files: [String: [UInt8]], _ body: @Sendable (TestFileServers) async throws -> T) async throws -> T {
        let log = RequestLog()
        let logger = Logger(label: "test-file-server", factory: { _ in SwiftLogNoOpLogHandler() })
        return try await withThrowingTaskGroup(of: Void.self) { group in
            let portB = try await start(in: &group, router: router(server: "B", files: files, log: log, redirectPort: nil), logger: logger)
            let portA = try await start(in: &group, router: router(server: "A", files: files, log: log, redirectPort: portB), logger: logger)
            defer { group.cancelAll() }
            return try await body(TestFileServers(a: "http://127.0.0.1:\(portA)", b: "http://127.0.0.1:\(portB)", log: log))
        }
    }

    private static func start(
        in group: inout ThrowingTaskGroup<Void, any Error>,
        router: Router<BasicRequestContext>,
        logger: Logger
    ) async throws -> Int {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            },
            logger: logger
        )
        group.addTask {
            defer { continuation.finish() }
            try await app.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw CancellationError() }
        return port
    }

    private static func router(server: String, files: [String: [UInt8]], log: RequestLog, redirectPort: Int?) -> Router<BasicRequestContext> {
        let router = Router()
        router.get("/:kind/:name") { request, context -> Response in
            let kind = context.parameters.get("kind") ?? "", name = context.parameters.get("name") ?? ""
            let range = request.headers[.range], authorization = request.headers[.authorization]
            let signature = request.uri.queryParameters.get("sig")
            await log.record(
                Seen(server: server, path: "/\(kind)/\(name)" + (signature.map { "?sig=" + $0 } ?? ""), range: range, authorization: authorization)
            )
            guard let file = files[name] else { return Response(status: .notFound) }
            if await log.takeFailure(name) { return Response(status: .serviceUnavailable) }
            switch kind {
            case "files":
                return await serve(file, name: name, range: range, log: log)
            case "slow":
                return await serve(file, name: name, range: range, log: log, pause: .milliseconds(300))
            case "norange":
                return await serve(file, name: name, range: nil, log: log)
            case "nolength":
                return await serve(file, name: name, range: range, log: log, sendsLength: false)
            case "private":
                guard authorization == "Bearer \(token)" else { return Response(status: .unauthorized) }
                return await serve(file, name: name, range: range, log: log)
            case "redirect":
                guard let redirectPort else { return Response(status: .notFound) }
                return Response(status: .found, headers: [.location: "http://127.0.0.1:\(redirectPort)/files/\(name)"])
            case "presign":
                guard let redirectPort else { return Response(status: .notFound) }
                let location = "http://127.0.0.1:\(redirectPort)/once/\(name)?sig=\(await log.nextSignature())"
                return Response(status: .found, headers: [.location: location])
            case "once":
                guard let signature, await log.use(signature) else { return Response(status: .forbidden) }
                return await serve(file, name: name, range: range, log: log)
            default:
                return Response(status: .notFound)
            }
        }
        return router
    }

    private static func serve(
        _ file: [UInt8],
        name: String,
        range: String?,
        log: RequestLog,
        pause: Duration = .zero,
        sendsLength: Bool = true
    ) async -> Response {
        var start = 0
        var last = file.count - 1
        var closedRange = false
        var status = HTTPResponse.Status.ok
        var headers: HTTPFields = [.acceptRanges: "bytes"]
        if let range, range.hasPrefix("bytes=") {
            let bounds = range.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)
            guard let first = Int(bounds.first ?? ""), first < file.count else {
                return Response(status: .rangeNotSatisfiable, headers: [.contentRange: "bytes */\(file.count)"])
            }
            start = first
            if bounds.count == 2, let end = Int(bounds[1]) {
                last = min(last, end)
                closedRange = true
            }
            status = .partialContent
            headers[.contentRange] = "bytes \(first)-\(last)/" + (sendsLength ? "\(file.count)" : "*")
        }
        let slice = Array(file[start...last])
        if sendsLength { headers[.contentLength] = "\(slice.count)" }
        let cut = await log.takeCut(name, start: start)
        let closed = closedRange
        return Response(
            status: status,
            headers: headers,
            body: ResponseBody(contentLength: sendsLength ? slice.count : nil) { writer in
                await log.responseStarted(closedRange: closed)
                let end = cut ? slice.count / 2 : slice.count
                var offset = 0
                do {
                    while offset < end {
                        let next = min(end, offset + 64 * 1024)
                        try await writer.write(ByteBuffer(bytes: slice[offset..<next]))
                        offset = next
                    }
                    try await Task.sleep(for: cut ? .milliseconds(100) : pause)
                } catch {
                    // The client closed the connection (a dropped probe response).
                    await log.responseEnded(closedRange: closed)
                    throw error
                }
                // Counted as ended before the client can see the end, so its next request never overlaps this one.
                await log.responseEnded(closedRange: closed)
                // A cut: the bytes written so far have had time to reach the client; failing the response closes it.
                if cut { throw CutConnection() }
                try await writer.finish(nil)
            }
        )
    }

    struct CutConnection: Error {}
}

/// Deterministic pseudo-random bytes (a file's content must not compress or repeat).
func testBytes(count: Int, seed: UInt64) -> [UInt8] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return UInt8(truncatingIfNeeded: state >> 33)
    }
}

func sha256Hex(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
}
