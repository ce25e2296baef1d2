import Synchronization

/// Wakes tasks waiting on a key (an endpoint that gained work, a job that changed) the moment it is signalled, so
/// that long polls answer at once instead of sleep-polling.
///
/// Lost wake-ups are avoided with a generation counter: a waiter reads `generation` *before* it checks the store,
/// and `wait(for:after:timeout:)` returns at once if anything was signalled since. A signal for another key also
/// counts (a spurious wake-up, harmless because callers re-check the store), which keeps no state per key.
///
/// Signalling and reading the generation are synchronous (a lock held for a few instructions), not actor calls, so
/// the submit, take and result routes never suspend for them, and shutdown and cancellation resume waiters directly
/// instead of through unstructured tasks. The control plane closes it on graceful shutdown (`wait(for:after:timeout:)` in
/// ControlPlane/KeyedSignal.swift).
public final class KeyedSignal: Sendable {
    private struct State {
        var generation: UInt64 = 0
        var waiters: [String: [Int: CheckedContinuation<Void, Never>]] = [:]
        var nextWaiter = 0
        var closed = false

        /// Bumps the generation and takes the waiters to resume, which the caller does outside the lock.
        mutating func take(_ key: String?) -> [CheckedContinuation<Void, Never>] {
            generation &+= 1
            guard let key else {
                defer { waiters.removeAll() }
                return waiters.values.flatMap(\.values)
            }
            return waiters.removeValue(forKey: key).map { Array($0.values) } ?? []
        }
    }

    private let state = Mutex(State())

    public init() {}

    public var generation: UInt64 { state.withLock { $0.generation } }

    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Long polls waiting right now, over all keys.
    public var waiterCount: Int { state.withLock { $0.waiters.values.reduce(0) { $0 + $1.count } } }

    public func signal(_ key: String) {
        for continuation in state.withLock({ $0.take(key) }) { continuation.resume() }
    }

    /// Wakes every waiter, whatever its key (for changes that do not say which key they concern).
    public func signalAll() {
        for continuation in state.withLock({ $0.take(nil) }) { continuation.resume() }
    }

    /// Wakes every waiter now and later ones at once (the server is shutting down).
    public func close() {
        let woken = state.withLock { state in
            state.closed = true
            return state.take(nil)
        }
        for continuation in woken { continuation.resume() }
    }

    /// Returns when `key` is signalled after generation `seen`, when `timeout` has passed, when the signal is closed,
    /// or when the waiting task is cancelled (only that waiter returns; nothing is signalled for the others). Returns
    /// false once the signal is closed, so that a held long poll answers at once instead of delaying an exit.
    public func awaitSignal(for key: String, after seen: UInt64, timeout: Duration) async -> Bool {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitUntilSignalled(key, after: seen) }
            group.addTask { try? await Task.sleep(for: timeout) }
            await group.next()
            group.cancelAll()
        }
        return !isClosed
    }

    private func waitUntilSignalled(_ key: String, after seen: UInt64) async {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                // Checked under the lock that `signal` takes, so a signal is either seen here or resumes this waiter.
                // Cancellation may also have come before the waiter was registered; then nobody would resume it.
                let resumeNow = state.withLock { state in
                    guard state.generation == seen, !state.closed, !Task.isCancelled else { return true }
                    state.waiters[key, default: [:]][id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let continuation = state.withLock { state -> CheckedContinuation<Void, Never>? in
                defer { if state.waiters[key]?.isEmpty == true { state.waiters[key] = nil } }
                return state.waiters[key]?.removeValue(forKey: id)
            }
            continuation?.resume()
        }
    }
}
