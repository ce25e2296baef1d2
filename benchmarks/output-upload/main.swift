// Measures one large output (1 GiB by default) going from the SwarmUI emulator to S3-compatible storage through the
// real swarm-worker binary, which signs its own uploads (RunPod's BUCKET_* variables), in one run:
//   - the worker's peak RSS: VmHWM of the swarm-worker process, read from /proc before it exits (target < 64 MiB);
//   - its upload throughput: the job's own `timings_ms.fetching` (SwarmUI → storage, multipart, completed), as a
//     ratio to `curl -T` of the same file (the emulator's, on disk) to a presigned PUT URL of the same server, right
//     after it in the same round (target ≥ 0.8).
// Every round checks the stored object: its size in the bucket and the worker's sha256 against the file on disk.
// Run: benchmarks/output-upload.sh   (builds release, starts moto on loopback), or by hand:
//   .build/release/output-upload --s3 http://127.0.0.1:PORT [--bytes N] [--rounds N]
import AsyncHTTPClient
import ControlPlane
import Crypto
import Hummingbird
import JobStore
import Logging
import LoopbackServer
import NIOCore
import NIOHTTP1
import Storage
import SwarmCore
import SwarmUIEmulator
import Synchronization

import Foundation

struct Options {
    var s3 = ""
    var bytes = 1 << 30
    var rounds = 2

    init(_ arguments: [String]) throws {
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--s3": s3 = iterator.next() ?? ""
            case "--bytes": bytes = iterator.next().flatMap(Int.init) ?? bytes
            case "--rounds": rounds = max(1, iterator.next().flatMap(Int.init) ?? rounds)
            default: throw BenchError("unknown argument \(argument); usage: output-upload --s3 URL [--bytes N] [--rounds N]")
            }
        }
        guard !s3.isEmpty else { throw BenchError("--s3 URL of an S3-compatible server is required (scripts/s3-server.sh prints one)") }
    }
}

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

let options = try Options(Array(CommandLine.arguments.dropFirst()))
let quiet = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
let model = "OfficialStableDiffusion/sd_xl_base_1.0.safetensors"

/// A queue speaking RunPod's worker routes: hands out the jobs it is given, one per take, and keeps each final result.
final class BenchQueue: Sendable {
    private struct State {
        var pending: [String] = []
        var results: [String: JSONValue] = [:]
    }

    private let state = Mutex(State())

    func enqueue(_ id: String) { state.withLock { $0.pending.append(id) } }
    func result(_ id: String) -> JSONValue? { state.withLock { $0.results[id] } }

    func application(onListening: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router()
        router.get("v2/bench/job-take/{worker}") { _, _ -> Response in
            guard let id = self.state.withLock({ $0.pending.isEmpty ? nil : $0.pending.removeFirst() }) else {
                try await Task.sleep(for: .milliseconds(200))
                return Response(status: .noContent)
            }
            let body: JSONValue = ["id": .string(id), "input": ["prompt": "a large output", "model": .string(model), "steps": 1]]
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body.jsonString())))
        }
        router.post("v2/bench/job-done/{worker}/{job}") { request, context -> Response in
            let id = try context.parameters.require("job")
            let body = JSONValue.parse(Data(try await request.body.collect(upTo: 16 << 20).readableBytesView)) ?? .null
            if body["status"] != "IN_PROGRESS" { self.state.withLock { $0.results[id] = body } }
            return Response(status: .ok)
        }
        router.get("v2/bench/ping/{worker}") { _, _ in Response(status: .ok) }
        return Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { await onListening($0.localAddress?.port ?? 0) },
            logger: quiet
        )
    }
}

/// A field of /proc/<pid>/status in KiB (VmHWM: the peak resident set).
func statusKiB(pid: Int32, _ field: String) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    return status.split(separator: "\n").first { $0.hasPrefix(field + ":") }.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") }
}

func sha256(ofFile path: String) throws -> String {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    var hasher = SHA256()
    while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
    return hasher.finalize().map { String(format: "%02x", $0) }.joined()
}

/// Wall time of `curl -T file url` (a presigned PUT), failing unless it answers 200.
func curlPut(_ file: String, to url: String) throws -> Duration {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", file, url]
    let output = Pipe()
    process.standardOutput = output
    let start = ContinuousClock.now
    try process.run()
    let status = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    let elapsed = ContinuousClock.now - start
    guard process.terminationStatus == 0, status == "200" else { throw BenchError("curl -T answered \(status) (exit \(process.terminationStatus))") }
    return elapsed
}

func mibPerSecond(_ bytes: Int, _ time: Duration) -> String { String(format: "%.1f MiB/s", Double(bytes) / 1_048_576 / time.seconds) }
func formatSeconds(_ time: Duration) -> String { String(format: "%.2f s", time.seconds) }

