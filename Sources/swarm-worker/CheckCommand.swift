import ArgumentParser
import AsyncHTTPClient
import JobProtocol
import Logging
import SwarmCore
import Worker

import Foundation

/// Checks what a worker needs before it can take jobs, one OK/FAIL line each, so a person on a fresh GPU box (or
/// vast's log view) sees at once what is missing. Exits 1 when anything failed.
struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check configuration, volume, presets, SwarmUI and the queue; print OK/FAIL lines.")

    @OptionGroup var options: CommonOptions

    func run() async throws {
        let configuration = try options.loadConfiguration()
        var logger = Logger(label: "swarm-worker.check")
        logger.logLevel = .critical
        var failures = 0
        func report(_ ok: Bool, _ what: String) {
            print("\(ok ? "OK  " : "FAIL") \(what)")
            if !ok { failures += 1 }
        }

        report(
            true,
            "configuration read (SwarmUI \(configuration.swarmUIMode == .attach ? "attached at" : "launched, API at") \(configuration.swarmUIURL))"
        )
        if case .launch(let folder, _, _) = configuration.swarmUIMode {
            let script = folder + "/launch-linux.sh"
            report(
                FileManager.default.isExecutableFile(atPath: script) || FileManager.default.fileExists(atPath: script),
                "SwarmUI install: \(script)"
            )
        }
        do {
            try FileManager.default.createDirectory(atPath: configuration.outboxPath, withIntermediateDirectories: true)
            let probe = configuration.outboxPath + "/.write-check"
            try Data("ok".utf8).write(to: URL(fileURLWithPath: probe))
            try FileManager.default.removeItem(atPath: probe)
            report(true, "volume writable: \(configuration.volumePath)")
        } catch {
            report(false, "volume writable: \(configuration.volumePath): \(error.localizedDescription) (set VOLUME_PATH to the persistent volume)")
        }
        var requirements = BackendRequirements.none
        do {
            let presets = try configuration.loadPresets()
            requirements = BackendRequirements(presets: presets)
            report(true, "presets: \(presets.names.joined(separator: ", "))")
        } catch {
            report(false, "\(error)")
        }

        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPQueueClient.httpClientConfiguration())
        let swarmHTTP = SwarmUIClientBackend.makeHTTPClient(configuration)
        let swarm = SwarmUIClientBackend(configuration: configuration, httpClient: swarmHTTP, logger: logger)
        do {
            switch try await swarm.readiness(requiring: requirements) {
            case .ready: report(true, "SwarmUI at \(configuration.swarmUIURL) can generate")
            case .starting(let detail): report(false, "SwarmUI at \(configuration.swarmUIURL) answers but is not ready: \(detail)")
            case .failed(let reason), .lacking(let reason): report(false, "SwarmUI at \(configuration.swarmUIURL): \(reason)")
            }
        } catch {
            report(false, "SwarmUI at \(configuration.swarmUIURL) does not answer: \(error)")
        }
        if let endpoints = configuration.queue {
            let queue = HTTPQueueClient(endpoints: endpoints, httpClient: httpClient, logger: logger)
            do {
                try await queue.ping(jobIDs: [], report: WorkerReport(stage: nil, extra: ["stage": "CHECK"]))
                report(true, "queue answers pings as worker \(endpoints.workerID)")
            } catch {
                report(false, "queue: \(error)")
            }
        } else {
            report(false, "queue: none configured (SWARM_QUEUE_URL and SWARM_WORKER_KEY, or RUNPOD_WEBHOOK_GET_JOB and RUNPOD_AI_API_KEY)")
        }
        try? await httpClient.shutdown()
        try? await swarmHTTP.shutdown()
        if failures > 0 { throw ExitCode(1) }
    }
}
