import AsyncHTTPClient
import Foundation
import JobProtocol
import JobStore
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Storage
import SwarmCore
import Synchronization

/// Where jobs forwarded to fal.ai go: its queue API and the key (`--fal-url`, `--fal-key-env`). The key is sent in a
/// header only, never logged or stored with a job.
public struct FalForwardSettings: Sendable {
    public var url: String
    public var key: Secret
    /// How often the status of a request on fal.ai is read at first; the interval doubles up to `maximumPoll`.
    public var initialPoll: Duration
    public var maximumPoll: Duration
    /// Spill-over of `auto` jobs (`--spill-after`, `--spill-budget-per-day`); nil: only `provider: "fal"` jobs go.
    public var spill: SpillSettings?

    public init(url: String = "https://queue.fal.run", key: Secret, initialPoll: Duration = .milliseconds(250), maximumPoll: Duration = .seconds(5)) {
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.key = key
        self.initialPoll = initialPoll
        self.maximumPoll = maximumPoll
    }
}

/// Our Wan preset input as a fal.ai request: the reverse of `FalApp.jobInput`. Pure. What has no fal equivalent is
/// refused with a 400 naming the field, never dropped.
enum FalForwardMapping {
    static func request(for input: JSONValue) throws(APIError) -> (app: String, body: JSONValue, frames: Int, resolution: String) {
        guard let fields = input.objectValue else { throw .badRequest(field: "input", "expected an object") }
        let allowed: Set<String> = [
            "provider", "preset", "prompt", "negative_prompt", "seed", "init_image", "width", "height", "video", "loras", "params",
        ]
        if let unknown = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw .badRequest(
                field: "input.\(unknown)",
                "cannot be forwarded to fal.ai, which has no such parameter; leave it out or use provider \"vastai\""
            )
        }
        let app: FalApp
        switch fields["preset"]?.stringValue {
        case FalApp.imageToVideo.preset?: app = .imageToVideo
        case FalApp.textToVideo.preset?: app = .textToVideo
        case let other:
            throw .badRequest(
                field: "input.preset",
                "\(other.map { "\"\($0)\"" } ?? "no preset") has no fal.ai app; forward \(FalApp.imageToVideo.preset) or \(FalApp.textToVideo.preset), or use provider \"vastai\""
            )
        }
        var body: [String: JSONValue] = [:]
        guard let prompt = fields["prompt"]?.stringValue, !prompt.isEmpty else { throw .badRequest(field: "input.prompt", "required by fal.ai") }
        body["prompt"] = .string(prompt)
        if let negative = fields["negative_prompt"] { body["negative_prompt"] = negative }
        if let seed = fields["seed"] { body["seed"] = seed }
        if app == .imageToVideo {
            guard let image = fields["init_image"]?.stringValue,
                image.hasPrefix("https://") || image.hasPrefix("http://") || image.hasPrefix("data:image/")
            else {
                throw .badRequest(field: "input.init_image", "fal.ai needs the start image as an http(s) URL or a data:image/... URI")
            }
            body["image_url"] = .string(image)
        }
        let video = fields["video"]?.objectValue ?? [:]
        if let unknown = video.keys.sorted().first(where: { !["frames", "fps", "resolution", "format", "steps", "cfg"].contains($0) }) {
            throw .badRequest(field: "input.video.\(unknown)", "cannot be forwarded to fal.ai; leave it out or use provider \"vastai\"")
        }
        let frames = video["frames"]?.intValue ?? 81
        guard (17...161).contains(frames) else { throw .badRequest(field: "input.video.frames", "fal.ai makes 17 to 161 frames") }
        body["num_frames"] = .int(frames)
        if let fps = video["fps"] {
            guard let value = fps.intValue, (4...60).contains(value) else { throw .badRequest(field: "input.video.fps", "fal.ai takes 4 to 60") }
            body["frames_per_second"] = .int(value)
        }
        if let steps = video["steps"] { body["num_inference_steps"] = steps }
        if let cfg = video["cfg"] { body["guidance_scale"] = cfg }
        if let shift = fields["params"]?["sigmashift"] { body["shift"] = shift }
        if let params = fields["params"]?.objectValue, let other = params.keys.sorted().first(where: { $0 != "sigmashift" }) {
            throw .badRequest(field: "input.params.\(other)", "cannot be forwarded to fal.ai; leave it out or use provider \"vastai\"")
        }
        // The preset's own acceleration LoRAs are fal's default `acceleration: regular`; any other LoRA has no fal equivalent here.
        let acceleration = Set(FalApp.accelerationLoRAs.compactMap { $0["name"] })
        if let loras = fields["loras"]?.arrayValue, let other = loras.first(where: { !acceleration.contains($0["name"] ?? .null) }) {
            throw .badRequest(
                field: "input.loras",
                "\(other["name"]?.stringValue ?? "a LoRA") cannot be forwarded to fal.ai; use provider \"vastai\""
            )
        }
        // Width and height back to fal's resolution and aspect ratio; a size fal does not make is refused.
        var resolution = "720p"
        if fields["width"] != nil || fields["height"] != nil {
            guard let width = fields["width"]?.intValue, let height = fields["height"]?.intValue,
                let match = FalApp.sizes.sorted(by: { $0.key < $1.key }).lazy.compactMap({ entry in
                    entry.value.first { $0.value == (width, height) }.map { (entry.key, $0.key) }
                }).first
            else {
                throw .badRequest(
                    field: "input.width",
                    "fal.ai makes only its sizes (e.g. 1280x720, 832x480, 720x1280); send one of them or use provider \"vastai\""
                )
            }
            resolution = match.0
            body["resolution"] = .string(match.0)
            body["aspect_ratio"] = .string(app == .imageToVideo && video["resolution"]?.stringValue == "Image Aspect, Model Res" ? "auto" : match.1)
        }
        return ("\(FalApp.base)/\(FalApp.versions[0])/\(app.rawValue)", .object(body), frames, resolution)
    }
}

