#if canImport(Glibc)
import Glibc
#endif
import SwarmCore

import Foundation

/// Where a boot's time went: each step's end, from the process's start, for the line logged at READY. Steps are
/// marked in the order they finish on the critical path, so each one's share is the time since the previous mark.
public struct BootTimeline: Sendable {
    public let started: ContinuousClock.Instant
    public private(set) var steps: [(name: String, ended: ContinuousClock.Instant)] = []

    public init(started: ContinuousClock.Instant = BootTimeline.processStart()) { self.started = started }

    public mutating func mark(_ name: String, at instant: ContinuousClock.Instant = .now) { steps.append((name, instant)) }

    /// `READY 3.25 s after start: process start 0.04 s, seed check 0.00 s, ..., backend ready 1.10 s`.
    public var summary: String {
        var previous = started
        let parts = steps.map { step -> String in
            defer { previous = step.ended }
            return "\(step.name) \(Self.seconds(step.ended - previous))"
        }
        return "\(Self.seconds((steps.last?.ended ?? started) - started)) after start: " + parts.joined(separator: ", ")
    }

    static func seconds(_ duration: Duration) -> String { String(format: "%.2f s", duration.seconds) }

    /// When this process started (Linux: its start time in /proc/self/stat against the system's uptime), so the
    /// timeline includes loading the binary; now where that cannot be read.
    public static func processStart() -> ContinuousClock.Instant {
        let now = ContinuousClock.now
        #if canImport(Glibc)
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let uptime = (try? String(contentsOfFile: "/proc/uptime", encoding: .utf8))?.split(separator: " ").first.flatMap({ Double($0) }),
            let afterName = stat.lastIndex(of: ")")
        else { return now }
        // Field 22 (starttime, in clock ticks since boot); fields after the command name start at field 3.
        let fields = stat[stat.index(after: afterName)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return now }
        let age = uptime - ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
        guard age >= 0, age < 3600 else { return now }
        return now - .milliseconds(Int64(age * 1000))
        #else
        return now
        #endif
    }
}