/// How one storage is driven: where the worker is told to store outputs, how a job is submitted and its final output
/// read, how a stored object is checked and removed, and where curl PUTs the same file.
struct Target: Sendable {
    var label: String
    var workerEnvironment: [String: String]
    /// Submits a job (with this id where the queue takes one) and returns its id.
    var submit: @Sendable (String) async throws -> String
    /// The job's final output, nil while it runs.
    var output: @Sendable (String) async throws -> JSONValue?
    /// Checks the stored object of `key` holds `bytes`, then removes it.
    var checkAndRemove: @Sendable (_ key: String, _ bytes: Int) async throws -> Void
    /// A presigned (or signed) PUT URL for `key`.
    var putURL: @Sendable (_ key: String) -> String
    /// An extra measurement with the round's file, printed under the round.
    var afterRound: (@Sendable (_ path: String, _ id: String) async throws -> String)? = nil
}

/// A file as 1 MiB buffers, read as they are sent.
struct FileBytes: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let path: String

    struct AsyncIterator: AsyncIteratorProtocol {
        let handle: FileHandle?
        mutating func next() async throws -> ByteBuffer? {
            guard let handle, let data = try handle.read(upToCount: 1 << 20), !data.isEmpty else { return nil }
            return ByteBuffer(bytes: data)
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(handle: FileHandle(forReadingAtPath: path)) }
}

/// The same file, multipart from this process with the worker's uploader: how long the parts take and how long the
/// server then takes to assemble them (CompleteMultipartUpload and the size check), which a single PUT never pays.
func multipartReference(_ path: String, key: String, bytes: Int, storage: S3Storage) async throws -> String {
    let target = try await storage.uploadTarget(key: key, size: Int64(bytes), contentType: "image/png", completeURL: nil)
    let start = ContinuousClock.now
    let result = try await OutputUploader(httpClient: .shared).upload(target) { FileBytes(path: path) }
    let sent = ContinuousClock.now
    _ = try await storage.completeUpload(target, parts: result.parts)
    let completed = ContinuousClock.now
    try await storage.deleteObject(key: key)
    return "the same file multipart from the benchmark process: parts \(formatSeconds(sent - start)), then CompleteMultipartUpload "
        + "and HEAD \(formatSeconds(completed - sent))"
}

