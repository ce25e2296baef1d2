import Foundation
import NIOCore
import NIOHTTP1
import SwarmCore

/// `control-plane-bench --fal-status` (benchmarks/fal-status.sh): fal clients poll a request's status every 0.1 s (fal-client's default), so a
/// server with 200 requests waiting answers 2,000 status calls a second while doing nothing else. Measured side by side
/// with the same server's no-op `/healthz`, in the same run:
/// - paced: 200 clients, one poll each per 0.1 s, for `--fal-seconds`; polls answered per second and latency;
/// - unpaced: the same 200 connections as fast as they go, status against /healthz in alternating rounds (the ratio).
extension Bench {
    static let falClients = 200
    static let falInterval = Duration.milliseconds(100)

    func measureFalStatus(_ load: Load) async throws {
        let seconds = 10
        // One queued request per client, as 200 app users waiting for their videos.
        var paths: [String] = []
        try await load.connected { connection in
            let body = #"{"prompt": "bench", "image_url": "https://example.com/a.png"}"#
            for _ in 0..<Self.falClients {
                let answer = try await connection.send(.POST, "/fal-ai/wan/v2.2-a14b/image-to-video", body: body)
                guard let id = try JSONValue(parsing: Data(answer.readableBytesView))["request_id"]?.stringValue else {
                    throw BenchFalError("the fal submit answered without a request_id")
                }
                paths.append("/fal-ai/wan/requests/\(id)/status?logs=1")
            }
        }
        let status = paths
        let healthz = Array(repeating: "/healthz", count: Self.falClients)
        print("  \(Self.falClients) clients, one request each every 100 ms, \(seconds) s per side")
        for (name, targets) in [("/healthz", healthz), ("fal status", status)] {
            let result = try await paced(load, paths: targets, duration: .seconds(seconds))
            print(
                String(
                    format: "  paced %-12@ %7.0f requests/s (wanted %d), latency p50 %.2f ms, p99 %.2f ms, max %.2f ms",
                    name as NSString,
                    result.rate,
                    Self.falClients * 10,
                    result.p50.ms,
                    result.p99.ms,
                    result.max.ms
                )
            )
        }
        var (healthzCount, statusCount) = (0, 0)
        for _ in 0..<4 {
            healthzCount += try await unpaced(load, paths: healthz, duration: .seconds(2))
            statusCount += try await unpaced(load, paths: status, duration: .seconds(2))
        }
        print(
            String(
                format:
                    "  unpaced, 200 connections:   /healthz %.0f requests/s, fal status %.0f requests/s, ratio %.2f (4 alternating rounds of 2 s)",
                Double(healthzCount) / 8,
                Double(statusCount) / 8,
                Double(statusCount) / Double(max(1, healthzCount))
            )
        )
        _ = try await load.connected { try await $0.send(.POST, "/v2/swarmui/purge-queue") }
    }

    /// Each client sends one request per interval on its own connection; returns the answered rate and latencies.
    private func paced(_ load: Load, paths: [String], duration: Duration) async throws -> (rate: Double, p50: Duration, p99: Duration, max: Duration)
    {
        let started = ContinuousClock.now
        let end = started + duration
        let latencies = try await withThrowingTaskGroup(of: [Duration].self) { group in
            for (index, path) in paths.enumerated() {
                group.addTask {
                    try await BenchConnection.with(port: load.port) { connection in
                        var samples: [Duration] = []
                        // Spread the clients' phases over the interval, as independent pollers are.
                        var next = started + Self.falInterval * (Double(index) / Double(paths.count))
                        try await Task.sleep(until: next)
                        while next < end {
                            let sent = ContinuousClock.now
                            try await connection.send(.GET, path)
                            samples.append(ContinuousClock.now - sent)
                            next += Self.falInterval
                            try await Task.sleep(until: max(next, .now))
                        }
                        return samples
                    }
                }
            }
            var all: [Duration] = []
            for try await samples in group { all += samples }
            return all.sorted()
        }
        let elapsed = ContinuousClock.now - started
        let at = { (p: Double) in latencies.isEmpty ? .zero : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        return (Double(latencies.count) / elapsed.seconds, at(0.5), at(0.99), latencies.last ?? .zero)
    }

    /// Each client sends requests back to back for `duration`; returns how many were answered.
    private func unpaced(_ load: Load, paths: [String], duration: Duration) async throws -> Int {
        let end = ContinuousClock.now + duration
        return try await withThrowingTaskGroup(of: Int.self) { group in
            for path in paths {
                group.addTask {
                    try await BenchConnection.with(port: load.port) { connection in
                        var count = 0
                        while ContinuousClock.now < end {
                            try await connection.send(.GET, path)
                            count += 1
                        }
                        return count
                    }
                }
            }
            return try await group.reduce(0, +)
        }
    }
}

struct BenchFalError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
