// Measures what the worker adds around SwarmUI, against the emulator, in one run:
//   - idle RSS of the real swarm-worker binary (attached, no jobs): the image's build when SWARM_WORKER_BINARY names it
//     (benchmarks/worker-overhead.sh builds it with builder/build-worker.sh), else the one next to this benchmark;
//   - per job: job-take answered → SwarmUI generate request received (in), and SwarmUI's last frame → job-done
//     received (out), p50/p99 over N jobs;
//   - side by side: the same N generations driven by a bare SwarmUIClient loop (no queue, no worker), and the
//     worker's per-job wall time as a ratio to it.
// Run: benchmarks/worker-overhead.sh [jobs], or swift run -c release worker-overhead [jobs]   (default 1000)
import AsyncHTTPClient
import Hummingbird
import JobProtocol
import Logging
import LoopbackServer
import NIOCore
import ServiceLifecycle
import SwarmCore
import SwarmUI
import SwarmUIEmulator
import Synchronization
import Worker

import Foundation

let jobCount = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 1000
let quiet = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })

/// A queue that hands out `count` jobs as fast as they are taken and timestamps each take answer and each job-done.
final class BenchQueue: Sendable {
    struct Marks { var taken: [String: ContinuousClock.Instant] = [:]; var done: [String: ContinuousClock.Instant] = [:]; var next = 0 }
    let count: Int
    let marks = Mutex(Marks())
    let finished = Latch()

    init(count: Int) { self.count = count }

    func application(onListening: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router()
        let input: JSONValue = ["prompt": "benchmark", "model": "OfficialStableDiffusion/sd_xl_base_1.0.safetensors", "steps": 1]
        router.get("v2/bench/job-take/{worker}") { _, _ -> Response in
            let id: String? = self.marks.withLock { marks in
                guard marks.next < self.count else { return nil }
                marks.next += 1
                let id = "job-\(marks.next)"
                marks.taken[id] = .now
                return id
            }
            guard let id else {
                try await Task.sleep(for: .seconds(1))
                return Response(status: .noContent)
            }
            let body = JSONValue.object(["id": .string(id), "input": input]).jsonString()
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.post("v2/bench/job-done/{worker}/{job}") { request, context -> Response in
            let id = try context.parameters.require("job")
            let body = try await request.body.collect(upTo: 64 << 20)
            let isProgress = JSONValue.parse(Data(body.readableBytesView))?["status"] == "IN_PROGRESS"
            if !isProgress {
                let all = self.marks.withLock { marks in
                    marks.done[id] = .now
                    return marks.done.count == self.count
                }
                if all { self.finished.set() }
            }
            return Response(status: .ok)
        }
        router.get("v2/bench/ping/{worker}") { _, _ in Response(status: .ok) }
        router.get("v2/bench/job-stop/{worker}") { _, _ -> Response in
            try await Task.sleep(for: .seconds(1))
            return Response(status: .noContent)
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { await onListening($0.localAddress?.port ?? 0) },
            logger: quiet
        )
    }
}

func percentile(_ values: [Duration], _ p: Double) -> Duration {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .zero }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))]
}

func ms(_ d: Duration) -> String { String(format: "%.3f ms", d.seconds * 1000) }

func rssKiB(pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    return status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") }
}

let volume = FileManager.default.temporaryDirectory.appendingPathComponent("worker-overhead-\(UUID().uuidString.prefix(8))").path
defer { try? FileManager.default.removeItem(atPath: volume) }

