import Foundation
import HummingbirdWebSocket
import SwarmCore
import Synchronization

/// Text frames from the client, read by a separate task so the handler can wait for one with a deadline.
final class FrameInbox: Sendable {
    enum Item {
        case frame(String)
        case closed
        case timedOut
    }

    private let state = Mutex<(frames: [String], closed: Bool)>(([], false))

    func push(_ text: String) { state.withLock { $0.frames.append(text) } }
    func close() { state.withLock { $0.closed = true } }

    /// The next frame if one is waiting, without blocking.
    func poll() -> Item? {
        state.withLock { state in
            if !state.frames.isEmpty { return .frame(state.frames.removeFirst()) }
            return state.closed ? .closed : nil
        }
    }

    func next(timeout: Duration) async -> Item {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let item = poll() { return item }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return poll() ?? .timedOut
    }
}

extension SwarmUIEmulator {
    /// One WebSocket API connection: the first frame (within 60 s) carries every argument (§1).
    nonisolated func handleWebSocket(
        route: String, sessionHeader: String?, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter
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
        _ first: [String: JSONValue], session: String, sessionHeader: String?, inbox: FrameInbox,
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
        _ arguments: [String: JSONValue], inbox: FrameInbox, send: @Sendable (JSONValue) async -> Void
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
