import ArgumentParser
import AsyncHTTPClient
import ControlPlane
import Foundation
import Hummingbird
import JobStore
import Logging
import NIOCore
import NIOHTTP1
import SwarmCore

/// `swarmctl bench`: measures a control plane started in this process on loopback (SQLite in a temporary directory
/// unless `--database` is given), and prints figures and ratios from one run:
/// - submit+take+done throughput with N concurrent HTTP workers, as a ratio to the same server's rate on `/healthz`;
/// - dispatch latency from submit to a long-polling worker receiving the job;
/// - bulk submit of 10,000 jobs through run-batch.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmark the control plane on loopback and print figures.")

    @Option(help: "Concurrent HTTP workers.") var workers = 32
    @Option(help: "Jobs for the throughput run.") var jobs = 4_000
    @Option(help: "Requests for the /healthz baseline.") var baselineRequests = 12_000
    @Option(help: "Alternating rounds the baseline and the throughput run are split into.") var rounds = 4
    @Option(help: "Dispatch-latency samples.") var samples = 200
    @Option(help: "Jobs in the bulk submit.") var bulk = 10_000
    @Option(help: "Database URL (postgres://...); a temporary SQLite file when omitted.") var database: String?

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swarmctl-bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let storage = try StorageLocation(dataDirectory: directory, databaseURL: database)
        var logger = Logger(label: "swarmctl.bench")
        // Stopping the server by cancellation logs an error that says nothing about the measurement.
        logger.logLevel = .critical
        let (store, services) = try storage.open(logger: logger)
        let (ports, portSink) = AsyncStream.makeStream(of: Int.self)
        let app = buildApplication(
            configuration: ControlPlaneConfiguration(longPollTimeout: .seconds(10)), store: store,
            server: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)), logger: logger,
            additionalServices: services, onServerRunning: { portSink.yield($0) }
        )
        var pool = HTTPClient.Configuration()
        pool.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: workers * 3)
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: pool)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw ValidationError("the server did not start") }
            let load = Load(http: http, base: "http://127.0.0.1:\(port)")
            print("control plane benchmark: \(storage), \(workers) concurrent HTTP workers")
            try await measure(load, store: store)
            group.cancelAll()
        }
        try await http.shutdown()
    }

    private func measure(_ load: Load, store: any JobStore) async throws {
        let healthz: @Sendable () async throws -> Void = { try await load.send(.GET, "/healthz") }
        let pipelineStep: @Sendable () async throws -> Void = { try await load.submitTakeDone(worker: "bench") }
        // A run stopped part-way against a PostgreSQL database leaves jobs queued there, which a take would then get
        // before the job it measures.
        try await load.send(.POST, "/v2/swarmui/purge-queue")
        // A short warm-up of both, then alternating rounds: on a shared machine the speed drifts by tens of percent
        // within a minute, and alternating spreads that drift over both sides of the ratio instead of one.
        _ = try await load.elapsed(total: workers * 10, concurrency: workers, healthz)
        _ = try await load.elapsed(total: workers * 4, concurrency: workers, pipelineStep)
        var (baselineTime, pipelineTime) = (Duration.zero, Duration.zero)
        for _ in 0..<rounds {
            baselineTime += try await load.elapsed(total: baselineRequests / rounds, concurrency: workers, healthz)
            pipelineTime += try await load.elapsed(total: jobs / rounds, concurrency: workers, pipelineStep)
        }
        let baseline = Double(baselineRequests / rounds * rounds) / baselineTime.seconds
        let pipeline = Double(jobs / rounds * rounds) / pipelineTime.seconds
        print(String(format: "  /healthz (no-op):            %8.0f requests/s", baseline))
        print(String(format: "  submit+take+done:            %8.0f jobs/s = %.0f requests/s", pipeline, pipeline * 3))
        print(String(format: "  ratio to /healthz:           %8.2f (requests/s, %d alternating rounds; target >= 0.5)", pipeline * 3 / baseline, rounds))

        // The same job lives without HTTP, to show how much of the pipeline's time is the store's.
        let storeTime = try await load.elapsed(total: jobs, concurrency: workers) { try await Self.storeStep(store) }
        let storeRate = Double(jobs) / storeTime.seconds
        print(String(format: "  same jobs, store alone:      %8.0f jobs/s (no HTTP: %.0f%% of a pipeline job's time)", storeRate, pipeline / storeRate * 100))

        var latencies: [Duration] = []
        for _ in 0..<samples { latencies.append(try await load.dispatchLatency()) }
        latencies.sort()
        let percentile = { (p: Double) in latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        print(String(format: "  dispatch latency p50 / p99:  %8.2f / %.2f ms (target p50 < 5 ms)", percentile(0.5).ms, percentile(0.99).ms))

        let bulkTime = try await load.bulkSubmit(count: bulk)
        print(String(format: "  bulk submit (%d jobs):    %8.2f s (target < 1 s)", bulk, bulkTime.seconds))

        // The expiry pass runs every few seconds on the one writer, so its cost with a long queue is a stall of every
        // submit, take and result.
        var expiryTimes: [Duration] = []
        for _ in 0..<20 {
            let started = ContinuousClock.now
            _ = try await store.expire(now: Date(), maxAttempts: 3, retention: .seconds(7 * 86_400))
            expiryTimes.append(ContinuousClock.now - started)
        }
        expiryTimes.sort()
        print(String(format: "  expiry pass, %d queued:   %8.2f ms (p50 of 20)", bulk, expiryTimes[10].ms))
        try await load.send(.POST, "/v2/swarmui/purge-queue")
    }
}

