import ServiceLifecycle
import SwarmCore

extension KeyedSignal {
    /// `awaitSignal(for:after:timeout:)` that also ends when the calling service shuts down gracefully, which closes
    /// the signal: a held long poll must answer then rather than delay the exit. Returns false once closed.
    func wait(for key: String, after seen: UInt64, timeout: Duration) async -> Bool {
        await withGracefulShutdownHandler {
            await awaitSignal(for: key, after: seen, timeout: timeout)
        } onGracefulShutdown: {
            self.close()
        }
    }
}
