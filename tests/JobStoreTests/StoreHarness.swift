import Foundation
import JobProtocol
import SwarmCore
import Testing

@testable import JobStore

/// The backends a scenario runs against: SQLite always, PostgreSQL when `SWARM_TEST_DATABASE_URL` names a server
/// (`scripts/postgres.sh` prints one).
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    static let databaseURL = ProcessInfo.processInfo.environment["SWARM_TEST_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }
    static let enabled: [Backend] = databaseURL == nil ? [.sqlite] : [.sqlite, .postgres]

    var testDescription: String { rawValue }
}

/// A fixed clock origin with whole milliseconds, since both databases store milliseconds.
let t0 = Date(timeIntervalSince1970: 1_800_000_000)

func at(_ seconds: Double) -> Date { t0.addingTimeInterval(seconds) }

/// Runs `body` with a fresh, migrated store: a private in-memory SQLite database, or a PostgreSQL schema of its own
/// (dropped afterwards) so scenarios never see each other's jobs.
func withStore(_ backend: Backend, _ body: (any JobStore) async throws -> Void) async throws {
    switch backend {
    case .sqlite:
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        try await body(store)
    case .postgres:
        try await withPostgresStores(count: 1) { stores in try await body(stores[0]) }
    }
}

/// `count` PostgreSQL store instances on one fresh schema, each with its own client, like `serve` replicas.
func withPostgresStores(count: Int, _ body: ([PostgresJobStore]) async throws -> Void) async throws {
    let url = try #require(Backend.databaseURL)
    let schema = "test_\(UUID().uuidString.prefix(8).lowercased())"
    let stores = try (0..<count).map { _ in try PostgresJobStore(configuration: .init(url: url, schema: schema)) }
    try await withThrowingTaskGroup(of: Void.self) { group in
        for store in stores { group.addTask { try await store.run() } }
        // Once LISTEN is up the pool runs, so nothing below races the start of `run()`.
        for store in stores { _ = try await store.workAvailable() }
        try await stores[0].migrate()
        do {
            try await body(stores)
        } catch {
            try? await stores[0].dropSchema()
            throw error
        }
        try await stores[0].dropSchema()
        group.cancelAll()
    }
}

func newJob(_ id: String, endpoint: String = "ep", input: JSONValue = ["n": 1], policy: JobPolicy = JobPolicy(), webhook: String? = nil) -> NewJob {
    NewJob(id: id, endpoint: endpoint, input: input, webhook: webhook, policy: policy)
}

/// Enqueues jobs `prefix0…` at `now`.
@discardableResult
func enqueue(_ store: any JobStore, _ count: Int, prefix: String = "j", endpoint: String = "ep", now: Date = t0) async throws -> [String] {
    let ids = (0..<count).map { "\(prefix)\($0)" }
    _ = try await store.enqueue(ids.map { newJob($0, endpoint: endpoint) }, now: now)
    return ids
}

/// `takers` concurrent workers, spread over `stores`, take batches from endpoint "ep" until it is empty; returns
/// every id taken, repeats included.
func takeEverything(_ stores: [any JobStore], takers: Int, batch: Int) async throws -> [String] {
    try await withThrowingTaskGroup(of: [String].self) { group in
        for worker in 0..<takers {
            let store = stores[worker % stores.count]
            group.addTask {
                var mine: [String] = []
                while true {
                    let taken = try await store.take(endpoint: "ep", workerID: "w\(worker)", limit: batch, leaseUntil: at(60), now: at(1))
                    if taken.isEmpty { return mine }
                    mine += taken.map(\.id)
                }
            }
        }
        return try await group.reduce(into: []) { $0 += $1 }
    }
}

/// Waits for the first element of `stream`, or nil after `seconds`.
func firstElement(of stream: AsyncStream<String>, within seconds: Double) async -> String? {
    await withTaskGroup(of: String?.self) { group in
        group.addTask {
            var iterator = stream.makeAsyncIterator()
            return await iterator.next()
        }
        group.addTask {
            try? await Task.sleep(for: .seconds(seconds))
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}