extension Bench {
    /// One job through its whole life in the store itself: enqueued, taken, finished.
    fileprivate static func storeStep(_ store: any JobStore) async throws {
        let now = Date()
        _ = try await store.enqueue([NewJob(id: randomUUIDString(), endpoint: "swarmui", input: ["prompt": "bench"])], now: now)
        // With PostgreSQL another task may have taken this job and its own may not be committed yet: take again.
        while true {
            let taken = try await store.take(endpoint: "swarmui", workerID: "bench-store", limit: 1, leaseUntil: now.addingTimeInterval(60), now: now)
            if let job = taken.first {
                _ = try await store.finish(id: job.id, workerID: "bench-store", result: .completed(output: ["ok": true]), maxAttempts: 3, now: now)
                return
            }
        }
    }
}

/// The benchmark's HTTP traffic against one server.
private struct Load: Sendable {
    let http: HTTPClient
    let base: String

    @discardableResult
    func send(_ method: HTTPMethod, _ path: String, body: JSONValue? = nil, expect: Set<UInt> = [200]) async throws -> JSONValue? {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body.jsonString()))
        }
        let response = try await http.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        guard expect.contains(response.status.code) else {
            throw ValidationError("\(method) \(path): HTTP \(response.status.code) \(String(buffer: bytes).prefix(200))")
        }
        return bytes.readableBytes == 0 ? nil : JSONValue.parse(Data(bytes.readableBytesView))
    }

    /// Runs `operation` `total` times on `concurrency` tasks; returns the time that took.
    func elapsed(total: Int, concurrency: Int, _ operation: @escaping @Sendable () async throws -> Void) async throws -> Duration {
        let started = ContinuousClock.now
        let counter = Counter(limit: total)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    while await counter.claim() { try await operation() }
                }
            }
            try await group.waitForAll()
        }
        return ContinuousClock.now - started
    }

    /// One job through its whole life: submitted, taken by a worker, its result posted.
    func submitTakeDone(worker: String) async throws {
        try await send(.POST, "/v2/swarmui/run", body: ["input": ["prompt": "bench"]])
        guard let job = try await send(.GET, "/v2/swarmui/job-take/\(worker)?gpu=bench", expect: [200]), let id = job["id"]?.stringValue else {
            throw ValidationError("job-take answered without a job")
        }
        try await send(.POST, "/v2/swarmui/job-done/\(worker)/\(id)?gpu=bench&isStream=false", body: ["output": ["ok": true]])
    }

    /// From just before a submit is sent to the moment a worker already waiting in job-take receives the job.
    func dispatchLatency() async throws -> Duration {
        try await withThrowingTaskGroup(of: ContinuousClock.Instant.self) { group in
            group.addTask {
                _ = try await send(.GET, "/v2/swarmui/job-take/latency?gpu=bench")
                return .now
            }
            // Let the take reach its long poll first.
            try await Task.sleep(for: .milliseconds(20))
            let submitted = ContinuousClock.now
            try await send(.POST, "/v2/swarmui/run", body: ["input": ["prompt": "latency"]])
            let received = try await group.next()!
            return received - submitted
        }
    }

    func bulkSubmit(count: Int) async throws -> Duration {
        let jobs = JSONValue.array((0..<count).map { ["input": ["prompt": .string("bulk \($0)"), "steps": 20]] })
        let started = ContinuousClock.now
        let answer = try await send(.POST, "/v2/swarmui/run-batch", body: ["jobs": jobs])
        let elapsed = ContinuousClock.now - started
        guard answer?["ids"]?.arrayValue?.count == count else { throw ValidationError("run-batch did not answer \(count) ids") }
        return elapsed
    }
}

/// Hands out `limit` turns across concurrent tasks.
private actor Counter {
    private var remaining: Int
    init(limit: Int) { remaining = limit }
    func claim() -> Bool {
        guard remaining > 0 else { return false }
        remaining -= 1
        return true
    }
}

extension Duration {
    fileprivate var ms: Double { seconds * 1000 }
}
