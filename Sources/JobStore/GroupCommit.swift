import GRDB
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Group commit for SQLite's one writer: writes that arrive while it is busy run together in its next transaction,
/// each inside a savepoint of its own, so that one that fails changes nothing and fails alone, and every caller hears
/// back only once the transaction holding its change has committed. Under load (32 workers and clients at once) this
/// pays the dispatch to the writer's queue and the commit once per batch instead of once per request, which is what
/// limited throughput, not the statements themselves.
final class GroupCommit: Sendable {
    private struct Queue {
        var pending: [any PendingWrite] = []
        var draining = false
    }

    private let writer: any DatabaseWriter
    private let queue = Mutex(Queue())

    init(writer: any DatabaseWriter) {
        self.writer = writer
    }

    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let write = Write(body: body, continuation: continuation)
            let startDrain = queue.withLock { queue in
                queue.pending.append(write)
                guard !queue.draining else { return false }
                queue.draining = true
                return true
            }
            if startDrain { writer.asyncWriteWithoutTransaction { db in self.drain(db) } }
        }
    }

    /// Runs on the writer's queue until nothing is pending.
    private func drain(_ db: Database) {
        while true {
            // Gives the CPU to request handlers that are about to write before the batch is cut, so that their writes
            // join it instead of each paying a commit of its own (under load, a third of the batches held one write).
            // Returns at once when nothing else is runnable, so a lone write waits for nothing.
            sched_yield()
            let batch = queue.withLock { queue in
                let batch = queue.pending
                queue.pending.removeAll()
                if batch.isEmpty { queue.draining = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                try db.inTransaction(.immediate) {
                    for write in batch { write.execute(db) }
                    return .commit
                }
                for write in batch { write.finish(commitError: nil) }
            } catch {
                for write in batch { write.finish(commitError: error) }
            }
        }
    }
}

private protocol PendingWrite: Sendable {
    /// Runs the write in a savepoint and keeps its outcome; called once, on the writer's queue.
    func execute(_ db: Database)
    /// Answers the caller once the batch's transaction ended.
    func finish(commitError: (any Error)?)
}

/// `outcome` is only touched on the writer's queue (`execute`, then `finish` after the commit), one after the other.
private final class Write<T: Sendable>: PendingWrite, @unchecked Sendable {
    private let body: @Sendable (Database) throws -> T
    private let continuation: CheckedContinuation<T, any Error>
    private var outcome: Result<T, any Error>?

    init(body: @escaping @Sendable (Database) throws -> T, continuation: CheckedContinuation<T, any Error>) {
        self.body = body
        self.continuation = continuation
    }

    func execute(_ db: Database) {
        do {
            // Prepared once per connection: GRDB's `inSavepoint` parses both statements on every call, which showed
            // in profiles of the busiest requests.
            try db.cachedStatement(sql: "SAVEPOINT write").run([])
        } catch {
            outcome = .failure(error)
            return
        }
        do {
            let value = try body(db)
            try db.cachedStatement(sql: "RELEASE SAVEPOINT write").run([])
            outcome = .success(value)
        } catch {
            // Undoes this write only; the batch's transaction goes on for the others.
            try? db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT write").run([])
            try? db.cachedStatement(sql: "RELEASE SAVEPOINT write").run([])
            outcome = .failure(error)
        }
    }

    func finish(commitError: (any Error)?) {
        switch (outcome, commitError) {
        case (.failure(let error)?, _): continuation.resume(throwing: error)
        case (_, let error?): continuation.resume(throwing: error)
        case (.success(let value)?, nil): continuation.resume(returning: value)
        case (nil, nil): continuation.resume(throwing: DatabaseError(message: "a batched write did not run"))
        }
    }
}
