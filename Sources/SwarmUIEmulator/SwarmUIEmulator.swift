import Foundation
import SwarmCore

/// A stand-in for SwarmUI (swarmui.md) on machines without a GPU: same routes, frames and error shapes, generating
/// deterministic files instead of pictures. It is never kinder than SwarmUI: sessions die on restart, a loading
/// backend makes requests wait, bad parameters come back as `{"error": ...}` with status 200.
///
/// Differences on purpose: the bearer-token gate applies to loopback callers too (SwarmUI's default
/// `AuthBypassIPs` would let them through), and nothing is downloaded by `DoModelDownloadWS`.
public actor SwarmUIEmulator {
    public struct Configuration: Sendable {
        /// How long the backend reports `loading` after a (re)start before it is `running`.
        public var loadingTime: Duration
        /// Time per sampling step (and per download progress frame).
        public var stepDuration: Duration
        /// Steps when the request sends none (`steps`, or `videosteps` for image-to-video).
        public var defaultSteps: Int
        /// Frames of a video output when the request sends none (`videoframes`/`textvideoframes`).
        public var defaultVideoFrames: Int
        public var backendErrored: Bool
        /// When set, every request except `/Emulator/...` needs `Authorization: Bearer <token>`.
        public var requiredBearerToken: String?
        /// When set, every output file has exactly this many bytes (written to disk in chunks).
        public var largeOutputBytes: Int?
        /// Root for `Output/` files; nil means a temporary folder removed when `withRunning` ends.
        public var dataDirectory: String?
        /// How long SwarmUI keeps a generation socket open after `socket_intention: close` (2 s in SwarmUI).
        public var socketLinger: Duration
        /// Whether `POST /Emulator/Crash` may end the process (only in the stand-alone executable).
        public var allowsCrash: Bool
        public var models: [EmulatedModel]
        /// Features left out of `supported_features`, as when a node pack failed to import (`gguf` without ComfyUI-GGUF).
        public var droppedFeatures: Set<String>
        /// Node types left out of `ComfyGetNodeTypesForBackend`.
        public var droppedNodeTypes: Set<String>
        /// Routes (lower-case) answered as unknown, as by a SwarmUI older than them (`comfygetnodetypesforbackend`).
        public var missingRoutes: Set<String>

        public init(
            loadingTime: Duration = .zero,
            stepDuration: Duration = .milliseconds(10),
            defaultSteps: Int = 20,
            defaultVideoFrames: Int = 25,
            backendErrored: Bool = false,
            requiredBearerToken: String? = nil,
            largeOutputBytes: Int? = nil,
            dataDirectory: String? = nil,
            socketLinger: Duration = .seconds(2),
            allowsCrash: Bool = false,
            models: [EmulatedModel] = EmulatedModel.defaults,
            droppedFeatures: Set<String> = [],
            droppedNodeTypes: Set<String> = [],
            missingRoutes: Set<String> = []
        ) {
            self.missingRoutes = missingRoutes
            self.droppedFeatures = droppedFeatures
            self.droppedNodeTypes = droppedNodeTypes
            self.loadingTime = loadingTime
            self.stepDuration = stepDuration
            self.defaultSteps = defaultSteps
            self.defaultVideoFrames = defaultVideoFrames
            self.backendErrored = backendErrored
            self.requiredBearerToken = requiredBearerToken
            self.largeOutputBytes = largeOutputBytes
            self.dataDirectory = dataDirectory
            self.socketLinger = socketLinger
            self.allowsCrash = allowsCrash
            self.models = models
        }
    }

    /// A timestamped step of a generate request, for measuring what happens around SwarmUI.
    public struct Event: Sendable, Hashable {
        public enum Kind: String, Sendable, Hashable {
            /// The request frame (WebSocket) or body (HTTP) arrived.
            case generateReceived
            /// The request's last frame (or the HTTP response) was handed to the connection.
            case lastFrameSent
        }

        public var kind: Kind
        public var requestID: Int
        /// Monotonic clock reading.
        public var at: ContinuousClock.Instant
    }

    /// What the emulator saw, for tests and benchmarks.
    public struct Observations: Sendable {
        public var sessionsCreated: Int
        public var generateRequests: Int
        public var interrupts: Int
        public var restarts: Int
        /// Parameters of the last generate request as received (route argument `images` and `session_id` included).
        public var lastGenerateParameters: [String: JSONValue]?
        public var events: [Event]
    }

    public nonisolated let configuration: Configuration
    /// Where output files live: `<outputRoot>/local/<path>` is served as `View/local/<path>`.
    public nonisolated let outputRoot: String

    /// The file of `relative`, a path in the emulated user's output folder (what `View/local/` serves).
    nonisolated func userOutputFile(_ relative: String) -> String {
        "\(outputRoot)/local/\(relative)"
    }
    let createdAt = ContinuousClock.now

    private var stepDuration: Duration
    private var backendErrored: Bool
    private var startedAt = ContinuousClock.now
    /// A ComfyUI crash in progress: errored until the first instant, loading until the second (SwarmUI's restart).
    private var comfyCrash: (erroredUntil: ContinuousClock.Instant, loadingUntil: ContinuousClock.Instant)?
    /// Bumped by a ComfyUI crash; a generation of an older epoch fails with an error frame.
    private var crashEpoch = 0
    private(set) var serverID = UUID().uuidString.lowercased()
    private var sessions: Set<String> = []
    private var counters: [String: SessionCounters] = [:]
    /// Bumped by `InterruptAll` of a session; a generation stops when its session's epoch moved on.
    private var interruptEpochs: [String: Int] = [:]
    /// Bumped by `restart()`; every generation of an older epoch dies with its connection.
    private var restartEpoch = 0
    private var nextRequestID = 1
    private var pathCounter = 0
    private var usedPaths: Set<String> = []
    var models: [String: JSONValue]
    private var currentModel: String?
    private var observations = Observations(
        sessionsCreated: 0,
        generateRequests: 0,
        interrupts: 0,
        restarts: 0,
        lastGenerateParameters: nil,
        events: []
    )

    struct SessionCounters {
        var waiting = 0
        var waitingBackends = 0
        var live = 0
    }

    public init(configuration: Configuration, outputRoot: String) {
        self.configuration = configuration
        self.outputRoot = outputRoot
        self.stepDuration = configuration.stepDuration
        self.backendErrored = configuration.backendErrored
        self.models = Dictionary(configuration.models.map { ($0.key, $0.json) }, uniquingKeysWith: { _, last in last })
    }

    // MARK: Fault injection

    /// Like a SwarmUI process restart: sessions are forgotten, `server_id` changes, the backend loads again and
    /// in-flight generations lose their connection.
    public func restart() {
        sessions.removeAll()
        counters.removeAll()
        interruptEpochs.removeAll()
        serverID = UUID().uuidString.lowercased()
        startedAt = .now
        restartEpoch += 1
        currentModel = nil
        observations.restarts += 1
    }

    public func setBackendErrored(_ errored: Bool) { backendErrored = errored }

    /// Like ComfyUI dying under SwarmUI (OOM, segfault): running generations fail with an error, the backend reports
    /// `errored` for `erroredFor` (SwarmUI restarts it about 2 s later), then `loading` for `loadingFor`, then `running`.
    public func crashComfyUI(erroredFor: Duration, loadingFor: Duration) {
        let now = ContinuousClock.now
        comfyCrash = (now + erroredFor, now + erroredFor + loadingFor)
        crashEpoch += 1
        currentModel = nil
    }
    public func setStepDuration(_ duration: Duration) { stepDuration = duration }

    public func observe() -> Observations { observations }

    // MARK: Sessions and status

    func newSession() -> String {
        var generator = SystemRandomNumberGenerator()
        let id = (0..<20).map { _ in String(format: "%02X", UInt8.random(in: 0...255, using: &generator)) }.joined()
        sessions.insert(id)
        observations.sessionsCreated += 1
        return id
    }

    func isValid(session: String) -> Bool { sessions.contains(session) }

    enum BackendState: String {
        case loading, running, errored
    }

    var backendState: BackendState {
        if backendErrored { return .errored }
        if let crash = comfyCrash {
            let now = ContinuousClock.now
            if now < crash.erroredUntil { return .errored }
            if now < crash.loadingUntil { return .loading }
        }
        return ContinuousClock.now - startedAt < configuration.loadingTime ? .loading : .running
    }

    func currentStepDuration() -> Duration { stepDuration }

    /// The `GetCurrentStatus` object for `session` (also the `status` frame).
    func statusJSON(session: String) -> JSONValue {
        let counter = counters[session] ?? SessionCounters()
        let state = backendState
        let message: JSONValue =
            state == .errored
            ? "Backend 0 (ComfyUI Self-Starting) failed to load: emulated failure" : ""
        return [
            "status": [
                "waiting_gens": .int(counter.waiting), "loading_models": 0,
                "waiting_backends": .int(counter.waitingBackends), "live_gens": .int(counter.live),
            ],
            "backend_status": [
                "status": .string(state.rawValue), "class": "", "message": message,
                "any_loading": .bool(state == .loading),
            ],
            "supported_features": state == .running ? features : [],
        ]
    }

    static let allFeatures = [
        "comfyui", "refiners", "controlnet", "endstepsearly", "seamless", "video", "variation_seed", "freeu",
        "yolov8", "folderslash", "gguf",
    ]

    var features: JSONValue { .array(Self.allFeatures.filter { !configuration.droppedFeatures.contains($0) }.map(JSONValue.string)) }

    /// A few of ComfyUI's node types with those the Wan 2.2 GGUF path uses (SwarmUI's own, ComfyUI-GGUF's).
    static let allNodeTypes = [
        "KSampler", "CheckpointLoaderSimple", "UNETLoader", "CLIPLoader", "VAELoader", "VAEDecode", "LoraLoader",
        "LoraLoaderModelOnly", "ModelSamplingSD3", "CLIPTextEncode", "WanImageToVideo", "WanFirstLastFrameToVideo",
        "SwarmKSampler", "SwarmLoadImageB64", "SwarmSaveImageWS", "SwarmSaveAnimationWS", "UnetLoaderGGUF", "CLIPLoaderGGUF",
    ]

    /// `ComfyGetNodeTypesForBackend`: known only for backend 0, the one ComfyUI backend.
    func nodeTypesJSON(backend: Int) -> JSONValue {
        guard backend == 0 else { return ["error": "Unknown backend ID or not a ComfyUI backend."] }
        return ["node_types": .array(Self.allNodeTypes.filter { !configuration.droppedNodeTypes.contains($0) }.map(JSONValue.string))]
    }

    func backendsJSON() -> JSONValue {
        let state = backendState
        return [
            "0": [
                "type": "comfyui_selfstart", "status": .string(state.rawValue), "id": 0,
                "settings": ["StartScript": "dlbackend/ComfyUI/main.py", "GPU_ID": "0", "EnablePreviews": "true"],
                "modcount": 0, "features": state == .running ? features : [], "enabled": true,
                "title": "ComfyUI", "max_usages": 2, "seconds_since_used": 0, "time_since_used": "Never",
                "can_load_models": .bool(state == .running),
                "current_model": currentModel.map(JSONValue.string) ?? .null,
            ]
        ]
    }

    func sessionJSON(_ id: String) -> JSONValue {
        [
            "session_id": .string(id), "user_id": "local", "output_append_user": true, "version": "0.9.8.2",
            "server_id": .string(serverID), "permissions": ["*"],
        ]
    }

    // MARK: Generations

    /// A running generation's claim on its session: what it must compare against to notice an interrupt/restart.
    struct Ticket: Sendable {
        var requestID: Int
        var session: String
        var interruptEpoch: Int
        var restartEpoch: Int
        var crashEpoch: Int
    }

    enum Abort: Error {
        case interrupted
        /// The emulated process restarted: the connection must drop.
        case restarted
        /// ComfyUI died under the generation: SwarmUI ends it with an error.
        case backendCrashed
    }

    func beginGeneration(session: String, parameters: [String: JSONValue]) -> Ticket {
        let id = nextRequestID
        nextRequestID += 1
        observations.generateRequests += 1
        observations.lastGenerateParameters = parameters
        observations.events.append(Event(kind: .generateReceived, requestID: id, at: .now))
        counters[session, default: SessionCounters()].waiting += 1
        return Ticket(
            requestID: id,
            session: session,
            interruptEpoch: interruptEpochs[session] ?? 0,
            restartEpoch: restartEpoch,
            crashEpoch: crashEpoch
        )
    }

    func endGeneration(_ ticket: Ticket, lastFrameAt: ContinuousClock.Instant) {
        observations.events.append(Event(kind: .lastFrameSent, requestID: ticket.requestID, at: lastFrameAt))
        guard ticket.restartEpoch == restartEpoch else { return }
        counters[ticket.session, default: SessionCounters()].waiting -= 1
    }

    func setPhase(_ ticket: Ticket, waitingBackend: Bool, live: Bool) {
        guard ticket.restartEpoch == restartEpoch else { return }
        counters[ticket.session, default: SessionCounters()].waitingBackends = waitingBackend ? 1 : 0
        counters[ticket.session, default: SessionCounters()].live = live ? 1 : 0
    }

    func check(_ ticket: Ticket) throws(Abort) {
        if ticket.restartEpoch != restartEpoch { throw .restarted }
        if ticket.crashEpoch != crashEpoch { throw .backendCrashed }
        if (interruptEpochs[ticket.session] ?? 0) != ticket.interruptEpoch { throw .interrupted }
    }

    func interruptAll(session: String) {
        interruptEpochs[session, default: 0] += 1
        observations.interrupts += 1
    }

    func noteModelLoaded(_ name: String) { currentModel = name }

    /// A fresh output path relative to the user's output folder, `-1`, `-2`... appended on collision.
    func claimOutputPath(format: String?, prompt: String, model: String, batchIndex: Int, ext: String) -> String {
        pathCounter += 1
        let base: String
        if let format, !format.isEmpty {
            base = format.replacingOccurrences(of: "[batch_id]", with: String(batchIndex))
                .replacingOccurrences(of: "[prompt]", with: prompt)
                .replacingOccurrences(of: "[model]", with: model)
                .replacingOccurrences(of: ".", with: "")
        } else {
            let now = Date()
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: now)
            let day = String(format: "%04d-%02d-%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
            let time = String(format: "%02d%02d%03d", parts.hour ?? 0, parts.minute ?? 0, pathCounter % 1000)
            base = "raw/\(day)/\(time)-\(prompt)-\(model)"
        }
        var candidate = base
        var suffix = 0
        while usedPaths.contains(candidate) {
            suffix += 1
            candidate = "\(base)-\(suffix)"
        }
        usedPaths.insert(candidate)
        return "\(candidate).\(ext)"
    }

    // MARK: Process-level helpers

    /// `GET /Emulator/State`.
    func stateJSON() -> JSONValue {
        let events = observations.events.map { event -> JSONValue in
            let offset = event.at - createdAt
            return [
                "kind": .string(event.kind.rawValue), "request_id": .int(event.requestID),
                "at_ns": .int(Int(offset.components.seconds) * 1_000_000_000 + Int(offset.components.attoseconds / 1_000_000_000)),
            ]
        }
        return [
            "sessions_created": .int(observations.sessionsCreated),
            "generate_requests": .int(observations.generateRequests),
            "interrupts": .int(observations.interrupts),
            "restarts": .int(observations.restarts),
            "last_generate_parameters": observations.lastGenerateParameters.map(JSONValue.object) ?? .null,
            "backend": .string(backendState.rawValue),
            "step_ms": .int(Int(stepDuration.milliseconds)),
            "server_id": .string(serverID),
            "events": .array(events),
        ]
    }
}
