import Foundation
import JobProtocol
import JobStore
import Logging
import SwarmCore
import Synchronization

/// One look at the store per endpoint for all of the page's open `/events` streams. Each open tab used to read the
/// store every half second; now one task per endpoint reads it when the queue gains work (the store's
/// `workAvailable()`, fed to `work`) or, for what nothing signals (takes, progress, finishes, pings), every
/// `interval`, and hands every subscriber the same snapshot. The task starts with the first subscriber and ends
/// with the last.
final class WebEventHub: Sendable {
    /// What one read of the store saw: the page's snapshot, plus the jobs that subscribers' job pages watch and that
    /// are not among the newest (each tab sees only its own, `view(watching:)`).
    struct Reading: Sendable, Equatable {
        var snapshot = WebSnapshot()
        var watched: [String: JSONValue] = [:]

        func view(watching id: String?) -> WebSnapshot {
            var view = snapshot
            if let id, view.jobs[id] == nil, let job = watched[id] { view.jobs[id] = job }
            return view
        }
    }

    private struct Subscriber {
        var watching: String?
        var continuation: AsyncStream<WebSnapshot>.Continuation
    }

    private struct Feed {
        var subscribers: [UUID: Subscriber] = [:]
        var task: Task<Void, Never>?
        /// Tells this feed's task from an older one still ending after its last subscriber left.
        var token = UUID()
        var latest: Reading?
    }

    private let store: any JobStore
    private let work: KeyedSignal
    private let lease: TimeInterval
    private let interval: Duration
    private let logger: Logger
    private let feeds = Mutex<[String: Feed]>([:])
    /// Wakes an endpoint's task for a new subscriber whose watched job the latest reading lacks.
    private let wakes = KeyedSignal()
    private let readings = Atomic<Int>(0)

    init(store: any JobStore, work: KeyedSignal, lease: TimeInterval, interval: Duration, logger: Logger) {
        self.store = store
        self.work = work
        self.lease = lease
        self.interval = interval
        self.logger = logger
    }

    /// Store readings taken so far, over all endpoints.
    var readCount: Int { readings.load(ordering: .relaxed) }

    /// Endpoints with a running snapshot task.
    var activeEndpoints: Int { feeds.withLock { $0.values.filter { $0.task != nil }.count } }

    /// Every reading of `endpoint`'s store as this subscriber sees it, starting with the latest one if there is one.
    /// The stream ends when the store cannot be read (the page's script reconnects); ending it unsubscribes.
    func subscribe(endpoint: String, watching: String?) -> AsyncStream<WebSnapshot> {
        let (stream, continuation) = AsyncStream.makeStream(of: WebSnapshot.self, bufferingPolicy: .bufferingNewest(1))
        let id = UUID()
        let wake = feeds.withLock { feeds -> Bool in
            var feed = feeds[endpoint] ?? Feed()
            feed.subscribers[id] = Subscriber(watching: watching, continuation: continuation)
            var wake = false
            if let latest = feed.latest {
                continuation.yield(latest.view(watching: watching))
                wake = watching.map { latest.snapshot.jobs[$0] == nil && latest.watched[$0] == nil } ?? false
            }
            if feed.task == nil {
                let token = feed.token
                feed.task = Task { await self.run(endpoint: endpoint, token: token) }
            }
            feeds[endpoint] = feed
            return wake
        }
        continuation.onTermination = { [weak self] _ in self?.unsubscribe(id, endpoint: endpoint) }
        if wake { wakes.signal(endpoint) }
        return stream
    }

    private func unsubscribe(_ id: UUID, endpoint: String) {
        let task = feeds.withLock { feeds -> Task<Void, Never>? in
            guard var feed = feeds[endpoint], feed.subscribers.removeValue(forKey: id) != nil else { return nil }
            guard feed.subscribers.isEmpty else {
                feeds[endpoint] = feed
                return nil
            }
            feeds[endpoint] = nil
            return feed.task
        }
        task?.cancel()
    }

    private func run(endpoint: String, token: UUID) async {
        while !Task.isCancelled {
            // Read before the store, so that a change made during the read wakes the next round at once.
            let seenWork = work.generation
            let seenWake = wakes.generation
            let watching = feeds.withLock { feeds in
                Set(feeds[endpoint].map { $0.token == token ? $0.subscribers.values.compactMap(\.watching) : [] } ?? [])
            }
            let reading: Reading
            do {
                reading = try await read(endpoint: endpoint, watching: watching)
            } catch {
                if Task.isCancelled { return }
                logger.warning("web page events: reading the store failed", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
                // Every stream ends; the page's script reconnects and the first subscriber starts a new task.
                return end(endpoint: endpoint, token: token)
            }
            let subscribers = feeds.withLock { feeds -> [Subscriber] in
                guard feeds[endpoint]?.token == token else { return [] }
                feeds[endpoint]?.latest = reading
                return feeds[endpoint].map { Array($0.subscribers.values) } ?? []
            }
            for subscriber in subscribers { subscriber.continuation.yield(reading.view(watching: subscriber.watching)) }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { _ = await self.work.awaitSignal(for: endpoint, after: seenWork, timeout: self.interval) }
                group.addTask { _ = await self.wakes.awaitSignal(for: endpoint, after: seenWake, timeout: self.interval) }
                await group.next()
                group.cancelAll()
            }
            // The server is shutting down (it closes the work signal, which then never waits): the streams end
            // rather than hold the exit.
            if work.isClosed { return end(endpoint: endpoint, token: token) }
        }
    }

    /// Ends every stream of this feed and forgets it.
    private func end(endpoint: String, token: UUID) {
        let subscribers = feeds.withLock { feeds -> [Subscriber] in
            guard let feed = feeds[endpoint], feed.token == token else { return [] }
            feeds[endpoint] = nil
            return Array(feed.subscribers.values)
        }
        for subscriber in subscribers { subscriber.continuation.finish() }
    }

    private func read(endpoint: String, watching: Set<String>) async throws -> Reading {
        readings.add(1, ordering: .relaxed)
        var reading = Reading()
        for job in try await store.listJobs(endpoint: endpoint, status: nil, limit: 100, cursor: nil).jobs {
            reading.snapshot.jobs[job.id] = WebSnapshot.job(job, watched: false)
        }
        for id in watching.sorted() where reading.snapshot.jobs[id] == nil {
            if let job = try await store.job(id: id) { reading.watched[id] = WebSnapshot.job(job, watched: true) }
        }
        let counts = try await store.counts(endpoint: endpoint)
        reading.snapshot.counts = .object(
            Dictionary(uniqueKeysWithValues: JobStatus.allCases.map { ($0.rawValue, JSONValue.int(counts[$0] ?? 0)) })
        )
        let horizon = Date().addingTimeInterval(-lease)
        for worker in try await store.workers(endpoint: nil) where worker.lastSeen >= horizon {
            reading.snapshot.workers[worker.id] = WebSnapshot.worker(worker)
        }
        return reading
    }
}
