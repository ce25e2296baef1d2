import Synchronization
import SwarmCore

extension SwarmUIClient {
    /// Runs a generation over `GenerateText2ImageWS` (§5.13) and returns its final outputs (batch index ≥ 0, minus
    /// any SwarmUI discarded), reporting status, progress and keep-alives to `onEvent` as they arrive.
    ///
    /// Returns as soon as SwarmUI announces `socket_intention: close`, without waiting out its 2 s linger.
    /// Cancelling the task that awaits this closes the socket but does NOT stop SwarmUI: call `interruptAll()`.
    public func generate(
        _ request: SwarmUIGenerationRequest,
        onEvent: @escaping @Sendable (SwarmUIGenerationEvent) async -> Void
    ) async throws(SwarmUIError) -> [SwarmUIGeneratedOutput] {
        let route = "GenerateText2ImageWS"
        var frame = request.parameters
        frame["images"] = .int(request.images)
        return try await withSession { session throws(SwarmUIError) in
            let collector = GenerationCollector()
            let ending = try await webSocketCall(route, frame: frame, session: session) { json throws(SwarmUIError) in
                try await collector.receive(json, route: route, onEvent: onEvent)
            }
            let outputs = collector.outputs
            if case .dropped(let reason) = ending {
                throw SwarmUIError(.connectionClosed, route: route, detail: reason)
            }
            guard !outputs.isEmpty else {
                throw SwarmUIError(.noOutput, route: route, detail: "it was probably interrupted before a backend picked it up")
            }
            return outputs
        }
    }

    /// `GenerateText2Image` over plain HTTP (§5.12): nothing arrives until every output is done, so it runs under
    /// `httpGenerateTimeout`. Batch indices are list positions; the list holds intermediate outputs too (the start
    /// image of an image-to-video run) in completion order, which only `generate` can tell apart. Dropping the
    /// connection does not stop SwarmUI either.
    public func generateOverHTTP(_ request: SwarmUIGenerationRequest) async throws(SwarmUIError) -> [SwarmUIGeneratedOutput] {
        var arguments = request.parameters
        arguments["images"] = .int(request.images)
        let json = try await call("GenerateText2Image", arguments, timeout: configuration.httpGenerateTimeout)
        guard let images = json["images"]?.arrayValue else {
            throw SwarmUIError(.badResponse, route: "GenerateText2Image", detail: "no images list in the answer")
        }
        let outputs = images.enumerated().compactMap { index, value in
            value.stringValue.map { SwarmUIGeneratedOutput(reference: $0, batchIndex: index, requestID: nil, metadata: nil) }
        }
        guard !outputs.isEmpty else {
            throw SwarmUIError(
                .noOutput,
                route: "GenerateText2Image",
                detail: "the images list is empty; the generation was probably interrupted before a backend picked it up"
            )
        }
        return outputs
    }
}

/// Folds `GenerateText2ImageWS` frames into events and outputs. Frames arrive one at a time on one task; the
/// mutex only makes the result readable after the socket's `@Sendable` handler is done.
final class GenerationCollector: Sendable {
    private let state = Mutex<[SwarmUIGeneratedOutput]>([])

    var outputs: [SwarmUIGeneratedOutput] { state.withLock { $0 } }

    func receive(
        _ json: JSONValue,
        route: String,
        onEvent: @Sendable (SwarmUIGenerationEvent) async -> Void
    ) async throws(SwarmUIError) -> FrameVerdict {
        if json["socket_intention"]?.stringValue == "close" {
            return .finish
        }
        if let progress = json["gen_progress"] {
            await onEvent(
                .progress(
                    batchIndex: progress["batch_index"].looseInt ?? 0,
                    overallPercent: progress["overall_percent"].looseDouble ?? 0,
                    currentPercent: progress["current_percent"].looseDouble ?? 0
                )
            )
        } else if let image = json["image"] {
            guard let reference = image.stringValue else {
                throw SwarmUIError(.badResponse, route: route, detail: "an image frame whose image is not a string")
            }
            let batchIndex = json["batch_index"].looseInt ?? 0
            // Negative indices are intermediate outputs (the still before a video, for example).
            if batchIndex >= 0 {
                let output = SwarmUIGeneratedOutput(
                    reference: reference,
                    batchIndex: batchIndex,
                    requestID: json["request_id"].looseString,
                    metadata: json["metadata"]?.stringValue
                )
                state.withLock { $0.append(output) }
            }
        } else if let discarded = json["discard_indices"]?.arrayValue {
            let indices = Set(discarded.compactMap { Optional($0).looseInt })
            state.withLock { $0.removeAll { indices.contains($0.batchIndex) } }
        } else if json["keep_alive"] != nil {
            await onEvent(.keepAlive)
        } else if json["status"] != nil, let status = SwarmUIStatus(json: json) {
            await onEvent(.status(status))
        }
        return .next
    }
}

extension Optional where Wrapped == JSONValue {
    var looseString: String? {
        switch self {
        case .some(.string(let text)): return text
        case .some(.int(let value)): return String(value)
        default: return nil
        }
    }
}
