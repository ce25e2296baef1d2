import Foundation
import Hummingbird
import JobProtocol
import JobStore
import Prometheus

/// The control plane's Prometheus metrics, in a registry of its own (no global bootstrap, so that tests can build
/// many applications in one process).
final class ControlPlaneMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    /// A metric's name and help text, worked out once: Prometheus' descriptors rebuild the name on every use, and
    /// the request counter is used on every request.
    private struct Family: Sendable {
        let name: String
        let help: String

        init(_ metric: String, _ unit: String, _ help: String) {
            self.name = MetricNameDescriptor(namespace: "swarm", metricName: metric, unitName: unit).name
            self.help = help
        }
    }

    private static let requests = Family("http_requests", "total", "HTTP requests by route, method and status code")
    private static let submitted = Family("jobs_submitted", "total", "Jobs accepted by run, runsync and run-batch")
    private static let finished = Family("jobs_finished", "total", "Jobs that reached a final state, by outcome")
    private static let dispatch = Family("job_dispatch", "seconds", "Time from submission to a worker taking the job")
    private static let depth = Family("jobs", "current", "Jobs held by the store, by endpoint and status")
    private static let webhooks = Family("webhook_deliveries", "total", "Webhook delivery attempts by outcome")
    private static let dispatchBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(500), .seconds(2), .seconds(10), .seconds(60),
        .seconds(600),
    ]

    private func count(_ family: Family, _ labels: [(String, String)], by amount: Int64 = 1) {
        registry.makeCounter(name: family.name, labels: labels, help: family.help).increment(by: amount)
    }

    func request(route: String, method: String, status: Int) {
        count(Self.requests, [("route", route), ("method", method), ("status", String(status))])
    }

    func submitted(endpoint: String, count amount: Int) {
        count(Self.submitted, [("endpoint", endpoint)], by: Int64(amount))
    }

    func finished(endpoint: String, status: JobStatus) {
        count(Self.finished, [("endpoint", endpoint), ("status", status.rawValue)])
    }

    func dispatched(_ jobs: [JobRecord], now: Date) {
        guard let endpoint = jobs.first?.endpoint else { return }
        let histogram = registry.makeDurationHistogram(
            name: Self.dispatch.name, labels: [("endpoint", endpoint)], buckets: Self.dispatchBuckets, help: Self.dispatch.help)
        for job in jobs { histogram.record(.milliseconds(Int64(max(0, now.timeIntervalSince(job.createdAt)) * 1000))) }
    }

    func webhook(delivered: Bool) {
        count(Self.webhooks, [("outcome", delivered ? "delivered" : "failed")])
    }

    /// The Prometheus text, with queue depth read from the store at scrape time.
    func render(store: any JobStore, endpoints: Set<String>) async throws -> String {
        for endpoint in endpoints {
            let counts = try await store.counts(endpoint: endpoint)
            for status in JobStatus.allCases {
                registry.makeGauge(name: Self.depth.name, labels: [("endpoint", endpoint), ("status", status.rawValue)], help: Self.depth.help).set(to: Double(counts[status] ?? 0))
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
