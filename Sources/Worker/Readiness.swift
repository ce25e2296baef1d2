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
    /// Told "SwarmUI answers" at the first answer and "backend ready" at the end, for the boot's timeline.
    public var mark: @Sendable (String) async -> Void
    public var logger: Logger

    /// Polls every 250 ms: a poll is one local status request, and READY is seen at most that long after it is true.
    public init(
        swarm: any SwarmUIBackend, timeout: Duration, pollInterval: Duration = .milliseconds(250), reportInterval: Duration = .seconds(60),
        processFailure: @escaping @Sendable () async -> String? = { nil }, mark: @escaping @Sendable (String) async -> Void = { _ in },
        logger: Logger
    ) {
        self.swarm = swarm
        self.timeout = timeout
        self.pollInterval = pollInterval
        self.reportInterval = reportInterval
        self.processFailure = processFailure
        self.mark = mark
        self.logger = logger
    }

    public func wait() async throws(ReadinessError) {
        let clock = ContinuousClock()
        let start = clock.now
        var lastReport: ContinuousClock.Instant?
        var detail = "no answer yet"
        var answered = false
        while true {
            if let failure = await processFailure() { throw ReadinessError(reason: failure) }
            do {
                let readiness = try await swarm.readiness()
                if !answered {
                    answered = true
                    await mark("SwarmUI answers")
                }
                switch readiness {
                case .ready:
                    await mark("backend ready")
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
