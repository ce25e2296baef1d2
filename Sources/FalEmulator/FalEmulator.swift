import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import LoopbackServer
import NIOCore
import SwarmCore

/// Stand-in for fal.ai's queue API (`queue.fal.run`) and its CDN, for tests; never in product code. As unkind as the
/// contract (../shared/contracts/falai.md): `Authorization: Key <key>` or 401, fal's error bodies, 422 naming a bad
/// field of the Wan apps, requests that wait in a queue, then run with logs, then complete (or fail), outputs served
/// from its own CDN URL as real files of the requested length, and what it charged by fal's price list.
public actor FalEmulator {
    public struct Configuration: Sendable {
        public var key: String
        /// How long a request reads IN_QUEUE, then IN_PROGRESS.
        public var queueTime: Duration
        public var runTime: Duration
        /// Size of each output video file.
        public var outputBytes: Int
        /// Where the output files are written (a fresh temporary directory when nil).
        public var directory: String?

        public init(
            key: String = "emulated-fal-key",
            queueTime: Duration = .milliseconds(300),
            runTime: Duration = .milliseconds(500),
            outputBytes: Int = 256 << 10,
            directory: String? = nil
        ) {
            self.key = key
            self.queueTime = queueTime
            self.runTime = runTime
            self.outputBytes = outputBytes
            self.directory = directory
        }
    }

    /// One charge: a request that completed.
    public struct Charge: Sendable, Hashable {
        public var requestID: String
        public var app: String
        public var dollars: Double
    }

    struct Submission {
        var id: String
        var app: String
        var input: JSONValue
        var submitted: ContinuousClock.Instant
        var frames: Int
        var resolution: String
        /// Set when the request will fail (`failNext`) with this message.
        var failure: String?
        var cancelled = false
        var charged = false
    }

    enum Phase: Equatable { case queued, running, completed, failed(String), cancelled }

    public let configuration: Configuration
    let directory: URL
    private(set) var baseURL = "http://127.0.0.1"
    private var requests: [String: Submission] = [:]
    private var order: [String] = []
    private var failures: [String] = []
    private var charges: [Charge] = []
    private var extraLatency: Duration = .zero

    public init(configuration: Configuration = Configuration()) throws {
        self.configuration = configuration
        let path = configuration.directory ?? NSTemporaryDirectory() + "fal-emulator-" + UUID().uuidString
        directory = URL(fileURLWithPath: path, isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    public func setBaseURL(_ url: String) { baseURL = url }

    /// The next submitted request fails with `message` once it has run (fal answers COMPLETED with `error`).
    public func failNext(_ message: String) { failures.append(message) }

    /// Added to every answer from now on (slow network, busy gateway).
    public func setLatency(_ latency: Duration) { extraLatency = latency }

    public func charged() -> [Charge] { charges }
    public func totalCharged() -> Double { charges.reduce(0) { $0 + $1.dollars } }
    public func submittedCount() -> Int { order.count }

    /// The bytes the emulator serves for a request's video, for tests to compare with their copy.
    public nonisolated func outputFile(requestID: String) -> URL { directory.appendingPathComponent("\(requestID).mp4") }

    // MARK: Protocol

    public struct Reply: Sendable {
        public var status: Int
        public var body: JSONValue
    }

    static let apps = ["fal-ai/wan/v2.2-a14b/image-to-video", "fal-ai/wan/v2.2-a14b/image-to-video/lora", "fal-ai/wan/v2.2-a14b/text-to-video"]

    func latency() -> Duration { extraLatency }

    func authorize(_ header: String?) -> Reply? {
        guard let header, header.hasPrefix("Key "), header.dropFirst(4) == configuration.key else {
            return Reply(status: 401, body: ["detail": "No valid key provided: send 'Authorization: Key <FAL_KEY>'", "error_type": "unauthorized"])
        }
        return nil
    }

    func submit(app rawApp: String, body: JSONValue?, webhook: String?) throws -> Reply {
        let app = rawApp.replacingOccurrences(of: "a14B", with: "a14b")
        guard Self.apps.contains(app) else {
            return Reply(status: 404, body: ["detail": .string("Application '\(rawApp)' not found"), "error_type": "not_found"])
        }
        guard let input = body?.objectValue else { return Self.invalid(["body"], "the body must be a JSON object", "type_error.dict") }
        guard let prompt = input["prompt"]?.stringValue, !prompt.isEmpty else {
            return Self.invalid(["body", "prompt"], "field required", "value_error.missing")
        }
        _ = prompt
        if !app.hasSuffix("text-to-video") {
            guard let image = input["image_url"]?.stringValue else {
                return Self.invalid(["body", "image_url"], "field required", "value_error.missing")
            }
            guard image.hasPrefix("https://") || image.hasPrefix("http://") || image.hasPrefix("data:") else {
                return Self.invalid(["body", "image_url"], "must be an http(s) URL or a data URI", "value_error.url")
            }
        }
        var frames = 81
        if let value = input["num_frames"], !value.isNull {
            guard let number = value.intValue, (17...161).contains(number) else {
                return Self.invalid(["body", "num_frames"], "ensure this value is between 17 and 161", "value_error.number.not_in_range")
            }
            frames = number
        }
        if let value = input["frames_per_second"], !value.isNull {
            guard let number = value.intValue, (4...60).contains(number) else {
                return Self.invalid(["body", "frames_per_second"], "ensure this value is between 4 and 60", "value_error.number.not_in_range")
            }
        }
        var resolution = "720p"
        if let value = input["resolution"] {
            guard let text = value.stringValue, FalPriceList.dollarsPerVideoSecond[text] != nil else {
                return Self.invalid(["body", "resolution"], "unexpected value; permitted: '480p', '580p', '720p'", "type_error.enum")
            }
            resolution = text
        }
        if let value = input["aspect_ratio"], !["auto", "16:9", "9:16", "1:1"].contains(value.stringValue ?? "") {
            return Self.invalid(["body", "aspect_ratio"], "unexpected value; permitted: 'auto', '16:9', '9:16', '1:1'", "type_error.enum")
        }
        let id = randomUUIDString().lowercased()
        var request = Submission(id: id, app: app, input: body ?? [:], submitted: .now, frames: frames, resolution: resolution)
        if !failures.isEmpty { request.failure = failures.removeFirst() }
        requests[id] = request
        order.append(id)
        try writeOutput(id)
        var reply = Self.handles(baseURL: baseURL, app: app, id: id)
        reply["status"] = "IN_QUEUE"
        reply["queue_position"] = .int(queuePosition(id))
        if webhook != nil { reply["gateway_request_id"] = .string(id) }
        return Reply(status: 200, body: .object(reply))
    }

    public func status(id: String, logs: Bool) -> Reply {
        guard let request = requests[id] else { return Self.notFound(id) }
        var fields = Self.handles(baseURL: baseURL, app: request.app, id: id)
        switch settle(id) {
        case .queued:
            fields["status"] = "IN_QUEUE"
            fields["queue_position"] = .int(queuePosition(id))
        case .running:
            fields["status"] = "IN_PROGRESS"
            fields["logs"] = logs ? .array([Self.log("Generating video (\(request.frames) frames at \(request.resolution))")]) : .null
        case .completed:
            fields["status"] = "COMPLETED"
            fields["logs"] = logs ? .array([Self.log("Done")]) : .null
            fields["metrics"] = ["inference_time": .double(configuration.runTime.seconds)]
        case .failed(let message):
            fields["status"] = "COMPLETED"
            fields["logs"] = logs ? .array([Self.log(message)]) : .null
            fields["error"] = .string(message)
            fields["error_type"] = "runner_error"
        case .cancelled:
            fields["status"] = "COMPLETED"
            fields["logs"] = .null
            fields["error"] = "Request was cancelled"
            fields["error_type"] = "request_cancelled"
        }
        return Reply(status: 200, body: .object(fields))
    }

    func result(id: String) -> Reply {
        guard let request = requests[id] else { return Self.notFound(id) }
        switch settle(id) {
        case .queued, .running:
            return Reply(status: 400, body: ["detail": "Request is still in progress", "error_type": "request_in_progress"])
        case .failed(let message):
            return Reply(status: 500, body: ["detail": .string(message), "error_type": "runner_error"])
        case .cancelled:
            return Reply(status: 400, body: ["detail": "Request was cancelled", "error_type": "request_cancelled"])
        case .completed:
            let url = "\(baseURL)/cdn/\(id).mp4"
            return Reply(
                status: 200,
                body: [
                    "video": [
                        "url": .string(url), "content_type": "video/mp4", "file_name": .string("\(id).mp4"),
                        "file_size": .int(configuration.outputBytes),
                    ],
                    "seed": .int(request.input["seed"]?.intValue ?? 42),
                    "prompt": request.input["prompt"] ?? .null,
                ]
            )
        }
    }

    func cancel(id: String) -> Reply {
        guard requests[id] != nil else { return Self.notFound(id) }
        switch settle(id) {
        case .queued, .running:
            requests[id]?.cancelled = true
            return Reply(status: 202, body: ["status": "CANCELLATION_REQUESTED"])
        case .completed, .failed, .cancelled:
            return Reply(status: 400, body: ["status": "ALREADY_COMPLETED"])
        }
    }

    /// The request's phase now; a request that completed is charged once, by fal's price list.
    private func settle(_ id: String) -> Phase {
        guard let request = requests[id] else { return .cancelled }
        if request.cancelled { return .cancelled }
        let age = ContinuousClock.now - request.submitted
        if age < configuration.queueTime { return .queued }
        if age < configuration.queueTime + configuration.runTime { return .running }
        if let failure = request.failure { return .failed(failure) }
        if !request.charged {
            requests[id]?.charged = true
            let dollars = FalPriceList.price(frames: request.frames, resolution: request.resolution) ?? 0
            charges.append(Charge(requestID: id, app: request.app, dollars: dollars))
        }
        return .completed
    }

    private func queuePosition(_ id: String) -> Int {
        order.prefix { $0 != id }.filter {
            requests[$0].map { !$0.cancelled && ContinuousClock.now - $0.submitted < configuration.queueTime } ?? false
        }.count
    }

    /// A small valid MP4 header (an `ftyp` box) padded to `outputBytes` with bytes that depend on the request id, so
    /// that two outputs never compare equal by accident. Written in chunks, never whole in memory.
    private func writeOutput(_ id: String) throws {
        let url = outputFile(requestID: id)
        FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        let ftyp: [UInt8] = [0, 0, 0, 0x18] + Array("ftypisom".utf8) + [0, 0, 2, 0] + Array("isomiso2".utf8)
        var seed = UInt8(truncatingIfNeeded: id.utf8.reduce(0) { $0 &+ Int($1) })
        var written = 0
        var chunk = [UInt8]()
        chunk.reserveCapacity(64 << 10)
        chunk.append(contentsOf: ftyp.prefix(configuration.outputBytes))
        while written + chunk.count < configuration.outputBytes || !chunk.isEmpty {
            while chunk.count < 64 << 10, written + chunk.count < configuration.outputBytes {
                seed = seed &* 31 &+ 7
                chunk.append(seed)
            }
            try handle.write(contentsOf: chunk)
            written += chunk.count
            chunk.removeAll(keepingCapacity: true)
            if written >= configuration.outputBytes { break }
        }
    }

    static func handles(baseURL: String, app: String, id: String) -> [String: JSONValue] {
        // Like fal, the handles name the app without its sub-path.
        let root = app.split(separator: "/").prefix(2).joined(separator: "/")
        let base = "\(baseURL)/\(root)/requests/\(id)"
        return [
            "request_id": .string(id), "status_url": .string(base + "/status"), "response_url": .string(base),
            "cancel_url": .string(base + "/cancel"),
        ]
    }

    static func invalid(_ loc: [String], _ message: String, _ type: String) -> Reply {
        Reply(status: 422, body: ["detail": [["loc": .array(loc.map(JSONValue.string)), "msg": .string(message), "type": .string(type)]]])
    }

    static func notFound(_ id: String) -> Reply {
        Reply(status: 404, body: ["detail": .string("Request \(id) not found"), "error_type": "not_found"])
    }

    static func log(_ message: String) -> JSONValue {
        ["message": .string(message), "level": "INFO", "source": "USER", "timestamp": .string(Date().formatted(.iso8601))]
    }
}