/// Runs the swarm-worker binary against `target` for `rounds` jobs; per round, the worker's upload time (the job's
/// `timings_ms.fetching`) and then `curl -T` of the same file to the same server. Prints the figures.
func measure(_ target: Target, rounds: Int, bytes: Int, swarmUI: String, swarmRoot: String, volume: String) async throws {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("swarm-worker").path
    guard FileManager.default.isExecutableFile(atPath: binary) else { throw BenchError("no \(binary): build the swarm-worker product first") }
    let worker = Process()
    worker.executableURL = URL(fileURLWithPath: binary)
    var environment = target.workerEnvironment.merging([
        "SWARMUI_ATTACH": "1", "SWARMUI_API_URL": swarmUI, "VOLUME_PATH": volume,
        "WORKER_HEALTH_HOST": "127.0.0.1", "WORKER_HEALTH_PORT": "0", "LOG_LEVEL": "warning",
        // curl -T sends the emulator's file after the job: the worker must not delete SwarmUI's copy once delivered.
        "SWARM_KEEP_SWARMUI_OUTPUTS": "1",
    ]) { $1 }
    // glibc's allocator settings reach the worker, to compare its memory under them (MALLOC_ARENA_MAX=2 ...).
    for (name, value) in ProcessInfo.processInfo.environment where name.hasPrefix("MALLOC_") { environment[name] = value }
    worker.environment = environment
    try worker.run()
    defer {
        worker.terminate()
        worker.waitUntilExit()
    }
    // Attached and polling before the first job, so that the idle figure is the worker's own.
    try await Task.sleep(for: .seconds(3))
    let idleHWM = statusKiB(pid: worker.processIdentifier, "VmHWM")
    var workerTimes: [Duration] = []
    var curlTimes: [Duration] = []
    var peakHWM = 0
    print("\(target.label):")
    for round in 1...rounds {
        let id = try await target.submit("job-\(UUID().uuidString.prefix(8).lowercased())")
        let deadline = ContinuousClock.now + .seconds(1800)
        var result: JSONValue?
        while result == nil {
            guard worker.isRunning else { throw BenchError("swarm-worker exited with status \(worker.terminationStatus)") }
            guard ContinuousClock.now < deadline else { throw BenchError("job \(id) did not finish within 30 minutes") }
            try await Task.sleep(for: .milliseconds(100))
            result = try await target.output(id)
        }
        peakHWM = max(peakHWM, statusKiB(pid: worker.processIdentifier, "VmHWM") ?? 0)
        guard let output = result, let file = output["files"]?.arrayValue?.first, let name = file["name"]?.stringValue,
            let fetching = output["timings_ms"]?["fetching"]?.intValue
        else { throw BenchError("job \(id) did not complete with a stored file: \(result?.jsonString().prefix(600) ?? "")") }
        let workerTime = Duration.milliseconds(fetching)
        // The emulator's file on disk is the ground truth for the bytes and the hash, and what curl sends.
        guard let path = try findFile(named: name, under: swarmRoot) else { throw BenchError("cannot find the emulator's \(name)") }
        guard file["bytes"]?.intValue == bytes, try sha256(ofFile: path) == file["sha256"]?.stringValue else {
            throw BenchError("job \(id) reported \(file.jsonString()), which does not match the emulator's file")
        }
        try await target.checkAndRemove(ObjectKey.output(endpoint: "swarmui", jobID: id, fileName: name), bytes)
        let curlKey = "swarmui/curl-\(id)/\(name)"
        let curlTime = try curlPut(path, to: target.putURL(curlKey))
        try await target.checkAndRemove(curlKey, bytes)
        let extra = try await target.afterRound?(path, id)
        try? FileManager.default.removeItem(atPath: path)
        workerTimes.append(workerTime)
        curlTimes.append(curlTime)
        print(
            "  round \(round): swarm-worker \(formatSeconds(workerTime)) (\(mibPerSecond(bytes, workerTime)))   "
                + "curl -T \(formatSeconds(curlTime)) (\(mibPerSecond(bytes, curlTime)))   ratio \(String(format: "%.2f", curlTime.seconds / workerTime.seconds))"
        )
        if let extra { print("    \(extra)") }
    }
    let workerTotal = workerTimes.reduce(.zero, +)
    let curlTotal = curlTimes.reduce(.zero, +)
    print(
        "  swarm-worker peak RSS (VmHWM): \(String(format: "%.1f MiB", Double(peakHWM) / 1024))  (\(String(format: "%.1f MiB", Double(idleHWM ?? 0) / 1024)) before the first job)   target < 64 MiB"
    )
    print(
        "  throughput ratio, swarm-worker / curl -T, over \(rounds) round(s): \(String(format: "%.2f", curlTotal.seconds / workerTotal.seconds))   target ≥ 0.8"
    )
}

/// A client request to the control plane: status and JSON body.
func controlPlane(_ method: HTTPMethod, _ url: String, body: JSONValue? = nil) async throws -> JSONValue {
    var request = HTTPClientRequest(url: url)
    request.method = method
    request.headers.add(name: "Authorization", value: "Bearer bench-client")
    if let body {
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: body.jsonString()))
    }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
    let value = JSONValue.parse(Data(try await response.body.collect(upTo: 16 << 20).readableBytesView)) ?? .null
    guard response.status.code < 300 else { throw BenchError("control plane \(url): HTTP \(response.status.code) \(value.jsonString())") }
    return value
}

func findFile(named name: String, under root: String) throws -> String? {
    let enumerator = FileManager.default.enumerator(atPath: root)
    while let relative = enumerator?.nextObject() as? String {
        if relative.hasSuffix("/" + name) || relative == name { return root + "/" + relative }
    }
    return nil
}

let work = FileManager.default.temporaryDirectory.appendingPathComponent("output-upload-\(UUID().uuidString.prefix(8))").path
defer { try? FileManager.default.removeItem(atPath: work) }
let jobInput: JSONValue = ["prompt": "a large output", "model": .string(model), "steps": 1]
print("output-upload: one \(options.bytes)-byte output per job from the SwarmUI emulator, through the swarm-worker binary, loopback")

