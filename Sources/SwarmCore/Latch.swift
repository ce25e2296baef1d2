import Synchronization

/// A one-way signal that any number of tasks can wait for, set from synchronous code (a shutdown handler, a
/// migration that finished). Once set it stays set: later waiters return at once.
///
/// Cancellation: a waiting task that is cancelled returns from `wait()` at once, and only that task; the latch stays
/// unset and every other waiter keeps waiting. A task cancelled before it calls `wait()` returns at once too. Callers
/// that must tell the two apart check `isSet` (or `Task.isCancelled`) after `wait()`.
public final class Latch: Sendable {
    private struct State {
        var isSet = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    public var isSet: Bool { state.withLock { $0.isSet } }

    /// Sets the latch and resumes every waiter. Setting it again does nothing.
    public func set() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.isSet = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the latch is set, or when the waiting task is cancelled (see the type's note on cancellation).
    public func wait() async {
        let id = state.withLock { state -> UInt64 in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                // Checked under the lock that `set` and the cancellation handler take: either this waiter is
                // registered before them (and they resume it) or it sees their effect here and returns at once.
                let resumeNow = state.withLock { state -> Bool in
                    if state.isSet || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }

    /// Sleeps for `duration`; returns early (false) when the latch is set first, or when the task is cancelled.
    /// Returns true when the whole duration passed with the latch unset.
    @discardableResult
    public func sleep(for duration: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do { try await Task.sleep(for: duration) } catch { return false }
                return true
            }
            group.addTask {
                await self.wait()
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }
}