/// fal.ai's queue API as this server calls it (falai.md §2): submit, status, result, cancel, and the output download.
struct FalQueueClient: Sendable {
    let settings: FalForwardSettings
    let httpClient: HTTPClient

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    func submit(app: String, body: JSONValue) async throws -> String {
        let reply = try await call(.POST, "\(settings.url)/\(app)", body: body)
        guard let id = reply["request_id"]?.stringValue else { throw Failure(description: "fal.ai answered a submit without request_id") }
        return id
    }

    func status(app: String, id: String) async throws -> JSONValue {
        try await call(.GET, "\(handle(app, id))/status?logs=0")
    }

    func result(app: String, id: String) async throws -> JSONValue {
        try await call(.GET, handle(app, id))
    }

    func cancel(app: String, id: String) async {
        _ = try? await call(.PUT, "\(handle(app, id))/cancel", accept: [202, 400])
    }

    /// Handles built from an id drop the app's sub-path, as fal's clients do.
    private func handle(_ app: String, _ id: String) -> String {
        "\(settings.url)/\(app.split(separator: "/").prefix(2).joined(separator: "/"))/requests/\(id)"
    }

    private func call(_ method: HTTPMethod, _ url: String, body: JSONValue? = nil, accept: Set<UInt> = []) async throws -> JSONValue {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: "Key \(settings.key.value)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body.jsonString()))
        }
        let response = try await httpClient.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 4 << 20)
        let json = JSONValue.parse(Data(buffer.readableBytesView)) ?? .null
        guard (200..<300).contains(response.status.code) || accept.contains(response.status.code) else {
            let detail = json["detail"].map { $0.stringValue ?? $0.jsonString() } ?? String(buffer: buffer).prefix(300).description
            throw Failure(description: "fal.ai answered \(response.status.code): \(detail)")
        }
        return json
    }
}

/// Follows every job running on fal.ai (claimed in the store, so a restarted `serve` picks them up again): submits
/// those not yet submitted, polls their status with backoff, copies the output video into our storage (streamed)
/// and ends the job with the same output shape a worker reports, or FAILED with fal's message.
public final class FalForwarder: Service, Sendable {
    /// The provider a forwarded job records, and the value of `input.provider` that asks for it.
    static let provider = "fal"
    let core: ControlPlaneCore
    let client: FalQueueClient
    let httpClient: HTTPClient
    private let baseURL = Mutex<String?>(nil)
    private let nextPoll = Mutex<[String: (at: ContinuousClock.Instant, interval: Duration)]>([:])
    /// Jobs this process claimed and has not submitted yet. Replicas on one database all follow every fal job, so
    /// only the claimer submits; a claim left unsubmitted this long (its serve died in between) is submitted by anyone.
    private let claimedHere = Mutex<Set<String>>([])
    static let orphanedClaim: TimeInterval = 60

    init(core: ControlPlaneCore, settings: FalForwardSettings, httpClient: HTTPClient) {
        self.core = core
        self.client = FalQueueClient(settings: settings, httpClient: httpClient)
        self.httpClient = httpClient
    }

    /// This server's own URL, for output links when no public URL is configured.
    func setBaseURL(_ url: String) { baseURL.withLock { $0 = url } }

    /// Claims a queued job for fal.ai (the loop submits it); nil when it was not queued any more.
    func claim(id: String) async throws -> JobRecord? {
        claimedHere.withLock { _ = $0.insert(id) }
        let claimed = try await core.store.claimForFal(id: id, now: Date())
        if claimed == nil { claimedHere.withLock { _ = $0.remove(id) } }
        return claimed
    }

    /// Claims a queued job for fal.ai; the loop submits it.
    func forward(id: String) async throws {
        if try await claim(id: id) != nil {
            core.logger.info("job forwarded to fal.ai", metadata: ["job": "\(id)"])
        }
    }

    /// Cancels the fal.ai request of a job that was cancelled or timed out here.
    func cancelled(_ job: JobRecord) async {
        guard job.provider == Self.provider, let id = job.falRequestID,
            let app = try? FalForwardMapping.request(for: job.input).app
        else { return }
        await client.cancel(app: app, id: id)
    }

