/// Exponential backoff with full jitter, so that many workers retrying after one outage spread out.
public struct Backoff: Sendable, Hashable {
    public var initial: Duration
    public var maximum: Duration
    public var multiplier: Double

    public init(initial: Duration = .milliseconds(250), maximum: Duration = .seconds(30), multiplier: Double = 2) {
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
    }

    /// The upper bound for attempt `n` (0-based): initial × multiplier^n, capped at maximum.
    public func ceiling(attempt: Int) -> Duration {
        let base = Double(initial.components.seconds) + Double(initial.components.attoseconds) / 1e18
        let cap = Double(maximum.components.seconds) + Double(maximum.components.attoseconds) / 1e18
        let value = min(cap, base * pow(multiplier, Double(max(0, min(attempt, 60)))))
        return .milliseconds(Int64(value * 1000))
    }

    /// A random delay in [ceiling/2, ceiling] for attempt `n`: jittered, but never near zero.
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let ceilingMs = max(1, ceiling(attempt: attempt).milliseconds)
        return .milliseconds(Int64.random(in: (ceilingMs / 2)...ceilingMs, using: &generator))
    }

    public func delay(attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    public var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }

    /// Seconds as a floating-point number.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
