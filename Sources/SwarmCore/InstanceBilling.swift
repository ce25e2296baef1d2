import Foundation

/// How vast.ai bills a rented instance (issue 23): its `$/h` while it runs, and only its disk's storage price while
/// it is stopped. One rule for the daily budget (`spentToday`) and the cost report.
public enum InstanceBilling {
    /// One warm stop: from the stop until the resume; an open stop lasts until the end of billing.
    public struct Stop: Sendable, Hashable {
        public var stoppedAt: Date
        public var resumedAt: Date?

        public init(stoppedAt: Date, resumedAt: Date? = nil) {
            self.stoppedAt = stoppedAt
            self.resumedAt = resumedAt
        }
    }

    /// vast's `storage_cost` ($/GB/month, a month being 30 days) for `diskGB`, in $/h.
    public static func storagePerHour(diskGB: Double, perGBMonth: Double) -> Double {
        diskGB * perGBMonth / (30 * 24)
    }

    /// The parts of `window` when the instance ran: `window` less its stops, in order.
    public static func running(_ window: (start: Date, end: Date), stops: [Stop]) -> [(start: Date, end: Date)] {
        var pieces: [(start: Date, end: Date)] = []
        var cursor = window.start
        for stop in stops.sorted(by: { $0.stoppedAt < $1.stoppedAt }) {
            let from = max(stop.stoppedAt, window.start)
            let to = min(stop.resumedAt ?? window.end, window.end)
            guard to > from else { continue }
            if from > cursor { pieces.append((cursor, from)) }
            cursor = max(cursor, to)
        }
        if window.end > cursor { pieces.append((cursor, window.end)) }
        return pieces
    }

    /// Seconds of `window` the instance ran and was stopped.
    public static func seconds(_ window: (start: Date, end: Date), stops: [Stop]) -> (running: TimeInterval, stopped: TimeInterval) {
        let total = max(0, window.end.timeIntervalSince(window.start))
        let running = Self.running(window, stops: stops).reduce(0) { $0 + $1.end.timeIntervalSince($1.start) }
        return (running, total - running)
    }

    /// Dollars billed over `window` (already clipped to the instance's billed life).
    public static func dollars(_ window: (start: Date, end: Date), dollarsPerHour: Double, storagePerHour: Double?, stops: [Stop]) -> Double {
        let (running, stopped) = seconds(window, stops: stops)
        return (running * dollarsPerHour + stopped * (storagePerHour ?? 0)) / 3600
    }
}
