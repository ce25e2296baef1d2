import Synchronization

/// Says yes at most once per interval (the first time at once): turns once-a-second progress into sparser lines.
/// Synchronous and never suspends, so it has no cancellation behaviour; a caller that is cancelled simply stops
/// asking.
public final class Throttle: Sendable {
    private let last = Mutex<ContinuousClock.Instant?>(nil)
    public let interval: Duration

    public init(every interval: Duration) { self.interval = interval }

    /// True the first time, then once `interval` has passed since the last true.
    public func ready() -> Bool {
        ready(now: ContinuousClock.now)
    }

    /// `ready()` at a given instant, for tests with a frozen clock.
    public func ready(now: ContinuousClock.Instant) -> Bool {
        last.withLock { last in
            if let previous = last, now - previous < interval { return false }
            last = now
            return true
        }
    }
}
