import AsyncHTTPClient
import Crypto
import Foundation
import JobStore
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import SwarmCore

/// How receivers check that a webhook came from this server: with `SWARM_WEBHOOK_SECRET` set, every delivery carries
/// `X-Swarm-Signature: sha256=<hex HMAC-SHA256 of the raw request body, keyed with the secret>`. Recompute it over the
/// exact bytes received and compare in constant time.
public enum WebhookSignature {
    public static let header = "X-Swarm-Signature"

    /// The header's value for `body`: `sha256=<hex>`.
    public static func value(body: some Sequence<UInt8>, secret: Secret) -> String {
        let code = HMAC<SHA256>.authenticationCode(for: Data(body), using: SymmetricKey(data: Data(secret.value.utf8)))
        return "sha256=" + code.hexString
    }
}

/// Delivers RunPod's webhook (runpod.md §2.4) for every final job that has one: the status object plus `input` and
/// `webhook`, POSTed as JSON, up to `maxTries` times with exponential backoff; each attempt is recorded on the job.
struct WebhookService: Service {
    static let wakeKey = "webhooks"

    let core: ControlPlaneCore
    let httpClient: HTTPClient

    private var settings: ControlPlaneConfiguration.WebhookSettings { core.configuration.webhooks }
    private var backoff: Backoff { Backoff(initial: settings.retryDelay, maximum: settings.retryDelay * 8) }

    func run() async throws {
        await core.migrated.wait()
        let inFlight = InFlight()
        await withDiscardingTaskGroup { group in
            while !Task.isShuttingDownGracefully, !Task.isCancelled {
                let seen = core.webhooksDue.generation
                var nextDue = Date().addingTimeInterval(1)
                do {
                    let now = Date()
                    for job in try await core.store.pendingWebhooks(limit: 200) {
                        let due = dueDate(job)
                        if due > now {
                            nextDue = min(nextDue, due)
                        } else if await inFlight.start(job.id) {
                            group.addTask {
                                await deliver(job)
                                await inFlight.finish(job.id)
                                core.webhooksDue.signal(Self.wakeKey)
                            }
                        }
                    }
                } catch {
                    // A read cut short by cancellation is the service stopping (shutdown, or serve refusing to start).
                    if !Task.isCancelled { core.logger.error("reading pending webhooks failed", metadata: ["error": "\(error)"]) }
                }
                let wait = max(0.01, nextDue.timeIntervalSinceNow)
                guard await core.webhooksDue.wait(for: Self.wakeKey, after: seen, timeout: .milliseconds(Int64(wait * 1000))) else { break }
            }
        }
    }

    /// The first try goes out at once; retry n waits the backoff ceiling after the previous attempt.
    private func dueDate(_ job: JobRecord) -> Date {
        guard let last = job.webhookAttempts.last else { return .distantPast }
        return last.at.addingTimeInterval(backoff.ceiling(attempt: job.webhookAttempts.count - 1).seconds)
    }

    private func deliver(_ job: JobRecord) async {
        guard var url = job.webhook else { return }
        let payload: JSONValue
        if url.hasPrefix(FalRoutes.webhookMarker) {
            url.removeFirst(FalRoutes.webhookMarker.count)
            payload = FalRoutes.webhook(job)
        } else {
            payload = JobView.webhook(job)
        }
        let body = Data(payload.jsonString().utf8)
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "swarmctl-webhook")
        if let secret = settings.secret {
            request.headers.add(name: WebhookSignature.header, value: WebhookSignature.value(body: body, secret: secret))
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        var attempt = WebhookAttempt(at: Date(), status: nil, error: nil)
        do {
            let response = try await httpClient.execute(request, timeout: .init(settings.timeout))
            _ = try? await response.body.collect(upTo: 64 << 10)
            attempt.status = Int(response.status.code)
            if !(200..<300).contains(response.status.code) { attempt.error = "receiver answered HTTP \(response.status.code)" }
        } catch {
            attempt.error = "\(error)"
        }
        let delivered = attempt.error == nil
        let gaveUp = !delivered && job.webhookAttempts.count + 1 >= settings.maxTries
        core.metrics.webhook(delivered: delivered)
        if !delivered {
            core.logger.warning(
                "webhook delivery failed",
                metadata: [
                    "job": "\(job.id)", "attempt": "\(job.webhookAttempts.count + 1)", "error": "\(attempt.error ?? "")", "gaveUp": "\(gaveUp)",
                ]
            )
        }
        do {
            try await core.store.recordWebhookAttempt(id: job.id, attempt: attempt, delivered: delivered, gaveUp: gaveUp)
        } catch {
            core.logger.error("recording a webhook attempt failed", metadata: ["job": "\(job.id)", "error": "\(error)"])
        }
    }

    /// Job ids being delivered now, so that one job never has two deliveries at once.
    private actor InFlight {
        private var ids: Set<String> = []
        func start(_ id: String) -> Bool { ids.insert(id).inserted }
        func finish(_ id: String) { ids.remove(id) }
    }
}