let emulatorConfiguration = SwarmUIEmulator.Configuration(
    stepDuration: .zero,
    defaultSteps: 1,
    largeOutputBytes: options.bytes,
    dataDirectory: work + "/swarmui"
)
try await SwarmUIEmulator.withRunning(configuration: emulatorConfiguration) { swarm in
    // 1. S3 (moto), the worker signing its own uploads (RunPod's BUCKET_* variables): multipart above 64 MiB.
    let bucket = "swarm-bench-" + UUID().uuidString.prefix(8).lowercased()
    let storage = S3Storage(
        configuration: S3Configuration(
            endpoint: try S3Endpoint(url: options.s3),
            bucket: bucket,
            region: "us-east-1",
            credentials: S3Credentials(accessKeyID: "bench", secretAccessKey: Secret("bench"))
        ),
        httpClient: .shared
    )
    // moto checks no signatures: a bare PUT creates the bucket.
    var create = HTTPClientRequest(url: "\(options.s3)/\(bucket)")
    create.method = .PUT
    guard try await HTTPClient.shared.execute(create, timeout: .seconds(30)).status == .ok else {
        throw BenchError("cannot create bucket \(bucket) at \(options.s3)")
    }
    let queue = BenchQueue()
    try await withLoopbackServer(queue.application) { port in
        let queueURL = "http://127.0.0.1:\(port)/v2/bench"
        let s3 = Target(
            label: "S3 at \(options.s3) (moto), multipart in 8 MiB parts, CompleteMultipartUpload included",
            workerEnvironment: [
                "RUNPOD_WEBHOOK_GET_JOB": "\(queueURL)/job-take/$RUNPOD_POD_ID",
                "RUNPOD_WEBHOOK_POST_OUTPUT": "\(queueURL)/job-done/$RUNPOD_POD_ID/$ID",
                "RUNPOD_WEBHOOK_PING": "\(queueURL)/ping/$RUNPOD_POD_ID", "RUNPOD_POD_ID": "bench", "RUNPOD_AI_API_KEY": "bench",
                "BUCKET_ENDPOINT_URL": options.s3, "BUCKET_ACCESS_KEY_ID": "bench", "BUCKET_SECRET_ACCESS_KEY": "bench", "SWARM_S3_BUCKET": bucket,
            ],
            submit: { id in
                queue.enqueue(id)
                return id
            },
            output: { id in queue.result(id).map { $0["output"] ?? $0 } },
            checkAndRemove: { key, bytes in
                guard try await storage.head(key: key)?.bytes == Int64(bytes) else {
                    throw BenchError("the object \(key) does not hold \(bytes) bytes")
                }
                // moto keeps objects in memory.
                try await storage.deleteObject(key: key)
            },
            putURL: { key in storage.presignPut(key: key, contentType: nil) },
            afterRound: { path, id in
                try await multipartReference(path, key: "swarmui/reference-\(id)/output.png", bytes: options.bytes, storage: storage)
            }
        )
        try await measure(
            s3,
            rounds: options.rounds,
            bytes: options.bytes,
            swarmUI: swarm.baseURL,
            swarmRoot: work + "/swarmui",
            volume: work + "/volume-s3"
        )
    }

    // 2. The control plane's local storage (SWARM_STORAGE=local): the worker PUTs each output to a signed link.
    let directory = work + "/outputs"
    let secret = Secret("bench-signing")
    let settings = OutputStorageSettings(configuration: StorageConfiguration(backend: .local(directory: directory)), signingSecret: secret)
    let configuration = ControlPlaneConfiguration(clientKeys: [Secret("bench-client")], workerKeys: [Secret("bench-worker")], outputs: settings)
    let store = try SQLiteJobStore.inMemory()
    try await withLoopbackServer({ @Sendable onListening in
        buildApplication(
            configuration: configuration,
            store: store,
            server: .init(address: .hostname("127.0.0.1", port: 0)),
            logger: quiet,
            onServerRunning: onListening
        )
    }) { port in
        let base = "http://127.0.0.1:\(port)"
        let local = LocalStorage(directory: directory, baseURL: base, signingSecret: secret)
        let target = Target(
            label: "the control plane's local storage at \(base) (swarmctl serve, SWARM_STORAGE=local), one streamed PUT",
            workerEnvironment: ["SWARM_QUEUE_URL": "\(base)/v2/swarmui", "SWARM_WORKER_KEY": "bench-worker", "SWARM_WORKER_ID": "bench"],
            submit: { _ in
                let answer = try await controlPlane(.POST, "\(base)/v2/swarmui/run", body: ["input": jobInput])
                guard let id = answer["id"]?.stringValue else { throw BenchError("run answered without an id: \(answer.jsonString())") }
                return id
            },
            output: { id in
                let status = try await controlPlane(.GET, "\(base)/v2/swarmui/status/\(id)")
                if status["status"] == "FAILED" { throw BenchError("job \(id) failed: \(status.jsonString())") }
                return status["status"] == "COMPLETED" ? status["output"] : nil
            },
            checkAndRemove: { key, bytes in
                guard try local.head(key: key)?.bytes == Int64(bytes) else { throw BenchError("the file \(key) does not hold \(bytes) bytes") }
                try local.remove(key: key)
            },
            putURL: { key in local.signedURL(method: "PUT", key: key) }
        )
        try await measure(
            target,
            rounds: options.rounds,
            bytes: options.bytes,
            swarmUI: swarm.baseURL,
            swarmRoot: work + "/swarmui",
            volume: work + "/volume-local"
        )
    }
}
