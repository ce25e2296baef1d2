import Foundation
import Logging
import SwarmCore

/// Waits until SwarmUI can really generate: a web server that answers is not enough, the backend must be running
/// with nothing loading (swarmui.md §12) and with the features and node types the presets need.
///
/// A failed backend (`errored`...) ends the wait at once before SwarmUI was first ready: the install is broken. Once
/// it has been ready, `errored` is what SwarmUI reports for the ~2 s between a ComfyUI crash (OOM, segfault) and its
/// own restart of the backend, so the wait goes on for `erroredGrace` before giving up.
public struct ReadinessWait: Sendable {
    public var swarm: any SwarmUIBackend
    public var requirements: BackendRequirements
    public var timeout: Duration
    public var pollInterval: Duration
    public var reportInterval: Duration
    /// How long a failed or lacking backend is waited for once SwarmUI has been ready (`SWARMUI_ERRORED_GRACE`).
    public var erroredGrace: Duration
    /// How long a backend lacking a feature or node type is waited for before the first READY: SwarmUI's feature
    /// list is filled as the backend finishes loading, so one early answer is not final (verify).
    public var lackingSettle: Duration
    /// Why SwarmUI can no longer start (its process died during start), checked on every poll to fail fast.
    public var processFailure: @Sendable () async -> String?
    /// Whether SwarmUI has been ready before (since the worker started).
    public var everReady: @Sendable () async -> Bool
    /// Told "SwarmUI answers" at the first answer and "backend ready" at the end, for the boot's timeline.
    public var mark: @Sendable (String) async -> Void
    public var logger: Logger

    /// Polls every 250 ms: a poll is one local status request, and READY is seen at most that long after it is true.
    public init(
        swarm: any SwarmUIBackend,
        requirements: BackendRequirements = .none,
        timeout: Duration,
        pollInterval: Duration = .milliseconds(250),
        reportInterval: Duration = .seconds(60),
        erroredGrace: Duration = .seconds(60),
        lackingSettle: Duration = .seconds(10),
        processFailure: @escaping @Sendable () async -> String? = { nil },
        everReady: @escaping @Sendable () async -> Bool = { false },
        mark: @escaping @Sendable (String) async -> Void = { _ in },
        logger: Logger
    ) {
        self.swarm = swarm
        self.requirements = requirements
        self.timeout = timeout
        self.pollInterval = pollInterval
        self.reportInterval = reportInterval
        self.erroredGrace = erroredGrace
        self.lackingSettle = lackingSettle
        self.processFailure = processFailure
        self.everReady = everReady
        self.mark = mark
        self.logger = logger
    }

    public func wait() async throws(ReadinessError) {
        let clock = ContinuousClock()
        let start = clock.now
        var lastReport: ContinuousClock.Instant?
        var detail = "no answer yet"
        // Since when the backend has been failed or lacking without a break.
        var troubleSince: ContinuousClock.Instant?
        var answered = false
        while true {
            if let failure = await processFailure() { throw ReadinessError(reason: failure) }
            do {
                let readiness = try await swarm.readiness(requiring: requirements)
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
                    troubleSince = nil
                    detail = now
                case .failed(let reason), .lacking(let reason):
                    let firstSeen = troubleSince == nil
                    let since = troubleSince ?? clock.now
                    troubleSince = since
                    let recovering = await everReady()
                    let bound: Duration
                    if recovering {
                        bound = erroredGrace
                    } else if case .lacking = readiness {
                        bound = lackingSettle
                    } else {
                        throw ReadinessError(reason: reason)
                    }
                    let lasted = clock.now - since
                    if lasted >= bound {
                        let setting = recovering ? " (SWARMUI_ERRORED_GRACE)" : ""
                        throw ReadinessError(reason: "\(reason) (still so after \(Int(lasted.seconds)) s\(setting))")
                    }
                    if recovering && firstSeen {
                        logger.warning(
                            "SwarmUI's backend failed after it was ready; waiting up to \(Int(bound.seconds)) s for SwarmUI to restart it: \(reason)"
                        )
                    }
                    detail = "\(reason) (for \(Int(lasted.seconds)) s of at most \(Int(bound.seconds)) s)"
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