    public func run() async throws {
        await core.migrated.wait()
        core.logger.info("jobs with provider fal are forwarded to \(client.settings.url)")
        while !Task.isCancelled {
            do {
                for job in try await core.store.falJobs() where due(job.id) { await follow(job) }
            } catch {
                core.logger.warning("reading jobs on fal.ai failed: \(error)")
            }
            try? await Task.sleep(for: .milliseconds(100))
            if Task.isCancelled || Task.isShuttingDownGracefully { break }
        }
    }

    private func due(_ id: String) -> Bool {
        nextPoll.withLock { $0[id].map { $0.at <= .now } ?? true }
    }

    private func backOff(_ id: String) {
        nextPoll.withLock { polls in
            let interval = polls[id].map { min($0.interval * 2, client.settings.maximumPoll) } ?? client.settings.initialPoll
            polls[id] = (ContinuousClock.now + interval, interval)
        }
    }

    private func follow(_ job: JobRecord) async {
        let request: (app: String, body: JSONValue, frames: Int, resolution: String)
        do {
            request = try FalForwardMapping.request(for: job.input)
        } catch {
            await end(job, .failed(error: "cannot forward to fal.ai: \(error.message)", output: nil, retryable: false))
            return
        }
        do {
            guard let requestID = job.falRequestID else {
                let mine = claimedHere.withLock { $0.remove(job.id) != nil }
                guard mine || Date().timeIntervalSince(job.startedAt ?? job.createdAt) > Self.orphanedClaim else { return }
                let id = try await client.submit(app: request.app, body: request.body)
                let price = FalPriceList.price(frames: request.frames, resolution: request.resolution)
                guard try await core.store.recordFalRequest(id: job.id, requestID: id, costUSD: price, now: Date()) else {
                    // The job ended here meanwhile (cancelled, timed out): fal.ai must not run it for nobody.
                    await client.cancel(app: request.app, id: id)
                    return
                }
                backOff(job.id)
                return
            }
            let status = try await client.status(app: request.app, id: requestID)
            guard status["status"] == "COMPLETED" else { return backOff(job.id) }
            if let error = status["error"], !error.isNull {
                await end(job, .failed(error: "fal.ai: \(error.stringValue ?? error.jsonString())", output: nil, retryable: false))
                return
            }
            let result = try await client.result(app: request.app, id: requestID)
            guard let url = result["video"]?["url"]?.stringValue else {
                throw FalQueueClient.Failure(description: "fal.ai's result has no video.url")
            }
            let file = try await copy(url: url, job: job, contentType: result["video"]?["content_type"]?.stringValue ?? "video/mp4")
            var output: [String: JSONValue] = ["files": [file], "provider": "fal"]
            if let seed = result["seed"] { output["seed"] = seed }
            await end(job, .completed(output: .object(output)))
        } catch {
            core.logger.warning("following job \(job.id) on fal.ai: \(error); trying again")
            backOff(job.id)
        }
    }

    private func end(_ job: JobRecord, _ result: JobResult) async {
        nextPoll.withLock { $0[job.id] = nil }
        do {
            if let ended = try await core.store.finishFal(id: job.id, result: result, now: Date()) { core.jobEnded(ended) }
        } catch {
            core.logger.warning("recording the end of job \(job.id) on fal.ai failed: \(error)")
        }
    }

    /// Streams fal's output into our storage under the job's key and returns the file entry of a worker's output.
    private func copy(url: String, job: JobRecord, contentType: String) async throws -> JSONValue {
        guard let outputs = core.configuration.outputs else {
            throw FalQueueClient.Failure(description: "this server has no output storage to copy fal.ai's video into")
        }
        let name = URL(string: url)?.lastPathComponent.nonEmpty ?? "output.mp4"
        let key = ObjectKey.output(endpoint: job.endpoint, jobID: job.id, fileName: name)
        let storage = outputs.storage(httpClient: httpClient, baseURL: baseURL.withLock { $0 } ?? "http://127.0.0.1")
        let response = try await httpClient.execute(HTTPClientRequest(url: url), timeout: .minutes(10))
        guard response.status == .ok else { throw FalQueueClient.Failure(description: "fal.ai's CDN answered \(response.status.code) for \(url)") }
        let size = response.headers.first(name: "content-length").flatMap(Int64.init)
        let bytes: Int64
        if let local = storage as? LocalStorage {
            bytes = try await local.write(key: key, expectedSize: size, body: response.body).bytes
        } else {
            guard let size else { throw FalQueueClient.Failure(description: "fal.ai's CDN sent no content-length for \(url)") }
            let target = try await storage.uploadTarget(key: key, size: size, contentType: contentType, completeURL: nil)
            let client = httpClient
            let uploaded = try await OutputUploader(httpClient: httpClient).upload(target) {
                AnyByteSequence(try await client.execute(HTTPClientRequest(url: url), timeout: .minutes(10)).body)
            }
            if case .multipart = target { _ = try await storage.completeUpload(target, parts: uploaded.parts) }
            bytes = uploaded.bytes
        }
        return [
            "url": .string(try await storage.downloadURL(key: key)), "content_type": .string(contentType), "name": .string(name),
            "bytes": .int(Int(bytes)),
        ]
    }
}

extension String {
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}
