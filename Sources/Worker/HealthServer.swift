import Hummingbird
import Logging
import NIOCore
import SwarmCore

import Foundation

/// `/health` (the image's HEALTHCHECK and people with curl) and `/metrics` (Prometheus text format), read from the
/// worker's state on each request so nothing has to be kept in step.
public enum HealthServer {
    public static func buildApplication(
        host: String, port: Int, state: WorkerState, monitor: SwarmUIProcessMonitor?, logger: Logger
    ) -> some ApplicationProtocol {
        let router = Router()
        router.get("health") { _, _ -> Response in
            let snapshot = await state.snapshot()
            let restarts = await monitor?.restarts ?? 0
            var body: [String: JSONValue] = [
                "stage": .string(snapshot.stage.name),
                "ready": .bool(snapshot.stage == .ready),
                "swarmui_ready": .bool(snapshot.swarmUIReady),
                "swarmui_restarts": .int(restarts),
                "current_job": snapshot.currentJobID.map(JSONValue.string) ?? .null,
                "pending_results": .int(snapshot.undeliveredJobIDs.count),
                "jobs": ["succeeded": .int(snapshot.jobsSucceeded), "failed": .int(snapshot.jobsFailed)],
            ]
            if case .error(let reason) = snapshot.stage { body["error"] = .string(reason) }
            if case .downloading(let done, let total) = snapshot.stage {
                body["download"] = ["done_bytes": .int(Int(done)), "total_bytes": .int(Int(total))]
            }
            // ERROR is the one stage a restart may fix; every other stage is healthy, even while starting.
            let status: HTTPResponse.Status = if case .error = snapshot.stage { .serviceUnavailable } else { .ok }
            return json(.object(body), status: status)
        }
        router.get("metrics") { _, _ -> Response in
            let snapshot = await state.snapshot()
            let restarts = await monitor?.restarts ?? 0
            let text = prometheusText(snapshot, swarmUIRestarts: restarts)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "swarm-worker"), logger: logger)
    }

    static func prometheusText(_ snapshot: WorkerState.Snapshot, swarmUIRestarts: Int) -> String {
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: Int)]) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
            for sample in samples { lines.append("\(name)\(sample.labels) \(sample.value)") }
        }
        metric("swarm_worker_jobs_total", "counter", "Jobs this worker finished, by outcome.", [
            ("{outcome=\"succeeded\"}", snapshot.jobsSucceeded), ("{outcome=\"failed\"}", snapshot.jobsFailed),
        ])
        metric("swarm_worker_busy", "gauge", "1 while a job runs.", [("", snapshot.currentJobID == nil ? 0 : 1)])
        metric("swarm_worker_pending_results", "gauge", "Results stored on the volume, not yet acknowledged by the queue.",
               [("", snapshot.undeliveredJobIDs.count)])
        metric("swarm_worker_swarmui_ready", "gauge", "1 while SwarmUI can generate.", [("", snapshot.swarmUIReady ? 1 : 0)])
        metric("swarm_worker_swarmui_restarts_total", "counter", "Times SwarmUI died and was launched again.", [("", swarmUIRestarts)])
        metric("swarm_worker_stage", "gauge", "The worker's boot stage (1 for the current one).",
               BootStage.names.map { ("{stage=\"\($0)\"}", $0 == snapshot.stage.name ? 1 : 0) })
        return lines.joined(separator: "\n") + "\n"
    }

    private static func json(_ value: JSONValue, status: HTTPResponse.Status) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: value.jsonString())))
    }
}
