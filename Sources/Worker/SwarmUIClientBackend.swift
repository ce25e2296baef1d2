import AsyncHTTPClient
import Logging
import SwarmCore
import SwarmUI

/// `SwarmUIBackend` over the real client: SwarmUI's states and errors translated into what the job loop decides on.
public struct SwarmUIClientBackend: SwarmUIBackend {
    public let client: SwarmUIClient

    public init(client: SwarmUIClient) {
        self.client = client
    }

    /// `httpClient` should come from `makeHTTPClient()`: its short connect timeout reports a SwarmUI that is down at once.
    public init(configuration: WorkerConfiguration, httpClient: HTTPClient, logger: Logger) {
        self.init(client: SwarmUIClient(configuration: Self.clientConfiguration(configuration), httpClient: httpClient, logger: logger))
    }

    public static func clientConfiguration(_ configuration: WorkerConfiguration) -> SwarmUIConfiguration {
        SwarmUIConfiguration(baseURL: configuration.swarmUIURL, bearerToken: configuration.swarmUIAuthorization)
    }

    public static func makeHTTPClient(_ configuration: WorkerConfiguration) -> HTTPClient {
        HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration(configuration).httpClientConfiguration())
    }

    public func readiness(requiring requirements: BackendRequirements) async throws -> SwarmUIReadiness {
        let status = try await translated { () async throws(SwarmUIError) in try await client.status() }
        if status.isReady {
            var nodes: Set<String>?
            if !requirements.nodeTypes.isEmpty {
                nodes = try await translated { () async throws(SwarmUIError) in try await comfyNodeTypes() }
            }
            if let shortfall = requirements.shortfall(features: status.supportedFeatures, nodeTypes: nodes) {
                return .lacking(reason: shortfall)
            }
            return .ready
        }
        let message = status.backendMessage.isEmpty ? "" : ": \(status.backendMessage)"
        if status.isFailed {
            return .failed(reason: "SwarmUI's backend is \(status.backendState.name)\(message); check its log (and Data/Backends.fds)")
        }
        var detail = "backend \(status.backendState.name)\(message)"
        if status.loadingModels > 0 { detail += ", \(status.loadingModels) model(s) loading" }
        if status.anyLoading { detail += ", still loading" }
        return .starting(detail: detail)
    }

    /// The node types of every running ComfyUI backend (SwarmUI sends a job to any of them, so each must have them
    /// all: the intersection); nil from a SwarmUI older than the route, where only the features can be checked.
    private func comfyNodeTypes() async throws(SwarmUIError) -> Set<String>? {
        var common: Set<String>?
        for backend in try await client.backends() where backend.type.hasPrefix("comfyui") && backend.state == .running {
            let types: Set<String>
            do {
                types = Set(try await client.nodeTypes(backend: backend.id))
            } catch  where error.code == .routeError(id: "bad_route") {
                return nil
            }
            common = common.map { $0.intersection(types) } ?? types
        }
        return common ?? []
    }

    public func generate(
        parameters: [String: JSONValue],
        onEvent: @escaping @Sendable (GenerationEvent) async -> Void
    ) async throws -> [GeneratedOutput] {
        let images = parameters["images"]?.intValue ?? 1
        var arguments = parameters
        arguments.removeValue(forKey: "images")
        let outputs = try await translated { () async throws(SwarmUIError) in
            try await client.generate(SwarmUIGenerationRequest(images: images, parameters: arguments)) { event in
                switch event {
                case .status(let status):
                    await onEvent(.status(live: status.liveGenerations > 0, loadingModels: status.loadingModels > 0))
                case .progress(_, let overall, _):
                    await onEvent(.progress(min(1, max(0, overall))))
                case .keepAlive:
                    await onEvent(.keepAlive)
                }
            }
        }
        return outputs.map { GeneratedOutput(reference: $0.reference, batchIndex: $0.batchIndex, metadata: $0.metadata) }
    }

    public func deleteOutput(_ reference: String) async throws {
        try await translated { () async throws(SwarmUIError) in try await client.deleteOutput(reference) }
    }

    public func interruptAll() async throws {
        try await translated { () async throws(SwarmUIError) in try await client.interruptAll() }
    }

    public func openOutput(_ reference: String) async throws -> OutputSource {
        try await translated { () async throws(SwarmUIError) in try await client.fetchOutput(reference) }
    }

    public func ping() async throws {
        _ = try await translated { () async throws(SwarmUIError) in try await client.status() }
    }

    public func listModels(path: String, depth: Int, subtype: String) async throws -> JSONValue {
        try await translated { () async throws(SwarmUIError) in try await client.listModels(path: path, depth: depth, subtype: subtype) }
    }

    public func describeModel(name: String, subtype: String) async throws -> JSONValue {
        try await translated { () async throws(SwarmUIError) in try await client.describeModel(name: name, subtype: subtype) }
    }

    public func downloadModel(
        url: String,
        type: String,
        name: String,
        metadata: JSONValue?,
        onProgress: @escaping @Sendable (Double) async -> Void
    ) async throws {
        try await translated { () async throws(SwarmUIError) in
            try await client.downloadModel(SwarmUIModelDownload(url: url, type: type, name: name, metadata: metadata)) { progress in
                await onProgress(min(1, max(0, progress.overallPercent)))
            }
        }
    }

    public func editModelMetadata(model: String, subtype: String, changes: [String: JSONValue]) async throws {
        try await translated { () async throws(SwarmUIError) in try await client.editModelMetadata(model: model, subtype: subtype, changes: changes) }
    }

    /// Runs a client call and turns its error into the job loop's terms: whose fault, and whether to retry.
    private func translated<T>(_ call: () async throws(SwarmUIError) -> T) async throws(SwarmUIBackendError) -> T {
        do {
            return try await call()
        } catch {
            throw Self.translate(error)
        }
    }

    static func translate(_ error: SwarmUIError) -> SwarmUIBackendError {
        switch error.code {
        case .interrupted, .cancelled, .noOutput: SwarmUIBackendError(.interrupted, error.description)
        case _ where error.isRetryable: SwarmUIBackendError(.unavailable, error.description)
        case .badResponse: SwarmUIBackendError(.unavailable, error.description)
        default: SwarmUIBackendError(.rejected, error.description)
        }
    }
}

extension SwarmUIStatus.BackendState {
    /// SwarmUI's own word for the state, as its UI and logs show it.
    var name: String {
        switch self {
        case .empty: "empty (no backend configured)"
        case .allDisabled: "all_disabled"
        case .errored: "errored"
        case .someLoading: "some_loading"
        case .running: "running"
        case .loading: "loading"
        case .disabled: "disabled"
        case .idle: "idle"
        case .unknown(let text): text
        }
    }
}
