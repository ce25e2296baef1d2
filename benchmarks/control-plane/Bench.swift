import ArgumentParser
import ControlPlane
import Foundation
import Hummingbird
import JobStore
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SwarmCore

/// `control-plane-bench` (benchmarks/control-plane.sh): measures a control plane started in this process on loopback (SQLite in a temporary directory
/// unless `--database` is given), and prints figures and ratios from one run:
/// - submit+take+done throughput with N concurrent HTTP workers, as a ratio to the same server's rate on `/healthz`;
/// - dispatch latency from submit to a long-polling worker receiving the job;
/// - bulk submit of 10,000 jobs through run-batch.
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "control-plane-bench",
        abstract: "Benchmark the control plane on loopback and print figures."
    )

    @Option(help: "Concurrent HTTP workers.") var workers = 32
    @Option(help: "Jobs for the throughput run.") var jobs = 12_000
    @Option(help: "Requests for the /healthz baseline.") var baselineRequests = 40_000
    @Option(help: "Alternating rounds the baseline and the throughput run are split into.") var rounds = 8
    @Option(help: "Dispatch-latency samples.") var samples = 200
    @Option(help: "Jobs in the bulk submit.") var bulk = 10_000
    @Option(help: "Database URL (postgres://...); a temporary SQLite file when omitted.") var database: String?
    @Flag(help: "Measure fal status polls (200 clients at 0.1 s) against /healthz instead (see BenchFal.swift).") var falStatus = false

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("swarmctl-bench-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let storage = try DatabaseLocation(dataDirectory: directory, databaseURL: database)
        var logger = Logger(label: "swarmctl.bench")
        // Stopping the server by cancellation logs an error that says nothing about the measurement.
        logger.logLevel = .critical
        let (store, services) = try storage.open(logger: logger)
        let (ports, portSink) = AsyncStream.makeStream(of: Int.self)
        let app = buildApplication(
            configuration: ControlPlaneConfiguration(longPollTimeout: .seconds(10)),
            store: store,
            server: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0)),
            logger: logger,
            additionalServices: services,
            onServerRunning: { portSink.yield($0) }
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw ValidationError("the server did not start") }
            let load = Load(port: port)
            if falStatus {
                print("fal status benchmark: \(storage)")
                try await measureFalStatus(load)
            } else {
                print("control plane benchmark: \(storage), \(workers) concurrent HTTP workers")
                try await measure(load, store: store)
            }
            group.cancelAll()
        }
    }

    private func measure(_ load: Load, store: any JobStore) async throws {
        let healthz: @Sendable (BenchConnection) async throws -> Void = { try await $0.send(.GET, "/healthz") }
        let pipelineStep: @Sendable (BenchConnection) async throws -> Void = { try await $0.submitTakeDone(worker: "bench") }
        // A run stopped part-way against a PostgreSQL database leaves jobs queued there, which a take would then get
        // before the job it measures.
        _ = try await load.connected { try await $0.send(.POST, "/v2/swarmui/purge-queue") }
        // A short warm-up of both, then alternating rounds: on a shared machine the speed drifts by tens of percent
        // within a minute, and alternating spreads that drift over both sides of the ratio instead of one.
        _ = try await load.elapsed(total: workers * 10, concurrency: workers, healthz)
        _ = try await load.elapsed(total: workers * 4, concurrency: workers, pipelineStep)
        let (roundRequests, roundJobs) = (baselineRequests / rounds, jobs / rounds)
        var (baselineTime, pipelineTime) = (Duration.zero, Duration.zero)
        var roundRatios: [Double] = []
        for _ in 0..<rounds {
            let baselineRound = try await load.elapsed(total: roundRequests, concurrency: workers, healthz)
            let pipelineRound = try await load.elapsed(total: roundJobs, concurrency: workers, pipelineStep)
            (baselineTime, pipelineTime) = (baselineTime + baselineRound, pipelineTime + pipelineRound)
            roundRatios.append(Double(roundJobs * 3) / pipelineRound.seconds / (Double(roundRequests) / baselineRound.seconds))
        }
        let baseline = Double(roundRequests * rounds) / baselineTime.seconds
        let pipeline = Double(roundJobs * rounds) / pipelineTime.seconds
        print(String(format: "  /healthz (no-op):            %8.0f requests/s", baseline))
        print(String(format: "  submit+take+done:            %8.0f jobs/s = %.0f requests/s", pipeline, pipeline * 3))
        print(
            String(format: "  ratio to /healthz:           %8.2f (requests/s, %d alternating rounds; target >= 0.5)", pipeline * 3 / baseline, rounds)
        )
        // How far the machine's drift moved the ratio within this run.
        print(String(format: "  ratio of single rounds:      %8.2f to %.2f", roundRatios.min() ?? 0, roundRatios.max() ?? 0))

        // The same job lives without HTTP, to show how much of the pipeline's time is the store's.
        let storeTime = try await concurrently(total: jobs, concurrency: workers) { turns in
            while await turns.claim() { try await Self.storeStep(store) }
        }
        let storeRate = Double(jobs) / storeTime.seconds
        print(
            String(
                format: "  same jobs, store alone:      %8.0f jobs/s (no HTTP: %.0f%% of a pipeline job's time)",
                storeRate,
                pipeline / storeRate * 100
            )
        )

        var latencies: [Duration] = []
        try await load.connected { submitter in
            for _ in 0..<samples { latencies.append(try await load.dispatchLatency(submitter: submitter)) }
        }
        latencies.sort()
        let percentile = { (p: Double) in latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        print(String(format: "  dispatch latency p50 / p99:  %8.2f / %.2f ms (target p50 < 5 ms)", percentile(0.5).ms, percentile(0.99).ms))

        let bulkTime = try await load.connected { try await $0.bulkSubmit(count: bulk) }
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
        _ = try await load.connected { try await $0.send(.POST, "/v2/swarmui/purge-queue") }
    }
}

