import Foundation
import JobProtocol
import JobStore
import Logging
import SwarmCore

/// What the routes and background services share: the store, the settings, and the signals that wake long polls.
final class ControlPlaneCore: Sendable {
    let configuration: ControlPlaneConfiguration
    let store: any ControlPlaneStore
    let keys: KeyRing
    let metrics: ControlPlaneMetrics
    let logger: Logger
    /// Keyed by endpoint: the queue may have gained work (fed by the store's `workAvailable()`).
    let work = KeyedSignal()
    /// Keyed by job id: the job may have reached a final state.
    let jobChanges = KeyedSignal()
    /// Keyed by worker id: the worker has jobs to stop.
    let stops = KeyedSignal()
    /// One key, `WebhookService.wakeKey`: a job with a webhook became final.
    let webhooksDue = KeyedSignal()
    /// Queued jobs that spill-over would forward but for the day's budget (shown in their status).
    let spillWaits = SpillWaits()
    /// Opened once the store is migrated; background services wait for it (they start before the migration, which
    /// needs a PostgreSQL store's pool running).
    let migrated = Latch()

    init(configuration: ControlPlaneConfiguration, store: any ControlPlaneStore, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.keys = KeyRing(configuration: configuration, store: store)
        self.metrics = ControlPlaneMetrics()
        self.logger = logger
    }

    /// Wakes whoever waits on this job's end, its worker's job-stop poll and the webhook sender.
    func jobEnded(_ job: JobRecord) {
        guard job.status.isFinal else { return }
        metrics.finished(endpoint: job.endpoint, status: job.status)
        jobChanges.signal(job.id)
        if let worker = job.workerID, job.status == .cancelled || job.status == .timedOut { stops.signal(worker) }
        if job.webhook != nil { webhooksDue.signal(WebhookService.wakeKey) }
    }

    /// The job once final, or as it is when `timeout` runs out. Woken by this process's own changes; re-reads the store
    /// every second as well, because with PostgreSQL another replica may finish the job.
    func awaitFinal(id: String, timeout: Duration) async throws(JobStoreError) -> JobRecord? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let seen = jobChanges.generation
            guard let job = try await store.job(id: id) else { return nil }
            let remaining = deadline - .now
            if job.status.isFinal || remaining <= .zero || Task.isCancelled { return job }
            guard await jobChanges.wait(for: id, after: seen, timeout: min(remaining, .seconds(1))) else { return job }
        }
    }
}
