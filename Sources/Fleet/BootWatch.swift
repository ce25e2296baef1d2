import Foundation
import JobProtocol
import JobStore
import VastAI

/// What `swarmctl instance up --wait` concludes from one look at the fleet: keep waiting, done, or failed with the
/// reason. Pure: the command reads the database and vast, this decides.
public enum BootVerdict: Sendable, Equatable {
    case waiting
    case ready
    case failed(String)
}

public struct BootWatch: Sendable {
    /// READY instances wanted.
    public var wanted: Int
    /// When the wait began (an instance already READY then counts too).
    public var startedAt: Date
    /// Past this, the wait fails with what the instances were doing.
    public var timeout: TimeInterval
    /// With no instance recorded after this, serve is probably not running.
    public var noInstanceHint: TimeInterval

    public init(wanted: Int, startedAt: Date, timeout: TimeInterval, noInstanceHint: TimeInterval = 120) {
        self.wanted = wanted
        self.startedAt = startedAt
        self.timeout = timeout
        self.noInstanceHint = noInstanceHint
    }

    public func verdict(instances: [FleetInstanceStatus], creationHold: String?, now: Date) -> BootVerdict {
        let active = instances.filter { $0.record.state == .active }
        let ready = active.filter { $0.record.report?.stage == .ready }
        if ready.count >= wanted { return .ready }
        if let creationHold { return .failed("the fleet holds creation: \(creationHold)") }
        // A failure no other machine fixes: waiting would only rent it again.
        if let hopeless = active.lazy.compactMap(\.diagnosis).first(where: { !$0.anotherMachineMayHelp }) {
            return .failed("\(hopeless)")
        }
        let elapsed = now.timeIntervalSince(startedAt)
        guard elapsed >= timeout else { return .waiting }
        let doing =
            active.isEmpty ? "no instance was rented" : active.map { "\($0.record.label): \($0.progressLine(now: now))" }.joined(separator: "; ")
        let causes = active.compactMap(Self.likelyCause)
        return .failed(
            "not READY after \(FleetInstanceStatus.span(elapsed)): \(doing)" + (causes.isEmpty ? "" : "; likely: " + causes.joined(separator: "; "))
        )
    }

    /// Why a start is slow, as docs/vast-template.md's "When an instance does not come up" reads: a failure vast or
    /// the log names, else what the state it sits in usually means.
    static func likelyCause(_ instance: FleetInstanceStatus) -> String? {
        if let diagnosis = instance.diagnosis { return diagnosis.description }
        switch (instance.vast?.actualStatus, instance.record.report?.stage?.name) {
        case (.created?, nil):
            return
                "stuck in created: the host did not start the container, most often a driver older than the image's CUDA (keep cuda_max_good >= 12.8)"
        case (.loading?, nil):
            return "stuck in loading: the host pulls the ~15 GB image slowly or not at all; prefer fast hosts (inet_down), many direct ports"
        case (.running?, nil):
            return "running, but the worker never pinged: the on-start script is missing (ssh and jupyter run types ignore the image's "
                + "ENTRYPOINT; use --image, or set the template's on-start to '\(WorkerLaunch.onstart)'), or the instance cannot reach --public-url"
        case (_, .downloading?):
            return "still downloading the ~33 GB of models of a first start: normal on a slow host, progress in 'swarmctl instance status'"
        default:
            return nil
        }
    }

    /// The status line printed every interval: one clause per active instance, or why there is none yet.
    public func statusLine(instances: [FleetInstanceStatus], now: Date) -> String {
        let elapsed = FleetInstanceStatus.span(now.timeIntervalSince(startedAt))
        let active = instances.filter { $0.record.state == .active }
        guard !active.isEmpty else {
            let hint =
                now.timeIntervalSince(startedAt) >= noInstanceHint
                ? " (is 'swarmctl serve' running with VAST_API_KEY on this database? It rents the instances and receives their pings)" : ""
            return "\(elapsed): no instance rented yet\(hint)"
        }
        return "\(elapsed): " + active.map { "\($0.record.label) (\($0.record.id)) \($0.progressLine(now: now))" }.joined(separator: " | ")
    }
}

extension FleetInstanceStatus {
    /// "vast loading; worker DOWNLOADING 12.1 of 33.2 GB (36%); $0.352/h; up 3m".
    public func progressLine(now: Date) -> String {
        var parts = [vastText, workerText]
        parts.append(record.dphTotal.map { String(format: "$%.3f/h", $0) } ?? "$?/h")
        parts.append("up " + Self.span(uptime(now: now)))
        if let diagnosis { parts.append("problem: \(diagnosis)") }
        return parts.joined(separator: "; ")
    }
}