extension Bench {
    /// One job through its whole life in the store itself: enqueued, taken, finished.
    fileprivate static func storeStep(_ store: any JobStore) async throws {
        let now = Date()
        _ = try await store.enqueue([NewJob(id: timeOrderedUUIDString(), endpoint: "swarmui", input: ["prompt": "bench"])], now: now)
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

/// The benchmark's HTTP traffic against one server: each concurrent worker on a keep-alive connection of its own.
struct Load: Sendable {
    let port: Int

    /// Runs `operation` `total` times on `concurrency` tasks, each with its own connection; returns the time that took.
    func elapsed(total: Int, concurrency: Int, _ operation: @escaping @Sendable (BenchConnection) async throws -> Void) async throws -> Duration {
        try await concurrently(total: total, concurrency: concurrency) { turns in
            try await BenchConnection.with(port: port) { connection in
                while await turns.claim() { try await operation(connection) }
            }
        }
    }

    /// Runs `body` with one connection of its own.
    func connected<T>(_ body: (BenchConnection) async throws -> T) async throws -> T {
        try await BenchConnection.with(port: port, body)
    }

    /// From just before a submit is sent to the moment a worker already waiting in job-take receives the job.
    func dispatchLatency(submitter: BenchConnection) async throws -> Duration {
        try await withThrowingTaskGroup(of: ContinuousClock.Instant.self) { group in
            group.addTask {
                _ = try await connected { try await $0.send(.GET, "/v2/swarmui/job-take/latency?gpu=bench") }
                return .now
            }
            // Let the take reach its long poll first.
            try await Task.sleep(for: .milliseconds(20))
            let submitted = ContinuousClock.now
            try await submitter.send(.POST, "/v2/swarmui/run", body: #"{"input": {"prompt": "latency"}}"#)
            let received = try await group.next()!
            return received - submitted
        }
    }
}

extension BenchConnection {
    /// One job through its whole life: submitted, taken by a worker, its result posted.
    /// Only the job-take answer is read: the job's id is needed, and parsing the other answers would cost the shared
    /// CPU for the client's sake, as encoding the same two bodies again for every job would.
    func submitTakeDone(worker: String) async throws {
        try await send(.POST, "/v2/swarmui/run", body: #"{"input": {"prompt": "bench"}}"#)
        guard let id = try await send(.GET, "/v2/swarmui/job-take/\(worker)?gpu=bench").json?["id"]?.stringValue else {
            throw ValidationError("job-take answered without a job")
        }
        try await send(.POST, "/v2/swarmui/job-done/\(worker)/\(id)?gpu=bench&isStream=false", body: #"{"output": {"ok": true}}"#)
    }

    func bulkSubmit(count: Int) async throws -> Duration {
        let jobs = JSONValue.array((0..<count).map { ["input": ["prompt": .string("bulk \($0)"), "steps": 20]] })
        let started = ContinuousClock.now
        let answer = try await send(.POST, "/v2/swarmui/run-batch", body: JSONValue.object(["jobs": jobs]).jsonString()).json
        let elapsed = ContinuousClock.now - started
        guard answer?["ids"]?.arrayValue?.count == count else { throw ValidationError("run-batch did not answer \(count) ids") }
        return elapsed
    }
}

/// A keep-alive HTTP/1.1 connection that writes each request whole, head, body and end in one write, as curl,
/// requests and aiohttp (the SDK's clients) send a small request. AsyncHTTPClient writes a POST's head and body in
/// separate system calls (0.75 more writes a request in a pipeline run), and its pool, URL parsing and tracing cost
/// the shared CPU more per request than the server's no-op route: a load that heavy, and dearer for POSTs than for
/// GETs, skews the ratio. Used by one task at a time.
final class BenchConnection {
    private var responses: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
    private let requests: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>

    private init(
        responses: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator,
        requests: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>
    ) {
        self.responses = responses
        self.requests = requests
    }

    static func with<T>(port: Int, _ body: (BenchConnection) async throws -> T) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(60)))
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                try channel.pipeline.syncOperations.addHandler(CloseWhenIdle())
                return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
            }
        }
        return try await channel.executeThenClose { inbound, outbound in
            try await body(BenchConnection(responses: inbound.makeAsyncIterator(), requests: outbound))
        }
    }

