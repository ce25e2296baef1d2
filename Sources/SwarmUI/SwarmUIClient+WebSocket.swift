import Foundation
import HTTPTypes
import NIOWebSocket
import SwarmCore
import WSClient

/// What a frame handler wants after one frame.
enum FrameVerdict: Sendable {
    case next
    /// The exchange is complete; close the socket now (no need to wait for SwarmUI's own close).
    case finish
}

/// How a WebSocket exchange ended.
enum WebSocketEnding: Sendable, Equatable {
    /// The frame handler returned `.finish`.
    case finished
    /// SwarmUI closed the socket with a normal closure.
    case closedNormally
    /// The socket ended any other way (crash, restart, network).
    case dropped(String)
}

extension SwarmUIClient {
    /// Opens `/API/<route>` (a `...WS` route), sends `frame` with `session_id`, and hands every JSON frame to
    /// `onFrame`. Frames carrying `error`/`error_id` are thrown before `onFrame` sees them. `cancelFrame`, for routes
    /// that understand one, is sent when the calling task is cancelled.
    ///
    /// Returns as soon as `onFrame` answers `.finish`: the close handshake then completes in the background, so that a
    /// job's outputs are fetched without waiting a round trip and SwarmUI's own close (bounded by the client's close
    /// timeout). Any other ending is returned once the socket has closed.
    func webSocketCall(
        _ route: String,
        frame: [String: JSONValue],
        session: String,
        cancelFrame: JSONValue? = nil,
        onFrame: @escaping @Sendable (JSONValue) async throws(SwarmUIError) -> FrameVerdict
    ) async throws(SwarmUIError) -> WebSocketEnding {
        let (endings, sink) = AsyncStream.makeStream(of: Result<WebSocketEnding, SwarmUIError>.self, bufferingPolicy: .bufferingOldest(1))
        let socket = Task {
            let ending: Result<WebSocketEnding, SwarmUIError>
            do throws(SwarmUIError) {
                ending = .success(
                    try await exchange(
                        route,
                        frame: frame,
                        session: session,
                        cancelFrame: cancelFrame,
                        onFinish: { sink.yield(.success(.finished)) },
                        onFrame: onFrame
                    )
                )
            } catch {
                ending = .failure(error)
            }
            sink.yield(ending)
            sink.finish()
        }
        let first = await withTaskCancellationHandler {
            var iterator = endings.makeAsyncIterator()
            return await iterator.next()
        } onCancel: {
            socket.cancel()
        }
        guard let first else {
            // Cancelled: the socket task, cancelled with us, still sends `cancelFrame` before it closes; wait for that.
            await socket.value
            throw SwarmUIError(.cancelled, route: route, detail: "cancelled")
        }
        return try first.get()
    }

    private func exchange(
        _ route: String,
        frame: [String: JSONValue],
        session: String,
        cancelFrame: JSONValue?,
        onFinish: @escaping @Sendable () -> Void,
        onFrame: @escaping @Sendable (JSONValue) async throws(SwarmUIError) -> FrameVerdict
    ) async throws(SwarmUIError) -> WebSocketEnding {
        var first = frame
        first["session_id"] = .string(session)
        let text = JSONValue.object(first).jsonString()
        let maxMessage = configuration.maxMessageBytes
        let url = Self.webSocketURL(configuration.baseURL) + "/API/\(route)"
        var headers = HTTPFields()
        if let token = configuration.bearerToken { headers[.authorization] = "Bearer \(token.value)" }
        let wsConfiguration = WebSocketClientConfiguration(maxFrameSize: 1 << 24, additionalHeaders: headers)
        let finished = AtomicFlag()
        do {
            let close = try await WebSocketClient.connect(url: url, configuration: wsConfiguration, logger: logger) {
                inbound,
                outbound,
                _ in
                try await outbound.write(.text(text))
                // Cancellation closes the socket's input, which ends the loop below; routes that accept a cancel
                // signal (downloads) are told on the still-open output before the socket closes.
                let signalCancel = { () async in
                    guard Task.isCancelled, let cancelFrame else { return }
                    // The writer refuses to write from a cancelled task; an unstructured task is not cancelled.
                    await Task { try? await outbound.write(.text(cancelFrame.jsonString())) }.value
                }
                do {
                    for try await message in inbound.messages(maxSize: maxMessage) {
                        guard case .text(let body) = message else { continue }
                        guard let json = JSONValue.parse(Data(body.utf8)), json.objectValue != nil else {
                            throw SwarmUIError(.badResponse, route: route, detail: "a frame that is not a JSON object: \(body.prefix(200))")
                        }
                        try Self.checkError(in: json, route: route)
                        if try await onFrame(json) == .finish {
                            finished.set()
                            onFinish()
                            return
                        }
                    }
                } catch {
                    await signalCancel()
                    throw error
                }
                await signalCancel()
            }
            if finished.isSet { return .finished }
            if Task.isCancelled { throw SwarmUIError(.cancelled, route: route, detail: "cancelled") }
            if let close, close.closeCode == .normalClosure { return .closedNormally }
            return .dropped(close.map { "closed with code \($0.closeCode)" } ?? "connection lost")
        } catch let error as WebSocketClientError where error == .webSocketUpgradeFailed {
            throw await upgradeFailure(route: route)
        } catch {
            throw SwarmUIError.transport(error, route: route)
        }
    }

    /// The upgrade answer is not visible through the WebSocket client; a plain call tells a refused token apart.
    private func upgradeFailure(route: String) async -> SwarmUIError {
        do {
            _ = try await post("GetNewSession", [:], timeout: configuration.requestTimeout)
        } catch  where error.code == .unauthorized {
            return SwarmUIError(.unauthorized, route: route, detail: "Unauthorized")
        } catch {
            return error
        }
        return SwarmUIError(.badResponse, route: route, detail: "SwarmUI refused the WebSocket upgrade")
    }

    static func webSocketURL(_ baseURL: String) -> String {
        if baseURL.hasPrefix("https://") { return "wss://" + baseURL.dropFirst("https://".count) }
        if baseURL.hasPrefix("http://") { return "ws://" + baseURL.dropFirst("http://".count) }
        return baseURL
    }
}
