import Hummingbird

/// Runs the application `make` builds on an ephemeral port for the duration of `body`, which gets the port. `make`
/// receives the callback to hand to the application's `onServerRunning`, which reports the port the kernel chose.
/// The emulators and the benchmarks run their servers this way; the server stops when `body` returns or throws.
public func withLoopbackServer<App: ApplicationProtocol, T>(
    isolation: isolated (any Actor)? = #isolation,
    _ make: (@escaping @Sendable (Int) async -> Void) -> App,
    _ body: (Int) async throws -> T
) async throws -> T {
    let (ports, portContinuation) = AsyncStream<Int>.makeStream()
    let app = make { port in
        portContinuation.yield(port)
        portContinuation.finish()
    }
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            defer { portContinuation.finish() }
            try await app.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            // The server ended before it listened: its error says why.
            try await group.next()
            throw CancellationError()
        }
        defer { group.cancelAll() }
        return try await body(port)
    }
}