    /// Sends one request (`body` is JSON text) and reads its whole answer; throws unless the status is 200.
    @discardableResult
    func send(_ method: HTTPMethod, _ path: String, body: String? = nil) async throws -> ByteBuffer {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: "127.0.0.1")
        var parts: [HTTPClientRequestPart] = [.head(head)]
        if let body {
            let bytes = ByteBuffer(string: body)
            head.headers.add(name: "Content-Type", value: "application/json")
            head.headers.add(name: "Content-Length", value: String(bytes.readableBytes))
            parts = [.head(head), .body(.byteBuffer(bytes))]
        }
        do {
            try await requests.write(contentsOf: parts + [.end(nil)])
        } catch {
            throw ValidationError("\(method) \(path): \(error)")
        }
        var status: HTTPResponseStatus?
        var answer = ByteBuffer()
        while let part = try await responses.next() {
            switch part {
            case .head(let responseHead): status = responseHead.status
            case .body(var chunk): answer.writeBuffer(&chunk)
            case .end:
                guard let status, status == .ok else {
                    throw ValidationError("\(method) \(path): HTTP \(status?.code ?? 0) \(String(buffer: answer).prefix(200))")
                }
                return answer
            }
        }
        throw ValidationError("\(method) \(path): the server closed the connection")
    }
}

extension ByteBuffer {
    fileprivate var json: JSONValue? { readableBytes == 0 ? nil : JSONValue.parse(Data(readableBytesView)) }
}

/// Closes a connection that has read nothing for its `IdleStateHandler`'s read timeout: a server that stops answering
/// then fails the benchmark ("the server closed the connection") instead of hanging it.
private final class CloseWhenIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = HTTPClientResponsePart

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}

/// Runs `worker` on `concurrency` tasks that share `total` turns; returns the time that took.
private func concurrently(total: Int, concurrency: Int, _ worker: @escaping @Sendable (Counter) async throws -> Void) async throws -> Duration {
    let started = ContinuousClock.now
    let turns = Counter(limit: total)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<concurrency { group.addTask { try await worker(turns) } }
        try await group.waitForAll()
    }
    return ContinuousClock.now - started
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
    var ms: Double { seconds * 1000 }
}
