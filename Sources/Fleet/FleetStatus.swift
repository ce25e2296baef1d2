import Foundation
import JobProtocol
import JobStore
import SwarmCore
import VastAI

extension FleetInstanceRecord {
    /// The newest lines of the worker's log, from its last ping.
    public var logTail: [String] { report?.logTail ?? [] }
}

/// One fleet instance as `swarmctl instance status` shows it: what the database remembers, the worker's last ping,
/// and vast's record when vast was asked.
public struct FleetInstanceStatus: Sendable {
    /// Container ports SwarmUI is published on: the vast SwarmUI template's (behind the portal's auth), then the
    /// worker image's `SWARMUI_PORT`.
    public static let swarmUIPorts = [7865, 7801]

    public var record: FleetInstanceRecord
    /// vast's record; nil when vast does not list the instance, or was not asked.
    public var vast: Instance?
    /// Whether vast was asked (`VAST_API_KEY` set and the listing worked).
    public var vastAsked: Bool

    public init(record: FleetInstanceRecord, vast: Instance?, vastAsked: Bool) {
        self.record = record
        self.vast = vast
        self.vastAsked = vastAsked
    }

    public var download: DownloadProgress? {
        if case .downloading(let progress)? = record.report?.stage, progress.totalBytes > 0 { progress } else { nil }
    }

    /// `http://<ip>:<host port>` of SwarmUI when vast maps one of `swarmUIPorts`.
    public var swarmUIURL: String? {
        guard let vast else { return nil }
        return Self.swarmUIPorts.lazy.compactMap { vast.directURL(containerPort: $0) }.first
    }

    public func uptime(now: Date) -> TimeInterval { max(0, (record.removedAt ?? now).timeIntervalSince(record.createdAt)) }

    /// Dollars so far at the rented price.
    public func cost(now: Date) -> Double? { record.dphTotal.map { $0 * uptime(now: now) / 3600 } }

    /// The SSH command that forwards SwarmUI's UI to this machine, when vast shows the instance's SSH address.
    public var swarmUITunnel: String? { WorkerLaunch.swarmUITunnel(sshHost: vast?.sshHost, sshPort: vast?.sshPort) }

    /// A failure vastai.md §2.2 lists, seen in vast's status message or the worker's log tail.
    public var diagnosis: KnownFailure? {
        // As the planner reads them: a serving worker's log may hold an old, harmless match.
        let lines = record.report?.stage == .ready ? [] : record.logTail
        return KnownFailure.recognize(statusMessage: vast?.statusMessage, logLines: lines)
    }

    public var vastText: String {
        guard vastAsked else { return "vast not asked (VAST_API_KEY unset)" }
        guard let vast else { return record.state == .destroying ? "vast: gone" : "vast: not listed (destroyed, or just created)" }
        var text = "vast " + (vast.actualStatus?.description ?? "setting up")
        if let message = vast.statusMessage?.trimmingCharacters(in: .whitespacesAndNewlines), !message.isEmpty {
            text += " \"\(message.prefix(100))\""
        }
        return text
    }

    public var workerText: String {
        guard let stage = record.report?.stage else { return "worker not heard from" }
        var text = "worker \(stage.name.rawValue)"
        if let download { text += " " + download.summary }
        if let failure = stage.failure { text += " (\(failure.kind.rawValue)): \(failure.reason)" }
        return text
    }

    /// The block `status` prints: a headline, then vast's and the worker's view, the download bar, the URL.
    public func lines(now: Date, barWidth: Int = 40) -> [String] {
        var headline = "\(record.label) (\(record.id))"
        if let gpu = vast?.gpuName { headline += "  \(vast?.numGPUs.map { $0 > 1 ? "\($0)x " : "" } ?? "")\(gpu)" }
        headline += "  " + (record.dphTotal.map { String(format: "$%.3f/h", $0) } ?? "$?/h")
        headline += "  up " + Self.span(uptime(now: now))
        if let cost = cost(now: now) { headline += String(format: "  $%.2f so far", cost) }
        if record.state != .active { headline += "  [\(record.state.rawValue)]" }
        if let stopped = record.stoppedAt { headline += "  [stopped \(Self.span(now.timeIntervalSince(stopped))) ago: disk kept, storage billed]" }
        var lines = [headline]
        let ping = record.lastPing.map { "last ping \(Self.span(now.timeIntervalSince($0))) ago" } ?? "no ping yet"
        lines.append("  \(vastText); \(workerText); \(ping)")
        if let download { lines.append("  \(download.bar(width: barWidth)) \(String(format: "%3.0f%%", download.fraction * 100))") }
        if let url = swarmUIURL { lines.append("  SwarmUI: \(url)") }
        if let tunnel = swarmUITunnel { lines.append("  SwarmUI over SSH: \(tunnel)") }
        if let diagnosis { lines.append("  problem: \(diagnosis)") }
        return lines
    }

