import ServiceLifecycle

/// Wakes tasks waiting on a key (an endpoint that gained work, a job that changed) the moment it is signalled, so
/// that long polls answer at once instead of sleep-polling.
///
/// Lost wake-ups are avoided with a generation counter: a waiter reads `generation` *before* it checks the store,
/// and `wait(for:after:timeout:)` returns at once if anything was signalled since. A signal for another key also
/// counts (a spurious wake-up, harmless because callers re-check the store), which keeps no state per key.
actor KeyedSignal {
    private(set) var generation: UInt64 = 0
    private var waiters: [String: [Int: CheckedContinuation<Void, Never>]] = [:]
    private var nextWaiter = 0
    private var closed = false

    func signal(_ key: String) {
        generation &+= 1
        guard let woken = waiters.removeValue(forKey: key) else { return }
        for continuation in woken.values { continuation.resume() }
    }

    /// Wakes every waiter, whatever its key (for changes that do not say which key they concern).
    func signalAll() {
        generation &+= 1
        let all = waiters
        waiters.removeAll()
        for continuation in all.values.flatMap(\.values) { continuation.resume() }
    }

    /// Wakes every waiter now and later ones at once (the server is shutting down).
    func close() {
        closed = true
        signalAll()
    }

    /// Returns when `key` is signalled after generation `seen`, when `timeout` has passed, or on cancellation.
    /// Returns false once the signal is closed, or when the calling service shuts down gracefully (which closes it):
    /// a held long poll must answer then rather than delay the exit.
    nonisolated func wait(for key: String, after seen: UInt64, timeout: Duration) async -> Bool {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.waitForSignal(key, after: seen) }
                group.addTask { try? await Task.sleep(for: timeout) }
                await group.next()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            Task { await self.close() }
        }
        return await !isClosed
    }

    var isClosed: Bool { closed }

    private func waitForSignal(_ key: String, after seen: UInt64) async {
        guard generation == seen, !closed else { return }
        let id = nextWaiter
        nextWaiter += 1
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                // Cancellation may have come before the handler was installed; then nobody would resume us.
                if Task.isCancelled {
                    continuation.resume()
                } else {
                    waiters[key, default: [:]][id] = continuation
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(key, id) }
        }
    }

    private func cancelWaiter(_ key: String, _ id: Int) {
        guard let continuation = waiters[key]?.removeValue(forKey: id) else { return }
        if waiters[key]?.isEmpty == true { waiters[key] = nil }
        continuation.resume()
    }
}