try await SwarmUIEmulator.withRunning(configuration: .init(stepDuration: .zero, defaultSteps: 1)) { swarm in
    let httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPQueueClient.httpClientConfiguration())

    // 1. Idle RSS of the real binary, attached to the emulator, polling a queue with no work.
    let idleQueue = BenchQueue(count: 0)
    let idleRSS: Int? = try await withLoopbackServer(idleQueue.application) { port in
        let binary =
            ProcessInfo.processInfo.environment["SWARM_WORKER_BINARY"]
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("swarm-worker").path
        guard FileManager.default.isExecutableFile(atPath: binary) else { return nil }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.environment = [
            "SWARMUI_ATTACH": "1", "SWARMUI_API_URL": swarm.baseURL, "SWARM_QUEUE_URL": "http://127.0.0.1:\(port)/v2/bench",
            "SWARM_WORKER_KEY": "k", "VOLUME_PATH": volume, "WORKER_HEALTH_HOST": "127.0.0.1", "WORKER_HEALTH_PORT": "0", "LOG_LEVEL": "error",
        ]
        try process.run()
        try await Task.sleep(for: .seconds(5))
        let rss = rssKiB(pid: process.processIdentifier)
        process.terminate()
        process.waitUntilExit()
        return rss
    }

    // 2. The worker in this process, N jobs.
    let queue = BenchQueue(count: jobCount)
    let workerWall: Duration = try await withLoopbackServer(queue.application) { port in
        let configuration = try WorkerConfiguration(environment: [
            "SWARMUI_ATTACH": "1", "SWARMUI_API_URL": swarm.baseURL, "SWARM_QUEUE_URL": "http://127.0.0.1:\(port)/v2/bench",
            "SWARM_WORKER_KEY": "k", "SWARM_WORKER_ID": "bench", "VOLUME_PATH": volume,
        ])
        let swarmHTTP = SwarmUIClientBackend.makeHTTPClient(configuration)
        let app = WorkerApplication(
            configuration: configuration,
            swarm: SwarmUIClientBackend(configuration: configuration, httpClient: swarmHTTP, logger: quiet),
            queue: HTTPQueueClient(endpoints: configuration.queue!, httpClient: httpClient, logger: quiet),
            httpClient: httpClient,
            logger: quiet
        )
        let start = ContinuousClock.now
        let group = ServiceGroup(services: try app.services(), logger: quiet)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            await queue.finished.wait()
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        try await swarmHTTP.shutdown()
        return ContinuousClock.now - start
    }

    // 3. The same generations from a bare client: what SwarmUI alone costs per job.
    let bareHTTP = HTTPClient(
        eventLoopGroupProvider: .singleton,
        configuration: SwarmUIConfiguration(baseURL: swarm.baseURL).httpClientConfiguration()
    )
    let client = SwarmUIClient(configuration: SwarmUIConfiguration(baseURL: swarm.baseURL), httpClient: bareHTTP, logger: quiet)
    let bareStart = ContinuousClock.now
    for _ in 0..<jobCount {
        let outputs = try await client.generate(
            SwarmUIGenerationRequest(parameters: ["prompt": "benchmark", "model": "OfficialStableDiffusion/sd_xl_base_1.0.safetensors", "steps": 1])
        ) { _ in }
        for output in outputs { for try await _ in try await client.fetchOutput(output.reference).body {} }
    }
    let bareWall = ContinuousClock.now - bareStart
    try await bareHTTP.shutdown()
    try await httpClient.shutdown()

    // Pair the emulator's events with the jobs: one job at a time, so request k is job k.
    let events = await swarm.emulator.observe().events
    let received = events.filter { $0.kind == .generateReceived }.sorted { $0.requestID < $1.requestID }.map(\.at)
    let lastFrames = events.filter { $0.kind == .lastFrameSent }.sorted { $0.requestID < $1.requestID }.map(\.at)
    let marks = queue.marks.withLock { $0 }
    var inbound: [Duration] = [], outbound: [Duration] = []
    for k in 0..<jobCount {
        let id = "job-\(k + 1)"
        guard let taken = marks.taken[id], let done = marks.done[id], k < received.count, k < lastFrames.count else { continue }
        inbound.append(received[k] - taken)
        outbound.append(done - lastFrames[k])
    }

    print("worker-overhead: \(jobCount) jobs against the SwarmUI emulator (zero-time steps), loopback")
    let measured = ProcessInfo.processInfo.environment["SWARM_WORKER_BINARY"] == nil ? "this build's swarm-worker" : "the image's swarm-worker build"
    print(
        "  idle RSS (\(measured), attached, no jobs): \(idleRSS.map { String(format: "%.1f MiB", Double($0) / 1024) } ?? "n/a (build the swarm-worker product first)")  target ≤ 20 MiB"
    )
    print("  take answered → generate request:  p50 \(ms(percentile(inbound, 0.5)))  p99 \(ms(percentile(inbound, 0.99)))  (targets 2 ms / 10 ms)")
    print("  last frame → job-done received:   p50 \(ms(percentile(outbound, 0.5)))  p99 \(ms(percentile(outbound, 0.99)))  (targets 2 ms / 10 ms)")
    print(
        "  per job, worker end to end: \(ms(workerWall / jobCount))   bare SwarmUI client: \(ms(bareWall / jobCount))   ratio \(String(format: "%.2f", workerWall.seconds / bareWall.seconds))"
    )
}
