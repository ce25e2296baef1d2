import SwarmCore
import SwarmUI

/// What the worker needs from SwarmUI, behind a protocol so the job loop and the readiness wait are testable without
/// a server; `SwarmUIClient` (module SwarmUI) is the real implementation.
public protocol SwarmUIBackend: Sendable {
    /// Where the backend stands: ready to generate (with every feature and node type `requirements` names), still
    /// starting, lacking what the jobs need, or failed.
    func readiness(requiring requirements: BackendRequirements) async throws -> SwarmUIReadiness
    /// Runs one generation over the WebSocket route and returns its final outputs.
    func generate(parameters: [String: JSONValue], onEvent: @escaping @Sendable (GenerationEvent) async -> Void) async throws -> [GeneratedOutput]
    /// Cancels every generation of this worker's session (closing a socket does not).
    func interruptAll() async throws
    /// Opens an output (a `View/...` path or a data URL) as a byte stream.
    func openOutput(_ reference: String) async throws -> OutputSource
    /// Deletes a saved output from SwarmUI's output folder (nothing for a data URL).
    func deleteOutput(_ reference: String) async throws
    /// A fresh session: the cheapest call that proves SwarmUI answers (keep-alive pings).
    func ping() async throws
    func listModels(path: String, depth: Int, subtype: String) async throws -> JSONValue
    func describeModel(name: String, subtype: String) async throws -> JSONValue
    func downloadModel(
        url: String,
        type: String,
        name: String,
        metadata: JSONValue?,
        onProgress: @escaping @Sendable (Double) async -> Void
    ) async throws
    func editModelMetadata(model: String, subtype: String, changes: [String: JSONValue]) async throws
}

public enum SwarmUIReadiness: Sendable, Hashable {
    case ready
    /// Up but not able to generate yet; `detail` says what it waits for.
    case starting(detail: String)
    /// Will not become ready without a change (errored backend, no backend configured).
    case failed(reason: String)
    /// Running, but without a feature or node type the presets' jobs need (a node pack failed to import).
    case lacking(reason: String)
}

public enum GenerationEvent: Sendable, Hashable {
    /// Queue and backend counters changed; `live` means the generation itself is running.
    case status(live: Bool, loadingModels: Bool)
    /// 0...1 over the whole request.
    case progress(Double)
    case keepAlive
}

public struct GeneratedOutput: Sendable, Hashable {
    /// `View/<user>/...` path or a data URL, as SwarmUI sent it.
    public var reference: String
    public var batchIndex: Int
    /// SwarmUI's metadata JSON text (`sui_image_params`...), when sent.
    public var metadata: String?

    public init(reference: String, batchIndex: Int, metadata: String?) {
        self.reference = reference
        self.batchIndex = batchIndex
        self.metadata = metadata
    }
}

/// An output's bytes as they arrive, never held whole (the client's own type: nothing to add to it).
public typealias OutputSource = SwarmUIOutput