    public func json(now: Date) -> JSONValue {
        var fields: [String: JSONValue] = [
            "id": .int(record.id), "label": .string(record.label), "state": .string(record.state.rawValue),
            "created_at": .string(record.createdAt.formatted(.iso8601)), "uptime_s": .int(Int(uptime(now: now))),
            "reboots": .int(record.reboots), "stopped": .bool(record.stoppedAt != nil),
        ]
        if let resumed = record.resumedAt { fields["resumed_at"] = .string(resumed.formatted(.iso8601)) }
        if let stage = record.report?.stage {
            fields["stage"] = .string(stage.name.rawValue)
            if let failure = stage.failure {
                fields["error"] = .string(failure.reason)
                fields["error_kind"] = .string(failure.kind.rawValue)
            }
        }
        if let download {
            fields["download"] = download.jsonValue
            fields["download_percent"] = .double(download.percent)
        }
        if let dph = record.dphTotal { fields["dph_total"] = .double(dph) }
        if let cost = cost(now: now) { fields["cost_usd"] = .double(cost) }
        if let ping = record.lastPing { fields["last_ping"] = .string(ping.formatted(.iso8601)) }
        if let machine = record.machineID { fields["machine_id"] = .int(machine) }
        if let offer = record.offerID { fields["offer_id"] = .int(offer) }
        if let vast {
            fields["vast_status"] = vast.actualStatus.map { .string($0.description) } ?? .null
            if let message = vast.statusMessage { fields["status_msg"] = .string(message) }
        }
        if let url = swarmUIURL { fields["swarmui_url"] = .string(url) }
        if let tunnel = swarmUITunnel { fields["swarmui_ssh"] = .string(tunnel) }
        if let diagnosis { fields["problem"] = .string(diagnosis.description) }
        return .object(fields)
    }

    /// "42 s", "12m", "3h05m".
    public static func span(_ seconds: TimeInterval) -> String {
        let whole = Int(max(0, seconds))
        if whole < 60 { return "\(whole) s" }
        let minutes = whole / 60
        return minutes < 60 ? "\(minutes)m" : "\(minutes / 60)h\(String(format: "%02d", minutes % 60))m"
    }
}

/// What `swarmctl instance status` shows above the instances.
public struct FleetSummary: Sendable {
    /// Set by `swarmctl instance up N|down`; nil: `serve`'s `--fleet-size`.
    public var desiredSize: Int?
    public var creationHold: String?
    public var spentToday: Double
    /// Why vast's view is missing, when asking failed.
    public var vastProblem: String?
    /// Instances vast lists with the fleet's label that the database does not know: paid for, unaccounted.
    public var orphans: [Instance]
    /// Set with `swarmctl instance scale`; nil: serve's scaler flags.
    public var scalerOverride: ScalerOverride?
    /// The scaler's latest decision as serve explained it.
    public var scalerDecision: String?

    public init(desiredSize: Int?, creationHold: String?, spentToday: Double, vastProblem: String? = nil, orphans: [Instance] = []) {
        self.desiredSize = desiredSize
        self.creationHold = creationHold
        self.spentToday = spentToday
        self.vastProblem = vastProblem
        self.orphans = orphans
    }

    public var lines: [String] {
        var lines = [
            (desiredSize.map { "wanted: \($0) instance(s), set with 'swarmctl instance up|down'" }
                ?? "wanted: serve's --fleet-size (SWARM_FLEET_SIZE)") + String(format: "; spent today: $%.2f", spentToday)
        ]
        if let scalerOverride, !scalerOverride.isEmpty {
            lines.append("scaler: \(scalerOverride.flags) over serve's flags, set with 'swarmctl instance scale' ('--reset' hands them back)")
        }
        if let scalerDecision { lines.append("scaler: \(scalerDecision)") }
        if let creationHold { lines.append("creation on hold: \(creationHold) ('swarmctl instance up' clears it)") }
        if let vastProblem { lines.append("vast.ai not reachable: \(vastProblem)") }
        for orphan in orphans {
            let price = orphan.dphTotal.map { String(format: ", $%.3f/h", $0) } ?? ""
            lines.append(
                "orphan \(orphan.label ?? "") (\(orphan.id)): vast \(orphan.actualStatus?.description ?? "setting up")\(price), not in this database; "
                    + "a running serve destroys it, or 'swarmctl instance down'"
            )
        }
        return lines
    }

    public var json: [String: JSONValue] {
        var fields: [String: JSONValue] = ["desired_size": desiredSize.map(JSONValue.int) ?? .null, "spent_today_usd": .double(spentToday)]
        if let creationHold { fields["creation_hold"] = .string(creationHold) }
        if let scalerDecision { fields["scaler_decision"] = .string(scalerDecision) }
        if let scalerOverride, !scalerOverride.isEmpty, let stored = JSONValue.parse(Data(scalerOverride.jsonText.utf8)) {
            fields["scaler_override"] = stored
        }
        if let vastProblem { fields["vast_problem"] = .string(vastProblem) }
        fields["orphans"] = .array(orphans.map { ["id": .int($0.id), "label": $0.label.map(JSONValue.string) ?? .null] })
        return fields
    }
}
