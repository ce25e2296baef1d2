import Foundation
import JobProtocol
import JobStore
import Logging
import SwarmCore
import ServiceLifecycle

/// Feeds the store's `workAvailable()` notifications to the long-polling takers.
struct WorkSignalService: Service {
    let core: ControlPlaneCore

    func run() async throws {
        await core.migrated.wait()
        let endpoints = try await core.store.workAvailable()
        // Every submit passes through here, so the stream is read directly and its reader cancelled on graceful
        // shutdown; `cancelOnGracefulShutdown()` would merge each element with the shutdown sequence.
        await cancelWhenGracefulShutdown {
            for await endpoint in endpoints { core.work.signal(endpoint) }
        }
    }
}

/// Applies the store's time rules every `expiryInterval`: expired leases go back to the queue (or fail after
/// `maxAttempts`), jobs past `executionTimeout` or `ttl` become TIMED_OUT, old final jobs are deleted.
struct ExpiryService: Service {
    let core: ControlPlaneCore
    /// Cancels the fal.ai request of a forwarded job that timed out here, which fal.ai would otherwise run and charge.
    var fal: FalForwarder?

    func run() async throws {
        await core.migrated.wait()
        let configuration = core.configuration
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            do {
                let report = try await core.store.expire(now: Date(), maxAttempts: configuration.maxAttempts, retention: configuration.retention)
                try await announce(report)
            } catch {
                // A store outage must not end the server; the next tick tries again.
                core.logger.error("applying lease and timeout rules failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: configuration.expiryInterval)
        }
    }

    private func announce(_ report: ExpiryReport) async throws {
        if !report.requeued.isEmpty {
            core.logger.warning("leases expired, jobs requeued", metadata: ["jobs": "\(report.requeued)"])
            // The workers that lost them are not named in the report; their job-stop polls look for themselves.
            core.stops.signalAll()
        }
        if !report.failed.isEmpty {
            core.logger.warning("jobs failed after \(core.configuration.maxAttempts) attempts", metadata: ["jobs": "\(report.failed)"])
        }
        if !report.timedOut.isEmpty {
            core.logger.notice("jobs timed out", metadata: ["jobs": "\(report.timedOut)"])
        }
        for id in report.failed + report.timedOut {
            guard let job = try await core.store.job(id: id) else { continue }
            core.jobEnded(job)
            if job.status == .timedOut { await fal?.cancelled(job) }
        }
    }
}
