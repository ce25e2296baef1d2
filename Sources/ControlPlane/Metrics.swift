import Foundation
import Hummingbird
import JobProtocol
import JobStore
import Prometheus

/// The control plane's Prometheus metrics, in a registry of its own (no global bootstrap, so that tests can build
/// many applications in one process).
final class ControlPlaneMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "swarm", metricName: metric, unitName: unit, helpText: help)
    }

    private var requests: MetricNameDescriptor { Self.name("http_requests", "total", "HTTP requests by route, method and status code") }
    private var submitted: MetricNameDescriptor { Self.name("jobs_submitted", "total", "Jobs accepted by run, runsync and run-batch") }
    private var finished: MetricNameDescriptor { Self.name("jobs_finished", "total", "Jobs that reached a final state, by outcome") }
    private var dispatch: MetricNameDescriptor { Self.name("job_dispatch", "seconds", "Time from submission to a worker taking the job") }
    private var depth: MetricNameDescriptor { Self.name("jobs", "current", "Jobs held by the store, by endpoint and status") }
    private var webhooks: MetricNameDescriptor { Self.name("webhook_deliveries", "total", "Webhook delivery attempts by outcome") }

    func request(route: String, method: String, status: Int) {
        registry.makeCounter(descriptor: requests, labels: [("route", route), ("method", method), ("status", String(status))]).increment()
    }

    func submitted(endpoint: String, count: Int) {
        registry.makeCounter(descriptor: submitted, labels: [("endpoint", endpoint)]).increment(by: Int64(count))
    }

    func finished(endpoint: String, status: JobStatus) {
        registry.makeCounter(descriptor: finished, labels: [("endpoint", endpoint), ("status", status.rawValue)]).increment()
    }

    func dispatched(_ jobs: [JobRecord], now: Date) {
        guard let endpoint = jobs.first?.endpoint else { return }
        let histogram = registry.makeDurationHistogram(
            descriptor: dispatch,
            labels: [("endpoint", endpoint)],
            buckets: [
                .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10),
                .seconds(60), .seconds(600),
            ]
        )
        for job in jobs { histogram.record(.milliseconds(Int64(max(0, now.timeIntervalSince(job.createdAt)) * 1000))) }
    }

    func webhook(delivered: Bool) {
        registry.makeCounter(descriptor: webhooks, labels: [("outcome", delivered ? "delivered" : "failed")]).increment()
    }

    /// The Prometheus text, with queue depth read from the store at scrape time.
    func render(store: any JobStore, endpoints: Set<String>) async throws -> String {
        for endpoint in endpoints {
            let counts = try await store.counts(endpoint: endpoint)
            for status in JobStatus.allCases {
                registry.makeGauge(descriptor: depth, labels: [("endpoint", endpoint), ("status", status.rawValue)]).set(
                    to: Double(counts[status] ?? 0)
                )
            }
        }
        return registry.emitToString()
    }
}

/// Counts every request by route: the pattern the router matched (`/v2/{endpoint}/status/{id}`), not the raw path,
/// which would explode the label set with ids.
struct MetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ControlPlaneMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response = try await next(request, context)
        metrics.request(route: context.endpointPath ?? "NotFound", method: request.method.rawValue, status: response.status.code)
        return response
    }
}
