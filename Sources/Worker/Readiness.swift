import Logging
import SwarmCore

/// Waits until SwarmUI can really generate: a web server that answers is not enough, the backend must be running
/// with nothing loading (swarmui.md §12).
public struct ReadinessWait: Sendable {
    public var swarm: any SwarmUIBackend
    public var timeout: Duration
    public var pollInterval: Duration
    public var reportInterval: Duration
    /// Why SwarmUI can no longer start (its process died during start), checked on every poll to fail fast.
    public var processFailure: @Sendable () async -> String?
    public var logger: Logger

    public init(
        swarm: any SwarmUIBackend, timeout: Duration, pollInterval: Duration = .seconds(1), reportInterval: Duration = .seconds(60),
        processFailure: @escaping @Sendable () async -> String? = { nil }, logger: Logger
    ) {
        self.swarm = swarm
        self.timeout = timeout
        self.pollInterval = pollInterval
        self.reportInterval = reportInterval
        self.processFailure = processFailure
        self.logger = logger
    }

    public func wait() async throws(ReadinessError) {
        let clock = ContinuousClock()
        let start = clock.now
        var lastReport: ContinuousClock.Instant?
        var detail = "no answer yet"
        while true {
            if let failure = await processFailure() { throw ReadinessError(reason: failure) }
            do {
                switch try await swarm.readiness() {
                case .ready:
                    logger.info("SwarmUI is ready after \(Int((clock.now - start).seconds)) s")
                    return
                case .starting(let now):
                    detail = now
                case .failed(let reason):
                    throw ReadinessError(reason: reason)
                }
            } catch let error as ReadinessError {
                throw error
            } catch {
                detail = "SwarmUI does not answer yet (\(error))"
            }
            let elapsed = clock.now - start
            if elapsed >= timeout {
                throw ReadinessError(reason: "SwarmUI not ready after \(Int(timeout.seconds)) s (STARTUP_TIMEOUT); last state: \(detail)")
            }
            if lastReport.map({ clock.now - $0 >= reportInterval }) ?? true {
                logger.info("waiting for SwarmUI (\(Int(elapsed.seconds)) s of \(Int(timeout.seconds)) s): \(detail)")
                lastReport = clock.now
            }
            do { try await Task.sleep(for: pollInterval) } catch { throw ReadinessError(reason: "cancelled while waiting for SwarmUI") }
        }
    }
}

public struct ReadinessError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { "SwarmUI cannot start: \(reason)" }
}
