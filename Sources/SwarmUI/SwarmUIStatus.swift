import SwarmCore

/// `GetCurrentStatus` (also pushed as `status` frames during a generation), swarmui.md §5.2.
public struct SwarmUIStatus: Sendable, Hashable {
    /// `backend_status.status`: the summary over all backends.
    public enum BackendState: Sendable, Hashable {
        /// No backend configured (Backends.fds missing or unreadable).
        case empty
        case allDisabled
        /// At least one backend errored; wins over every other state.
        case errored
        case someLoading
        case running
        case loading
        case disabled
        case idle
        case unknown(String)

        init(_ text: String) {
            switch text {
            case "empty": self = .empty
            case "all_disabled": self = .allDisabled
            case "errored": self = .errored
            case "some_loading": self = .someLoading
            case "running": self = .running
            case "loading": self = .loading
            case "disabled": self = .disabled
            case "idle": self = .idle
            default: self = .unknown(text)
            }
        }
    }

    /// Counters for this session only.
    public var waitingGenerations: Int
    public var loadingModels: Int
    public var waitingBackends: Int
    public var liveGenerations: Int
    public var backendState: BackendState
    /// `backend_status.message`, SwarmUI's explanation when a backend is errored or loading.
    public var backendMessage: String
    /// True while any backend is waiting or loading.
    public var anyLoading: Bool
    public var supportedFeatures: [String]

    public init(
        waitingGenerations: Int = 0,
        loadingModels: Int = 0,
        waitingBackends: Int = 0,
        liveGenerations: Int = 0,
        backendState: BackendState,
        backendMessage: String = "",
        anyLoading: Bool = false,
        supportedFeatures: [String] = []
    ) {
        self.waitingGenerations = waitingGenerations
        self.loadingModels = loadingModels
        self.waitingBackends = waitingBackends
        self.liveGenerations = liveGenerations
        self.backendState = backendState
        self.backendMessage = backendMessage
        self.anyLoading = anyLoading
        self.supportedFeatures = supportedFeatures
    }

    /// Able to generate now (swarmui.md §12): every backend running and none still loading.
    public var isReady: Bool { backendState == .running && !anyLoading }

    /// Will not become ready without outside help (§12: fail fast on these).
    public var isFailed: Bool {
        switch backendState {
        case .errored, .empty, .allDisabled, .disabled: return true
        default: return false
        }
    }

    init?(json: JSONValue) {
        guard let counters = json["status"], let backend = json["backend_status"],
            let state = backend["status"]?.stringValue
        else { return nil }
        self.init(
            waitingGenerations: counters["waiting_gens"].looseInt ?? 0,
            loadingModels: counters["loading_models"].looseInt ?? 0,
            waitingBackends: counters["waiting_backends"].looseInt ?? 0,
            liveGenerations: counters["live_gens"].looseInt ?? 0,
            backendState: BackendState(state),
            backendMessage: backend["message"]?.stringValue ?? "",
            anyLoading: backend["any_loading"].looseBool ?? false,
            supportedFeatures: json["supported_features"]?.arrayValue?.compactMap(\.stringValue) ?? []
        )
    }
}

/// One entry of `ListBackends` (§5.3).
public struct SwarmUIBackendInfo: Sendable, Hashable {
    public enum State: Sendable, Hashable {
        case disabled, errored, waiting, loading, idle, running
        case unknown(String)

        init(_ text: String) {
            switch text {
            case "disabled": self = .disabled
            case "errored": self = .errored
            case "waiting": self = .waiting
            case "loading": self = .loading
            case "idle": self = .idle
            case "running": self = .running
            default: self = .unknown(text)
            }
        }
    }

    public var id: Int
    public var type: String
    public var state: State
    public var title: String
    public var enabled: Bool
    public var features: [String]
    /// Only reported with `full_data`, which this client always asks for.
    public var currentModel: String?
    public var canLoadModels: Bool

    init?(json: JSONValue) {
        guard let id = json["id"].looseInt, let state = json["status"]?.stringValue else { return nil }
        self.id = id
        self.type = json["type"]?.stringValue ?? ""
        self.state = State(state)
        self.title = json["title"]?.stringValue ?? ""
        self.enabled = json["enabled"].looseBool ?? true
        self.features = json["features"]?.arrayValue?.compactMap(\.stringValue) ?? []
        self.currentModel = json["current_model"]?.stringValue
        self.canLoadModels = json["can_load_models"].looseBool ?? false
    }
}

extension Optional where Wrapped == JSONValue {
    /// SwarmUI sends some numbers as strings (`"batch_index":"0"`); accept both.
    var looseInt: Int? {
        switch self {
        case .some(.string(let text)): return Int(text)
        case .some(let value): return value.intValue
        case .none: return nil
        }
    }

    var looseDouble: Double? {
        switch self {
        case .some(.string(let text)): return Double(text)
        case .some(let value): return value.doubleValue
        case .none: return nil
        }
    }

    var looseBool: Bool? {
        switch self {
        case .some(.string(let text)): return text.lowercased() == "true"
        case .some(let value): return value.boolValue
        case .none: return nil
        }
    }
}
