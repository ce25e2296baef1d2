import Foundation
import SwarmCore

/// A stand-in for vast.ai's REST API (vastai.md §1–2) for tests: offers, create, instances moving
/// created → loading → running over set times, reboot, destroy, logs through a `result_url`, and 429s.
///
/// It is never kinder than vast: a new instance reads as `{"instances": null}` for a while, `HostPort` is a string,
/// numbers are ints or floats as vast sends them, `extra_env` is a list of pairs, logs appear at their
/// `result_url` only after a delay, a rented offer disappears and creating on it again fails with `no_such_ask`.
public actor VastAIEmulator {
    public struct Configuration: Sendable {
        /// The bearer token accepted; anything else gets vast's 401.
        public var apiKey: String
        /// Offer records as `POST /bundles/` returns them (see `sampleOffer`).
        public var offers: [JSONValue]
        /// How long a new instance reads as `{"instances": null}` (vast-sdk PR #15).
        public var nullAfterCreate: Duration
        /// Time in `created`, then in `loading` (the image pull), after which the instance is `running`.
        public var createdTime: Duration
        public var loadingTime: Duration
        /// Time in `rebooting` before a rebooted instance is `running` again.
        public var rebootTime: Duration
        /// How long after `request_logs` the file appears at its `result_url`.
        public var logUploadDelay: Duration
        /// Answer the by-id call with a one-element list instead of a dict (both occur, §1.6).
        public var showAsList: Bool
        /// Leave `ports` out of the by-id answer; only the list has them (Vast QA saw this, §1.6).
        public var portsOnlyInList: Bool
        /// Images whose instances run real processes (`EmulatedImage`), by image reference; an instance of any other
        /// image runs nothing.
        public var images: [String: EmulatedImage]
        /// Where each instance running an image gets its directory (its `/workspace`, console log, env files).
        public var instancesDirectory: String?
        /// Template records (`hash_id`, `image`, `tag`, `runtype`, `onstart`, `env` as a docker-options string, ...)
        /// for the template search and for creates from a template.
        public var templates: [JSONValue]
        /// A rented offer stays in search results (vast's index lags), while creating on it still fails.
        public var listsTakenOffers: Bool

        public init(
            apiKey: String = "emulated-vast-key",
            offers: [JSONValue] = VastAIEmulator.defaultOffers,
            nullAfterCreate: Duration = .milliseconds(100),
            createdTime: Duration = .milliseconds(200),
            loadingTime: Duration = .milliseconds(500),
            rebootTime: Duration = .milliseconds(200),
            logUploadDelay: Duration = .milliseconds(200),
            showAsList: Bool = false,
            portsOnlyInList: Bool = false,
            images: [String: EmulatedImage] = [:],
            instancesDirectory: String? = nil,
            templates: [JSONValue] = [],
            listsTakenOffers: Bool = false
        ) {
            self.apiKey = apiKey
            self.offers = offers
            self.nullAfterCreate = nullAfterCreate
            self.createdTime = createdTime
            self.loadingTime = loadingTime
            self.rebootTime = rebootTime
            self.logUploadDelay = logUploadDelay
            self.showAsList = showAsList
            self.portsOnlyInList = portsOnlyInList
            self.images = images
            self.instancesDirectory = instancesDirectory
            self.templates = templates
            self.listsTakenOffers = listsTakenOffers
        }
    }

    /// Failures a test can inject into one instance, each showing the way vastai.md §2.2 says the real one does.
    public enum Fault: String, Sendable, Hashable, CaseIterable {
        /// `loading` forever, `status_msg` frozen on a layer state.
        case stuckLoading
        /// The container died: `exited`. A reboot brings it back.
        case exited
        /// The host disconnected: `offline`. A reboot does not help.
        case offline
        /// The image needs a newer CUDA than the host driver: stays `created` with the OCI runtime error.
        case cudaMismatch
        /// The host's disk filled during the pull.
        case diskFull
        /// `running`, but the app's log says the GPU has no kernels for it.
        case noKernelImage
    }

    /// One API call as received, for tests to check paths, bodies and headers.
    public struct RecordedRequest: Sendable {
        public var method: String
        /// Path and query, e.g. `/api/v0/instances/3/?owner=me`.
        public var uri: String
        public var body: JSONValue?
        public var authorization: String?
    }

    /// The emulator's view of one instance (what a test asserts on).
    public struct InstanceState: Sendable {
        public var id: Int
        public var offerID: Int
        public var machineID: Int
        public var label: String?
        public var env: [String: String]
        public var image: String?
        public var templateHashID: String?
        /// What vast runs in the container: the request's, else the template's (nil: vast's default, `ssh`).
        public var runtype: String?
        public var onstart: String?
        public var args: [String]?
        /// `stopped` through `PUT /instances/{id}/ {"state": "stopped"}`: the container ends, the disk stays.
        public var stopped: Bool
        public var diskGB: Double
        public var fault: Fault?
        public var destroyed: Bool
        public var reboots: Int
        /// Lines the container prints (appended to the standard boot lines).
        public var containerLog: [String]
        var phaseStart: ContinuousClock.Instant
        var rebooting: Bool
        let createdAtEpoch: Double
        /// Someone else rented the GPU while the instance was stopped: how a resume fails.
        public var gpuLoss: GPULoss? = nil
        /// A resume accepted but waiting for the GPU: vast's console shows "Scheduling", the record `stopped`.
        public var scheduling = false
        /// GPU billing: seconds billed so far, and since when it bills (nil while stopped or destroyed).
        var gpuSeconds: Double = 0
        var gpuSince: ContinuousClock.Instant? = .now
        /// Storage bills from the create until the destroy, stopped or not (vastai.md §2.3).
        let createdAt: ContinuousClock.Instant = .now
        var destroyedAt: ContinuousClock.Instant?
    }

    /// How a stopped instance's resume fails once its GPU is gone.
    public enum GPULoss: String, Sendable, CaseIterable {
        /// `PUT state running` answers `success: false`.
        case refuse
        /// Accepted, but the instance stays `stopped` (scheduling) for ever.
        case schedule
    }

    public nonisolated let configuration: Configuration
    private var offers: [Int: JSONValue]
    private var offerOrder: [Int]
    /// Offer id → instance renting it; 0 when someone else rents it.
    private var rentedOffers: [Int: Int] = [:]
    private var instances: [Int: InstanceState] = [:]
    private var nextInstanceID = 31_234_567
    private var logFiles: [String: (text: String, readyAt: ContinuousClock.Instant)] = [:]
    /// The running container of each instance whose image runs processes.
    private var containers: [Int: EmulatedContainer] = [:]
    /// Instances whose container's first process ended on its own, with its status: vast shows them `exited`.
    private var containerExits: [Int: Int32] = [:]
    private var shutDown = false
    private var pendingRateLimits: [(retryAfter: String?, quota: Bool, method: String?)] = []
    private(set) public var requests: [RecordedRequest] = []
    var baseURL = "http://127.0.0.1"

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        var offers: [Int: JSONValue] = [:]
        var order: [Int] = []
        for offer in configuration.offers {
            guard let id = offer["id"]?.intValue else { continue }
            offers[id] = offer
            order.append(id)
        }
        self.offers = offers
        self.offerOrder = order
    }

    // MARK: - Steering (tests)

    public func inject(_ fault: Fault?, instance id: Int) {
        instances[id]?.fault = fault
        // The container died or its host went away: its processes with it.
        if fault == .exited || fault == .offline { endContainer(id) }
    }

    /// Someone else rents the stopped instance's GPU: its resume fails as `loss` says.
    public func takeGPU(instance id: Int, _ loss: GPULoss?) {
        instances[id]?.gpuLoss = loss
    }

    /// What vast would bill for the instance so far: GPU time at `dph_total` while not stopped, storage at
    /// `storage_cost` ($/GB/month) for the disk from create to destroy.
    public func charges(instance id: Int, at now: ContinuousClock.Instant = .now) -> (gpu: Double, storage: Double)? {
        guard let instance = instances[id] else { return nil }
        let offer = offers[instance.offerID] ?? [:]
        let gpuSeconds = instance.gpuSeconds + (instance.gpuSince.map { (now - $0).seconds } ?? 0)
        let storageSeconds = ((instance.destroyedAt ?? now) - instance.createdAt).seconds
        let dph = offer["dph_total"]?.doubleValue ?? 0
        let storagePrice = offer["storage_cost"]?.doubleValue ?? 0.15
        return (gpuSeconds / 3600 * dph, storageSeconds / 3600 * instance.diskGB * storagePrice / (30 * 24))
    }

    /// Every instance's `charges`, summed.
    public func totalCharges(at now: ContinuousClock.Instant = .now) -> (gpu: Double, storage: Double) {
        instances.keys.compactMap { charges(instance: $0, at: now) }.reduce((0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
    }

    /// Someone else rents the offer: it leaves the search, and creating on it fails with `no_such_ask`.
    public func takeOffer(id: Int) {
        rentedOffers[id] = 0
    }

    public func addOffer(_ offer: JSONValue) {
        guard let id = offer["id"]?.intValue else { return }
        if offers[id] == nil { offerOrder.append(id) }
        offers[id] = offer
    }

    /// The next `count` API calls (with that HTTP method, when given) get 429 `API requests too frequent`, with
    /// `Retry-After: retryAfter` when given (vast's docs say it sends none; the CLI honors one when present).
    public func rateLimitNext(_ count: Int, retryAfter: String? = nil, method: String? = nil) {
        pendingRateLimits += Array(repeating: (retryAfter, false, method), count: count)
    }

    /// The next search gets 429 `search_quota_exceeded` with `X-RateLimit-Reset`.
    public func exhaustSearchQuota() {
        pendingRateLimits.append((nil, true, "POST"))
    }

    /// Ends the instance's pull now: it is `running` (unless a fault says otherwise), as if `loadingTime` had passed.
    public func finishLoading(instance id: Int) {
        guard var instance = instances[id], !instance.rebooting else { return }
        instance.phaseStart = .now - (configuration.nullAfterCreate + configuration.createdTime + configuration.loadingTime)
        instances[id] = instance
    }

    public func appendContainerLog(instance id: Int, _ lines: [String]) {
        instances[id]?.containerLog += lines
    }

    public func instanceState(id: Int) -> InstanceState? { instances[id] }

    /// Instances not destroyed, by id.
    public var liveInstances: [InstanceState] {
        instances.values.filter { !$0.destroyed }.sorted { $0.id < $1.id }
    }

    public func clearRequests() { requests = [] }

    /// Instances created so far, destroyed ones included.
    public var createdCount: Int { instances.count }

    /// Where `result_url`s point: the address clients reach the emulator at.
    public func setBaseURL(_ url: String) { baseURL = url }

    // MARK: - The API (called by the routes)

    struct Reply: Sendable {
        var status: Int
        var body: JSONValue
        var headers: [String: String] = [:]

        static func ok(_ body: JSONValue) -> Reply { Reply(status: 200, body: body) }
        static func failure(_ status: Int, _ error: String, _ message: String) -> Reply {
            Reply(status: status, body: ["success": false, "error": .string(error), "msg": .string(message)])
        }
    }

    /// Records the call and applies authentication and rate limits; a non-nil reply ends the call.
    func admit(method: String, uri: String, body: JSONValue?, authorization: String?, isSearch: Bool) -> Reply? {
        requests.append(RecordedRequest(method: method, uri: uri, body: body, authorization: authorization))
        guard authorization == "Bearer \(configuration.apiKey)" else {
            return .failure(401, "auth_error", "Invalid user key")
        }
        guard
            let index = pendingRateLimits.firstIndex(where: { limit in
                limit.quota ? isSearch : (limit.method.map { $0 == method } ?? true)
            })
        else { return nil }
        let limit = pendingRateLimits.remove(at: index)
        if limit.quota {
            var reply = Reply.failure(429, "search_quota_exceeded", "Daily search quota exceeded")
            reply.headers["X-RateLimit-Reset"] = String(Int(Date().timeIntervalSince1970) + 3600)
            return reply
        }
        var reply = Reply(status: 429, body: ["detail": "API requests too frequent endpoint threshold=2.0"])
        if let retryAfter = limit.retryAfter { reply.headers["Retry-After"] = retryAfter }
        return reply
    }

    func search(_ query: JSONValue) -> Reply {
        guard let query = query.objectValue else { return .failure(400, "invalid_args", "query must be an object") }
        var matches = offerOrder.compactMap { id -> JSONValue? in
            guard rentedOffers[id] == nil || configuration.listsTakenOffers, let offer = offers[id], OfferQuery.matches(offer, query) else {
                return nil
            }
            return offer
        }
        matches = OfferQuery.sorted(matches, order: query["order"])
        if let limit = query["limit"]?.intValue { matches = Array(matches.prefix(limit)) }
        return .ok(["offers": .array(matches)])
    }

    func create(offerID: Int, body: JSONValue) -> Reply {
        guard offers[offerID] != nil, rentedOffers[offerID] == nil else {
            var reply = Reply.failure(404, "no_such_ask", "error 404/3603: no_such_ask Instance type by id \(offerID) is not available.")
            if case .object(var fields) = reply.body { fields["ask_id"] = .int(offerID); reply.body = .object(fields) }
            return reply
        }
        let templateHash = body["template_hash_id"]?.stringValue
        // A template's fields apply where the request leaves them out; env merges by key, the request's winning (§1.8).
        var template: JSONValue = [:]
        if let templateHash {
            guard let found = configuration.templates.first(where: { $0["hash_id"]?.stringValue == templateHash }) else {
                return .failure(404, "not_found", "template \(templateHash) not found")
            }
            template = found
        }
        let templateImage = template["image"]?.stringValue.map { image in
            template["tag"]?.stringValue.map { "\(image):\($0)" } ?? image
        }
        let image = body["image"]?.stringValue ?? templateImage
        guard image != nil || templateHash != nil else { return .failure(400, "invalid_args", "image or template_hash_id is required") }
        guard let envObject = (body["env"] ?? [:]).objectValue else { return .failure(400, "invalid_args", "env must be a dict") }
        let label = body["label"]?.stringValue
        if let label, label.count > 256 { return .failure(400, "label_too_long", "label must be at most 256 characters") }
        guard let disk = body["disk"]?.doubleValue, disk >= 8 else { return .failure(400, "invalid_args", "disk must be at least 8") }
        var env = DockerOptions.parse(template["env"]?.stringValue ?? "")
        env.merge(envObject.compactMapValues { $0.stringValue ?? $0.intValue.map(String.init) }) { _, request in request }
        let onstart = body["onstart"]?.stringValue ?? template["onstart"]?.stringValue
        if (onstart?.count ?? 0) + (body["args_str"]?.stringValue?.count ?? 0) > 4096 {
            return .failure(400, "invalid_args", "args, args_str and onstart together must be at most 4096 characters")
        }
        let args =
            body["args"]?.arrayValue?.compactMap(\.stringValue) ?? body["args_str"]?.stringValue.map { $0.split(separator: " ").map(String.init) }
        let id = nextInstanceID
        nextInstanceID += 1
        instances[id] = InstanceState(
            id: id,
            offerID: offerID,
            machineID: offers[offerID]?["machine_id"]?.intValue ?? 0,
            label: label,
            env: env,
            image: image,
            templateHashID: templateHash,
            runtype: body["runtype"]?.stringValue ?? template["runtype"]?.stringValue,
            onstart: onstart,
            args: args,
            stopped: false,
            diskGB: disk,
            fault: nil,
            destroyed: false,
            reboots: 0,
            containerLog: [],
            phaseStart: .now,
            rebooting: false,
            createdAtEpoch: Date().timeIntervalSince1970
        )
        rentedOffers[offerID] = id
        bootWhenRunning(id)
        return .ok(["success": true, "new_contract": .int(id), "instance_api_key": .string(UUID().uuidString.lowercased())])
    }

    /// The template search (`GET /template/?select_filters={"hash_id":{"eq":…}}`): only `eq` on a field is understood.
    func searchTemplates(filters: JSONValue?) -> Reply {
        let matches = configuration.templates.filter { template in
            for (field, condition) in filters?.objectValue ?? [:] {
                guard let wanted = condition["eq"] else { continue }
                if template[field] != wanted { return false }
            }
            return true
        }
        return .ok(["success": true, "templates": .array(matches), "templates_found": .int(matches.count)])
    }

    // MARK: - Containers

    /// Starts the instance's container once vast would show it `running`, if its image runs processes.
    private func bootWhenRunning(_ id: Int) {
        guard let state = instances[id], let image = state.image, configuration.images[image] != nil,
            configuration.instancesDirectory != nil
        else { return }
        Task {
            while await self.waitingToBoot(id) {
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    /// One look at an instance that is to boot: starts its container when due. false: nothing more to wait for.
    private func waitingToBoot(_ id: Int) -> Bool {
        guard !shutDown, let instance = instances[id], !instance.destroyed, !instance.stopped, containers[id] == nil else { return false }
        guard phase(of: instance, at: .now) == .running else { return true }
        startContainer(instance)
        return false
    }

    private func startContainer(_ instance: InstanceState) {
        guard let imageName = instance.image, let image = configuration.images[imageName], let root = configuration.instancesDirectory else { return }
        let launch = EmulatedContainer.Launch(
            image: image,
            runtype: instance.runtype,
            onstart: instance.onstart,
            args: instance.args,
            env: instance.env.filter { !$0.key.hasPrefix("-") },
            instanceID: instance.id,
            directory: "\(root)/\(instance.id)"
        )
        containerExits[instance.id] = nil
        do {
            let id = instance.id
            let container = try EmulatedContainer.start(launch) { status in
                Task { await self.containerEnded(id, status: status) }
            }
            containers[id] = container
        } catch {
            instances[instance.id]?.containerLog.append("emulator: the container could not start: \(error)")
            containerExits[instance.id] = 127
        }
    }

    private func containerEnded(_ id: Int, status: Int32) {
        guard containers[id]?.isRunning == false else { return }
        containers[id] = nil
        // Killed by the emulator (destroy, reboot, stop, a fault) is not the container's own exit.
        if let instance = instances[id], !instance.destroyed, !instance.stopped, !instance.rebooting, instance.fault == nil {
            containerExits[id] = status
        }
    }

    private func endContainer(_ id: Int) {
        containers.removeValue(forKey: id)?.kill()
    }

    /// Ends every container (the emulator is going away); no instance boots after this.
    public func shutdown() {
        shutDown = true
        for id in Array(containers.keys) { endContainer(id) }
    }

    /// Stops or starts the instance as `PUT /instances/{id}/ {"state": …}` does.
    public func setStopped(_ stopped: Bool, instance id: Int) {
        _ = update(id: id, body: ["state": stopped ? "stopped" : "running"])
    }

    /// Whether the instance's container has processes running now.
    public func containerRunning(instance id: Int) -> Bool { containers[id]?.isRunning == true }

    func show(id: Int) -> Reply {
        guard var record = record(id: id) else { return .ok(["instances": nil]) }
        if configuration.portsOnlyInList, case .object(var fields) = record {
            fields["ports"] = nil
            record = .object(fields)
        }
        return .ok(["instances": configuration.showAsList ? [record] : record])
    }

    func list() -> Reply {
        let records = instances.keys.sorted().compactMap(record(id:))
        return .ok(["instances_found": .int(records.count), "instances": .array(records)])
    }

    func update(id: Int, body: JSONValue) -> Reply {
        guard var instance = instances[id], !instance.destroyed else { return noSuchInstance(id) }
        if let label = body["label"] {
            guard let text = label.stringValue, text.count <= 256 else {
                return .failure(400, "label_too_long", "label must be at most 256 characters")
            }
            instance.label = text
        }
        switch body["state"]?.stringValue {
        case "stopped"?:
            instance.stopped = true
            instance.scheduling = false
            if let since = instance.gpuSince { instance.gpuSeconds += (ContinuousClock.now - since).seconds }
            instance.gpuSince = nil
            instances[id] = instance
            endContainer(id)
        case "running"? where instance.stopped && instance.gpuLoss == .refuse:
            return .ok([
                "success": false, "error": "resume_failed", "msg": "Required resources are no longer available on this machine; the GPU is rented.",
            ])
        case "running"? where instance.stopped && instance.gpuLoss == .schedule:
            instance.scheduling = true
            instances[id] = instance
        case "running"? where instance.stopped:
            instance.stopped = false
            instance.gpuSince = .now
            instance.rebooting = true
            instance.phaseStart = .now
            instances[id] = instance
            containerExits[id] = nil
            bootWhenRunning(id)
        case nil, "running"?:
            instances[id] = instance
        case let other?:
            return .failure(400, "invalid_args", "state must be running or stopped, not \(other)")
        }
        return .ok(["success": true])
    }

    func destroy(id: Int) -> Reply {
        guard let instance = instances[id], !instance.destroyed else { return noSuchInstance(id) }
        instances[id]?.destroyed = true
        instances[id]?.destroyedAt = .now
        if let since = instance.gpuSince { instances[id]?.gpuSeconds += (ContinuousClock.now - since).seconds }
        instances[id]?.gpuSince = nil
        rentedOffers[instance.offerID] = nil
        endContainer(id)
        return .ok(["success": true])
    }

    /// docker stop + start on the same machine: fixes an exited container, not a missing host or a bad image.
    func reboot(id: Int) -> Reply {
        guard var instance = instances[id], !instance.destroyed else { return noSuchInstance(id) }
        instance.reboots += 1
        instance.rebooting = true
        instance.phaseStart = .now
        if instance.fault == .exited { instance.fault = nil }
        instances[id] = instance
        endContainer(id)
        containerExits[id] = nil
        bootWhenRunning(id)
        return .ok(["success": true])
    }

    func requestLogs(id: Int, body: JSONValue) -> Reply {
        guard let instance = instances[id], !instance.destroyed else { return noSuchInstance(id) }
        let daemon = LooseBool.read(body["daemon_logs"]) ?? false
        var lines = daemon ? daemonLog(instance) : containerLog(instance)
        if let tail = body["tail"].flatMap({ $0.intValue ?? $0.stringValue.flatMap(Int.init) }) { lines = Array(lines.suffix(tail)) }
        let name = UUID().uuidString.lowercased() + ".log"
        logFiles[name] = (lines.joined(separator: "\n") + (lines.isEmpty ? "" : "\n"), ContinuousClock.now + configuration.logUploadDelay)
        return .ok(["success": true, "result_url": .string("\(baseURL)/logs/\(name)")])
    }

    /// The uploaded file, or nil while the upload has not happened (storage answers 404 then).
    func logFile(name: String) -> String? {
        guard let file = logFiles[name], ContinuousClock.now >= file.readyAt else { return nil }
        return file.text
    }

    func account() -> Reply {
        .ok(["id": 4242, "email": "fleet@example.org", "credit": 25.5, "ssh_key": nil])
    }

    private func noSuchInstance(_ id: Int) -> Reply {
        .failure(404, "no_such_instance", "Instance \(id) not found.")
    }

    // MARK: - State

    enum Phase: Equatable {
        case pending, created, loading, running, rebooting, exited, offline, stopped
    }

    /// Phases run one after the other from the create: null record, `created`, `loading`, `running`. A fault
    /// shows once the instance is past `created`; a reboot skips the pull but not a fault it cannot fix.
    private func phase(of instance: InstanceState, at now: ContinuousClock.Instant) -> Phase {
        if instance.fault == .offline { return .offline }
        if instance.stopped { return .stopped }
        let elapsed = now - instance.phaseStart
        if instance.rebooting {
            return elapsed < configuration.rebootTime ? .rebooting : Self.phase(for: instance.fault) ?? .running
        }
        if elapsed < configuration.nullAfterCreate { return .pending }
        let sinceSetup = elapsed - configuration.nullAfterCreate
        if sinceSetup < configuration.createdTime { return .created }
        if let phase = Self.phase(for: instance.fault) { return phase }
        return sinceSetup < configuration.createdTime + configuration.loadingTime ? .loading : .running
    }

    private static func phase(for fault: Fault?) -> Phase? {
        switch fault {
        case .cudaMismatch?: .created
        case .stuckLoading?, .diskFull?: .loading
        case .exited?: .exited
        case .offline?: .offline
        case .noKernelImage?, nil: nil
        }
    }

    private func statusMessage(_ instance: InstanceState, _ phase: Phase, elapsed: Duration) -> JSONValue {
        switch (phase, instance.fault) {
        case (.created, .cudaMismatch?):
            return .string(Self.cudaMismatchMessage)
        case (.loading, .diskFull?):
            return "Error response from daemon: failed to register layer: write /usr/lib/x86_64-linux-gnu/libcudnn.so.9: no space left on device"
        case (.loading, .stuckLoading?):
            return "Download complete"
        case (.loading, _):
            let steps = ["Pulling fs layer", "Verifying Checksum", "Download complete", "Pull complete"]
            let pulling = elapsed - configuration.nullAfterCreate - configuration.createdTime
            let fraction = pulling.seconds / max(0.001, configuration.loadingTime.seconds)
            return .string(steps[max(0, min(steps.count - 1, Int(fraction * Double(steps.count))))])
        case (.running, _):
            return .string("success, running \(instance.image ?? "vastai/template")/ssh")
        case (.exited, _):
            return .string("Exited (\(containerExits[instance.id] ?? 1)) container process exited")
        case (.stopped, _):
            return "Exited (0) stopped by user"
        case (.offline, _), (.pending, _), (.created, _), (.rebooting, _):
            return nil
        }
    }

    static let cudaMismatchMessage = """
        Error response from daemon: failed to create task for container: failed to create shim task: OCI runtime create failed: \
        runc create failed: unable to start container process: error during container init: error running hook #0: error running \
        hook: exit status 1, stdout: , stderr: Auto-detected mode as 'legacy' nvidia-container-cli: requirement error: \
        unsatisfied condition: cuda>=12.8, please update your driver to a newer version, or use an earlier cuda container: unknown
        """

    /// The record as vast's by-id endpoint shows it, or nil where vast shows `null`.
    private func record(id: Int) -> JSONValue? {
        guard let instance = instances[id], !instance.destroyed else { return nil }
        let now = ContinuousClock.now
        var phase = phase(of: instance, at: now)
        guard phase != .pending else { return nil }
        // The container's first process ended on its own: docker's `exited`, whatever the schedule says.
        if phase == .running, containerExits[id] != nil { phase = .exited }
        let offer = offers[instance.offerID] ?? [:]
        let actual: JSONValue =
            switch phase {
            case .pending: nil
            case .created: "created"
            case .loading: "loading"
            case .running: "running"
            case .rebooting: "rebooting"
            case .exited: "exited"
            case .offline: "offline"
            case .stopped: "stopped"
            }
        var ports: JSONValue = nil
        if phase == .running {
            var map: [String: JSONValue] = [:]
            let containerPorts = [22] + instance.env.keys.compactMap(Self.publishedPort)
            let mapped = containers[id]?.hostPorts ?? [:]
            for (index, port) in containerPorts.enumerated() {
                let hostPort = String(mapped[port] ?? 40_000 + (id % 500) * 20 + index)
                map["\(port)/tcp"] = [["HostIp": "0.0.0.0", "HostPort": .string(hostPort)], ["HostIp": "::", "HostPort": .string(hostPort)]]
            }
            ports = .object(map)
        }
        let extraEnv = instance.env.keys.sorted().filter { !$0.hasPrefix("-") }.map { key -> JSONValue in
            [.string(key), .string(instance.env[key] ?? "")]
        }
        let uptime = phase == .running ? (now - instance.phaseStart).seconds / 60 : 0
        return [
            "id": .int(id),
            "machine_id": .int(instance.machineID),
            "host_id": offer["host_id"] ?? nil,
            "bundle_id": offer["bundle_id"] ?? nil,
            "label": instance.label.map(JSONValue.string) ?? nil,
            "actual_status": actual,
            "intended_status": instance.stopped && !instance.scheduling ? "stopped" : "running",
            "cur_state": instance.stopped ? "stopped" : "running",
            "next_state": instance.stopped ? "stopped" : "running",
            "status_msg": statusMessage(instance, phase, elapsed: now - instance.phaseStart),
            "image_uuid": instance.image.map(JSONValue.string) ?? "vastai/swarmui:0.9.8-Beta",
            "image_runtype": .string(instance.runtype ?? "ssh"),
            "onstart": instance.onstart.map(JSONValue.string) ?? nil,
            "template_hash_id": instance.templateHashID.map(JSONValue.string) ?? nil,
            "extra_env": .array(extraEnv),
            "public_ipaddr": phase == .running ? "127.0.0.1" : nil,
            "ssh_host": "ssh5.vast.ai",
            "ssh_port": .int(10_000 + id % 10_000),
            "ports": ports,
            "direct_port_start": -1,
            "direct_port_end": -1,
            "num_gpus": offer["num_gpus"] ?? 1,
            "gpu_name": offer["gpu_name"] ?? nil,
            "gpu_ram": offer["gpu_ram"] ?? nil,
            "cuda_max_good": offer["cuda_max_good"] ?? nil,
            "driver_version": offer["driver_version"] ?? nil,
            "disk_space": .double(instance.diskGB),
            "disk_usage": phase == .running ? 21.4 : -1,
            "disk_util": phase == .running ? 0.2 : -1,
            "dph_total": offer["dph_total"] ?? nil,
            "storage_cost": offer["storage_cost"] ?? 0.15,
            "storage_total_cost": .double(instance.diskGB * (offer["storage_cost"]?.doubleValue ?? 0.15) / (30 * 24)),
            "inet_down": offer["inet_down"] ?? nil,
            "reliability2": offer["reliability2"] ?? nil,
            "geolocation": offer["geolocation"] ?? nil,
            "start_date": .double(instance.createdAtEpoch),
            "uptime_mins": .double(uptime),
            "jupyter_token": "53fc448d",
        ]
    }

    /// `"-p 7865:7865"` → 7865.
    private static func publishedPort(_ key: String) -> Int? {
        guard key.hasPrefix("-p ") else { return nil }
        let spec = key.dropFirst(3).split(separator: ":").last.map { $0.split(separator: "/")[0] }
        return spec.flatMap { Int($0) }
    }

    private func containerLog(_ instance: InstanceState) -> [String] {
        let phase = phase(of: instance, at: .now)
        guard phase == .running || phase == .exited || instance.image.flatMap({ configuration.images[$0] }) != nil else { return [] }
        // A container that ran writes its own output; the others show vast's usual first lines.
        let console = configuration.instancesDirectory.flatMap { try? String(contentsOfFile: "\($0)/\(instance.id)/console.log", encoding: .utf8) }
        var lines =
            console.map { text in
                text.split(separator: "\n", omittingEmptySubsequences: false).dropLast(text.isEmpty || text.hasSuffix("\n") ? 1 : 0).map(String.init)
            }
            ?? ["Starting instance tools...", "swarm-worker: stage INITIALIZING"]
        if instance.fault == .noKernelImage {
            lines.append("RuntimeError: CUDA error: no kernel image is available for execution on the device")
        }
        return lines + instance.containerLog
    }

    private func daemonLog(_ instance: InstanceState) -> [String] {
        var lines = ["Pulling image \(instance.image ?? "template image")", "Pulling fs layer", "Verifying Checksum", "Download complete"]
        switch instance.fault {
        case .cudaMismatch?: lines.append(Self.cudaMismatchMessage)
        case .diskFull?: lines.append("failed to register layer: no space left on device")
        default: lines.append("Pull complete")
        }
        return lines
    }
}

/// vast sends flags as `"true"` strings or booleans.
enum LooseBool {
    static func read(_ value: JSONValue?) -> Bool? {
        switch value {
        case .bool(let flag)?: flag
        case .string(let text)?: text.lowercased() == "true" || text == "1"
        case .int(let number)?: number != 0
        default: nil
        }
    }
}
