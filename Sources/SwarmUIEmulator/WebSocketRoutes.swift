import Foundation
import HummingbirdWebSocket
import SwarmCore
import Synchronization

/// Text frames from the client, read by a separate task so the handler can wait for one with a deadline.
/// Waiting is event-driven (no polling) so the emulator adds no latency of its own to what a benchmark measures.
final class FrameInbox: Sendable {
    enum Item: Sendable {
        case frame(String)
        case closed
        case timedOut
    }

    private struct State {
        var frames: [String] = []
        var closed = false
        var waiter: (id: Int, continuation: CheckedContinuation<Item, Never>)?
        var lastWaitID = 0
        /// A wait whose deadline passed before it registered its continuation.
        var expiredID: Int?
    }

    private let state = Mutex(State())

    func push(_ text: String) {
        let waiter = state.withLock { state -> CheckedContinuation<Item, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter.continuation
            }
            state.frames.append(text)
            return nil
        }
        waiter?.resume(returning: .frame(text))
    }

    func close() {
        let waiter = state.withLock { state -> CheckedContinuation<Item, Never>? in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter?.continuation
        }
        waiter?.resume(returning: .closed)
    }

    /// The next frame if one is waiting, without blocking.
    func poll() -> Item? {
        state.withLock { Self.take(&$0) }
    }

    func next(timeout: Duration) async -> Item {
        if let item = poll() { return item }
        let id = state.withLock { state in
            state.lastWaitID += 1
            return state.lastWaitID
        }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            expire(id)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            let immediate = state.withLock { state -> Item? in
                if let item = Self.take(&state) { return item }
                if state.expiredID == id { return .timedOut }
                state.waiter = (id, continuation)
                return nil
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    private func expire(_ id: Int) {
        let waiter = state.withLock { state -> CheckedContinuation<Item, Never>? in
            guard let waiter = state.waiter, waiter.id == id else {
                state.expiredID = id
                return nil
            }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume(returning: .timedOut)
    }

    private static func take(_ state: inout State) -> Item? {
        if !state.frames.isEmpty { return .frame(state.frames.removeFirst()) }
        return state.closed ? .closed : nil
    }
}

extension SwarmUIEmulator {
    /// One WebSocket API connection: the first frame (within 60 s) carries every argument (§1).
    nonisolated func handleWebSocket(
        route: String,
        sessionHeader: String?,
        inbound: WebSocketInboundStream,
        outbound: WebSocketOutboundWriter
    ) async throws {
        let inbox = FrameInbox()
        let reader = Task {
            do {
                for try await message in inbound.messages(maxSize: 256 << 20) {
                    if case .text(let text) = message { inbox.push(text) }
                }
            } catch {}
            inbox.close()
        }
        defer { reader.cancel() }
        let send: @Sendable (JSONValue) async -> Void = { json in try? await outbound.write(.text(json.jsonString())) }

        guard case .frame(let text) = await inbox.next(timeout: .seconds(60)) else { return }
        if Self.httpRoutes.contains(route) { return await send(APIReply.wrongMethod.body) }
        guard Self.webSocketRoutes.contains(route) else { return await send(APIReply.unknownRoute.body) }
        guard case .object(let arguments)? = JSONValue.parse(Data(text.utf8)) else {
            return await send(["error_id": "basic_api", "error": "null input"])
        }
        let session: String
        switch await authenticate(arguments, header: sessionHeader) {
        case .success(let id): session = id
        case .failure(let error): return await send(error.reply.body)
        }
        if route == "domodeldownloadws" {
            await download(arguments, inbox: inbox, send: send)
        } else {
            try await generate(arguments, session: session, sessionHeader: sessionHeader, inbox: inbox, send: send)
        }
    }

    /// GenerateText2ImageWS (§5.13): the frame sequence of one request, then SwarmUI's 2 s linger in which the
    /// client may send another request on the same socket.
    private nonisolated func generate(
        _ first: [String: JSONValue],
        session: String,
        sessionHeader: String?,
        inbox: FrameInbox,
        send: @escaping @Sendable (JSONValue) async -> Void
    ) async throws {
        var arguments = first
        var batchOffset = 0
        while true {
            let ticket = await beginGeneration(session: session, parameters: arguments)
            var lastFrameAt = ContinuousClock.now
            let emit: (JSONValue) async -> Void = { json in
                await send(json)
                lastFrameAt = .now
            }
            switch await plan(arguments) {
            case .failure(let rejection):
                await emit(["error": .string(rejection.message)])
            case .success(let plan):
                do {
                    if case .failed(let message) = try await run(plan, ticket: ticket, batchOffset: batchOffset, emit: emit) {
                        await emit(["error": .string(message)])
                    }
                } catch {
                    // Restarted: drop the connection the way a dying process would.
                    await endGeneration(ticket, lastFrameAt: lastFrameAt)
                    throw error
                }
                batchOffset += plan.images
            }
            await emit(statusJSON(session: session))
            await emit(["keep_alive": true])
            await emit(["discard_indices": []])
            await emit(["socket_intention": "close"])
            await endGeneration(ticket, lastFrameAt: lastFrameAt)
            guard case .frame(let text) = await inbox.next(timeout: configuration.socketLinger),
                case .object(let next)? = JSONValue.parse(Data(text.utf8))
            else { break }
            guard case .success = await authenticate(next, header: sessionHeader) else {
                await send(APIReply.invalidSession.body)
                return
            }
            arguments = next
        }
        await send(statusJSON(session: session))
    }

    /// DoModelDownloadWS (§5.9): validates like SwarmUI, reports progress, then registers the model (no network).
    private nonisolated func download(
        _ arguments: [String: JSONValue],
        inbox: FrameInbox,
        send: @Sendable (JSONValue) async -> Void
    ) async {
        let url = arguments["url"]?.looseString ?? ""
        let type = arguments["type"]?.looseString ?? ""
        let rawName = arguments["name"]?.looseString ?? ""
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else { return await send(["error": "Invalid URL."]) }
        guard Self.subtypes.contains(type) else { return await send(["error": "Invalid type."]) }
        let forbidden = Set("\\:*?\"<>|.")
        let name = String(rawName.replacingOccurrences(of: " ", with: "_").filter { !forbidden.contains($0) })
        guard !name.isEmpty else { return await send(["error": "Invalid name."]) }
        let model = EmulatedModel(name: name + (url.hasSuffix(".gguf") ? ".gguf" : ".safetensors"), subtype: type, architecture: nil)
        guard await exactModel(model.name, subtype: type) == nil else {
            return await send(["error": "Model at that save path already exists."])
        }
        let frames = 5
        for index in 1...frames {
            try? await Task.sleep(for: await currentStepDuration())
            if case .frame(let text) = inbox.poll(), JSONValue.parse(Data(text.utf8))?["signal"]?.stringValue == "cancel" {
                return await send(["error": "Download was cancelled."])
            }
            let fraction = Double(index) / Double(frames)
            await send(["current_percent": .double(fraction), "overall_percent": .double(fraction), "per_second": 104_857_600])
        }
        _ = await addModel(model)
        await send(["success": true])
    }
}
