import Foundation
import JobProtocol
import SwarmCore
import VastAI

/// How the fleet is to be kept.
public struct FleetPolicy: Sendable, Hashable {
    public var desiredSize: Int
    /// Instances are labeled `<prefix>-<unique>`; unknown ones with that prefix are orphans.
    public var labelPrefix: String
    /// No worker ping for this long means the instance is dead.
    public var heartbeatTimeout: Duration
    /// A start (create or reboot) not READY after this gets one warning.
    public var startWarning: Duration
    /// A start not READY after this is replaced; nil: never (for debugging a slow start).
    public var startReplaceAfter: Duration?
    /// vast shows a new instance as null for a while (vastai.md §1.6); past this, null means gone.
    public var nullGrace: Duration
    /// Time a rebooted instance gets to come back before it counts as dead again.
    public var rebootGrace: Duration
    /// Reboots tried on a dead instance before it is replaced.
    public var maxReboots: Int
    /// A destroy not confirmed after this is sent again.
    public var destroyRetryAfter: Duration
    /// Status lines for a starting instance at least this often.
    public var statusInterval: Duration
    /// Dollars per UTC day; nil: no cap.
    public var budgetPerDay: Double?
    /// Stopped instances are the scaler's to resume or destroy; false (no scaler, or `instance up|down` outranks it):
    /// they are destroyed, since a stopped disk still bills.
    public var keepStopped = false

    public init(
        desiredSize: Int = 1,
        labelPrefix: String = "swarm",
        heartbeatTimeout: Duration = .seconds(300),
        startWarning: Duration = .seconds(1200),
        startReplaceAfter: Duration? = nil,
        nullGrace: Duration = .seconds(180),
        rebootGrace: Duration = .seconds(300),
        maxReboots: Int = 1,
        destroyRetryAfter: Duration = .seconds(120),
        statusInterval: Duration = .seconds(60),
        budgetPerDay: Double? = nil
    ) {
        self.desiredSize = desiredSize
        self.labelPrefix = labelPrefix
        self.heartbeatTimeout = heartbeatTimeout
        self.startWarning = startWarning
        self.startReplaceAfter = startReplaceAfter
        self.nullGrace = nullGrace
        self.rebootGrace = rebootGrace
        self.maxReboots = maxReboots
        self.destroyRetryAfter = destroyRetryAfter
        self.statusInterval = statusInterval
        self.budgetPerDay = budgetPerDay
    }

    /// `<prefix>-`: what the fleet's labels start with.
    public var labelStem: String { labelPrefix + "-" }
}

/// An instance the control plane's database knows, with what was last seen of it.
public struct FleetMember: Sendable, Hashable {
    public var id: Int
    public var label: String
    /// The offer it was rented from.
    public var offerID: Int?
    public var machineID: Int?
    /// The offer's price when rented, $/h.
    public var dphTotal: Double?
    public var createdAt: Date
    /// The latest by-id record; nil when vast answered null.
    public var vast: Instance?
    /// From the worker's pings, with the download's progress or the error.
    public var stage: WorkerStage?
    public var lastPing: Date?
    /// The newest lines of the instance's log, from the worker's pings or `request_logs`.
    public var logTail: [String]
    public var reboots: Int
    public var lastRebootAt: Date?
    public var destroyRequestedAt: Date?
    public var lastStatusAt: Date?
    public var warnedSlowStart: Bool
    /// Stopped by the scaler: disk kept, GPU released; the planner leaves it to the scaler.
    public var stoppedAt: Date?
    /// When the scaler last started it again after a stop.
    public var resumedAt: Date?
    /// What it bills while stopped, $/h (its disk at the offer's `storage_cost`); nil: unknown.
    public var storageDollarsPerHour: Double?

    public init(
        id: Int,
        label: String,
        offerID: Int? = nil,
        machineID: Int? = nil,
        dphTotal: Double? = nil,
        createdAt: Date,
        vast: Instance? = nil,
        stage: WorkerStage? = nil,
        lastPing: Date? = nil,
        logTail: [String] = [],
        reboots: Int = 0,
        lastRebootAt: Date? = nil,
        destroyRequestedAt: Date? = nil,
        lastStatusAt: Date? = nil,
        warnedSlowStart: Bool = false,
        stoppedAt: Date? = nil,
        resumedAt: Date? = nil,
        storageDollarsPerHour: Double? = nil
    ) {
        self.id = id
        self.label = label
        self.offerID = offerID
        self.machineID = machineID
        self.dphTotal = dphTotal
        self.createdAt = createdAt
        self.vast = vast
        self.stage = stage
        self.lastPing = lastPing
        self.logTail = logTail
        self.reboots = reboots
        self.lastRebootAt = lastRebootAt
        self.destroyRequestedAt = destroyRequestedAt
        self.lastStatusAt = lastStatusAt
        self.warnedSlowStart = warnedSlowStart
        self.stoppedAt = stoppedAt
        self.resumedAt = resumedAt
        self.storageDollarsPerHour = storageDollarsPerHour
    }
}

/// Everything one reconcile round knows.
public struct FleetObservation: Sendable {
    public var now: Date
    public var members: [FleetMember]
    /// Every instance of the account when listed this round (for orphans); nil when not listed.
    public var accountInstances: [Instance]?
    /// Ranked offers, best first (`OfferRanking.ranked`).
    public var offers: [RankedOffer]
    /// Machines that failed the fleet before.
    public var failedMachineIDs: Set<Int>
    /// Dollars spent since 00:00 UTC.
    public var spentToday: Double
    /// Set while a failure another machine cannot fix stops creation (a `.hold` of an earlier round).
    public var creationHold: String?
    /// Why `offers` is empty although a search was wanted (the search failed), for the warning.
    public var offerSearchProblem: String?

    public init(
        now: Date,
        members: [FleetMember],
        accountInstances: [Instance]? = nil,
        offers: [RankedOffer] = [],
        failedMachineIDs: Set<Int> = [],
        spentToday: Double = 0,
        creationHold: String? = nil,
        offerSearchProblem: String? = nil
    ) {
        self.now = now
        self.members = members
        self.accountInstances = accountInstances
        self.offers = offers
        self.failedMachineIDs = failedMachineIDs
        self.spentToday = spentToday
        self.creationHold = creationHold
        self.offerSearchProblem = offerSearchProblem
    }
}

/// What a round decides; the caller carries it out and records it.
public enum FleetAction: Sendable, Hashable {
    /// Rent this offer under this label; record the new id before anything else.
    case create(offer: RankedOffer, label: String)
    case reboot(id: Int, reason: String)
    /// Destroy, add the machine to the failed ones; the replacement is created once the destroy is confirmed,
    /// so two instances are never paid for.
    case replace(id: Int, machineID: Int?, reason: String)
    /// Destroy (scale down, orphan, a destroy not yet confirmed).
    case destroy(id: Int, reason: String)
    /// vast no longer has it: stop tracking it (it bills nothing).
    case forget(id: Int, reason: String)
    /// Stop creating until the configuration changes.
    case hold(reason: String)
    /// Something the operator should read; `id` nil for the fleet as a whole.
    case warn(id: Int?, message: String)
    /// The periodic status line of a starting instance; record `lastStatusAt`.
    case report(id: Int, line: String)
}

extension FleetAction: CustomStringConvertible {
    /// One line for the log.
    public var description: String {
        switch self {
        case .create(let ranked, let label):
            let offer = ranked.offer
            let price = String(format: "$%.3f/h, %.0f Mb/s", offer.dphTotal ?? 0, offer.inetDownMbps ?? 0)
            let machine = offer.machineID.map(String.init) ?? "unknown"
            return "create \(label) on offer \(offer.id) (\(offer.gpuSummary), \(price), machine \(machine)): about "
                + String(format: "$%.4f", ranked.cost.total) + " in its first 10 minutes"
        case .reboot(let id, let reason): return "reboot instance \(id): \(reason)"
        case .replace(let id, let machine, let reason):
            return "replace instance \(id) (machine \(machine.map(String.init) ?? "unknown")) on another machine: \(reason)"
        case .destroy(let id, let reason): return "destroy instance \(id): \(reason)"
        case .forget(let id, let reason): return "forget instance \(id): \(reason)"
        case .hold(let reason): return "hold creation: \(reason)"
        case .warn(let id, let message): return id.map { "instance \($0): \(message)" } ?? message
        case .report(_, let line): return line
        }
    }
}

/// The fleet's reconcile rules as a pure function of what is known: no I/O, no clock, so every rule is testable.
public struct FleetPlanner: Sendable {
    public var policy: FleetPolicy
    /// The unique part of a new label; random by default.
    public var makeUnique: @Sendable () -> String

    public init(policy: FleetPolicy, makeUnique: @escaping @Sendable () -> String = { String(UUID().uuidString.lowercased().prefix(8)) }) {
        self.policy = policy
        self.makeUnique = makeUnique
    }

    public func plan(_ observation: FleetObservation) -> [FleetAction] {
        var actions: [FleetAction] = []
        var occupying = 0
        var occupiedMachines: Set<Int> = []
        var staying: [(member: FleetMember, healthy: Bool)] = []
        var hold = observation.creationHold
        for member in observation.members {
            // A stopped instance holds no GPU and no slot: the scaler resumes or destroys it.
            if member.stoppedAt != nil, member.destroyRequestedAt == nil {
                if !policy.keepStopped {
                    actions.append(
                        .destroy(id: member.id, reason: "stopped, and the scaler is off or outranked by 'instance up|down'; its disk still bills")
                    )
                }
                continue
            }
            let verdict = assess(member, now: observation.now)
            actions += verdict.actions
            if verdict.occupiesSlot {
                occupying += 1
                if let machine = member.machineID ?? member.vast?.machineID { occupiedMachines.insert(machine) }
            }
            if verdict.occupiesSlot, !verdict.isLeaving { staying.append((member, verdict.isHealthy)) }
            if let reason = verdict.hold { hold = reason }
        }
        if let hold, observation.creationHold == nil { actions.append(.hold(reason: hold)) }

        // Leaving instances still bill until their destroy is confirmed, so they hold their slot: a replacement
        // waits for the destroy, and scale-down counts only the ones staying.
        if staying.count > policy.desiredSize {
            actions += scaleDown(staying, excess: staying.count - policy.desiredSize)
        } else if occupying < policy.desiredSize {
            actions += scaleUp(
                observation,
                missing: policy.desiredSize - occupying,
                avoiding: observation.failedMachineIDs.union(occupiedMachines),
                hold: hold
            )
        }

        let known = Set(observation.members.map(\.id))
        for instance in observation.accountInstances ?? [] where !known.contains(instance.id) {
            guard let label = instance.label, label.hasPrefix(policy.labelStem) else { continue }
            actions.append(.destroy(id: instance.id, reason: "orphan: labeled \(label) but not in the fleet's database"))
        }
        return actions
    }

    // MARK: - One instance

    private struct Verdict {
        var actions: [FleetAction] = []
        /// Counts toward the fleet size: running, starting, or being destroyed (still billing).
        var occupiesSlot = true
        /// Being destroyed or replaced.
        var isLeaving = false
        /// READY and pinging.
        var isHealthy = false
        var hold: String?
    }

    private func assess(_ member: FleetMember, now: Date) -> Verdict {
        var verdict = Verdict()
        let id = member.id
        if let requested = member.destroyRequestedAt {
            verdict.isLeaving = true
            if member.vast == nil || member.vast?.isReleased == true {
                verdict.actions.append(.forget(id: id, reason: "destroy confirmed"))
                verdict.occupiesSlot = false
            } else if now.timeIntervalSince(requested) >= policy.destroyRetryAfter.seconds {
                verdict.actions.append(
                    .destroy(id: id, reason: "still listed \(Self.span(now.timeIntervalSince(requested))) after the destroy; asking again")
                )
            }
            return verdict
        }
        guard let vast = member.vast else {
            if now.timeIntervalSince(member.createdAt) < policy.nullGrace.seconds {
                verdict.actions += reportIfDue(member, now: now, line: "waiting for vast to show the new instance")
            } else {
                verdict.actions.append(.forget(id: id, reason: "vast no longer knows the instance"))
                verdict.occupiesSlot = false
            }
            return verdict
        }

        // Log lines only diagnose a start: a serving worker's log may hold an old, harmless match.
        let logLines = member.stage == .ready ? [] : member.logTail
        if let failure = KnownFailure.recognize(statusMessage: vast.statusMessage, logLines: logLines) {
            verdict.isLeaving = true
            if failure.anotherMachineMayHelp {
                verdict.actions.append(.replace(id: id, machineID: member.machineID ?? vast.machineID, reason: failure.description))
            } else {
                verdict.actions.append(.destroy(id: id, reason: failure.description))
                verdict.hold = failure.description
            }
            return verdict
        }

        // The worker's own diagnosis. A permanent failure (a missing or refused token, too small a disk) would
        // follow the fleet to any machine: destroy this one and create no other until the operator fixes it.
        if let failure = member.stage?.failure {
            verdict.isLeaving = true
            switch failure.kind {
            case .permanent:
                verdict.actions.append(.destroy(id: id, reason: "its worker cannot start: \(failure.reason)"))
                verdict.hold =
                    "the worker of \(member.label) (\(id)) cannot start, and another instance would fail alike: "
                    + "\(failure.reason); fix it in serve's configuration (its environment, --instance-env, --disk, the template)"
            case .transient:
                verdict.actions.append(
                    .replace(id: id, machineID: member.machineID ?? vast.machineID, reason: "its worker failed: \(failure.reason)")
                )
            }
            return verdict
        }

        // A resume waiting for its GPU shows `stopped`: not dead, the scaler bounds the wait.
        if let resumed = member.resumedAt, vast.actualStatus == .stopped {
            verdict.actions += reportIfDue(
                member,
                now: now,
                line: "resuming for \(Self.span(now.timeIntervalSince(resumed))): vast is scheduling it (waiting for its GPU)"
            )
            return verdict
        }
        let started = max(member.createdAt, member.lastRebootAt ?? member.createdAt, member.resumedAt ?? member.createdAt)
        let sinceStart = now.timeIntervalSince(started)
        // Silence counts from the last ping or the last (re)start, whichever is later: a rebooted worker needs
        // time to ping again. A worker never heard from is judged by the start thresholds instead.
        let quiet = member.lastPing.map { now.timeIntervalSince(max($0, started)) }
        let silent = quiet.map { $0 > policy.heartbeatTimeout.seconds } ?? false
        let deadReason: String? =
            if let status = vast.actualStatus, status.isDead {
                "vast reports it \(status)"
            } else if silent, let quiet {
                "no worker ping for \(Self.span(quiet))"
            } else {
                nil
            }
        if let deadReason {
            if let rebooted = member.lastRebootAt, now.timeIntervalSince(rebooted) < policy.rebootGrace.seconds {
                verdict.actions += reportIfDue(member, now: now, line: "rebooted \(Self.span(now.timeIntervalSince(rebooted))) ago; \(deadReason)")
            } else if member.reboots < policy.maxReboots {
                verdict.actions.append(.reboot(id: id, reason: deadReason))
            } else {
                verdict.isLeaving = true
                verdict.actions.append(
                    .replace(
                        id: id,
                        machineID: member.machineID ?? vast.machineID,
                        reason: "\(deadReason); \(member.reboots) reboot\(member.reboots == 1 ? "" : "s") did not help"
                    )
                )
            }
            return verdict
        }

        if member.stage == .ready, !silent {
            verdict.isHealthy = true
            return verdict
        }
        if let limit = policy.startReplaceAfter, sinceStart >= limit.seconds {
            verdict.isLeaving = true
            verdict.actions.append(
                .replace(id: id, machineID: member.machineID ?? vast.machineID, reason: "not ready after \(Self.span(sinceStart))")
            )
            return verdict
        }
        if sinceStart >= policy.startWarning.seconds, !member.warnedSlowStart {
            verdict.actions.append(
                .warn(id: id, message: "still starting after \(Self.span(sinceStart)): \(statusText(member, vast)); \(slowStartHint(member, vast))")
            )
        }
        verdict.actions += reportIfDue(member, now: now, line: "starting for \(Self.span(sinceStart)): \(statusText(member, vast))")
        return verdict
    }

    private func reportIfDue(_ member: FleetMember, now: Date, line: String) -> [FleetAction] {
        guard member.lastStatusAt.map({ now.timeIntervalSince($0) >= policy.statusInterval.seconds }) ?? true else { return [] }
        return [.report(id: member.id, line: "\(member.label) (\(member.id)): \(line)")]
    }

    private func statusText(_ member: FleetMember, _ vast: Instance) -> String {
        var text = "vast \(vast.actualStatus?.description ?? "setting up")"
        if let message = vast.statusMessage, !message.isEmpty { text += " \"\(message.prefix(120))\"" }
        text += ", worker " + (member.stage?.name.rawValue ?? "not heard from")
        if let detail = member.stage?.detail { text += " \(detail)" }
        return text
    }

    /// vastai.md §2.2: a slow pull and a stuck one look the same from outside.
    private func slowStartHint(_ member: FleetMember, _ vast: Instance) -> String {
        switch (vast.actualStatus, member.stage) {
        case (.created?, _), (nil, _):
            "vast has not started the container; the host may be unable to start it"
        case (.loading?, _):
            "the image pull is slow or stuck (vast shows no byte progress); a higher --min-inet-down or a host with the image cached helps"
        case (_, .downloading?):
            "the models are still downloading; a host with a faster inet_down helps"
        default:
            "the container runs but the worker is not READY; read its log with 'swarmctl instance logs'"
        }
    }

    // MARK: - The fleet

    private func scaleDown(_ staying: [(member: FleetMember, healthy: Bool)], excess: Int) -> [FleetAction] {
        // Instances not serving go first, then the newest: the oldest ready one has proven itself.
        staying.sorted { a, b in
            if a.healthy != b.healthy { return !a.healthy }
            return (a.member.createdAt, a.member.id) > (b.member.createdAt, b.member.id)
        }.prefix(excess).map { .destroy(id: $0.member.id, reason: "the fleet size is \(policy.desiredSize)") }
    }

    /// Creates on the best offers, one instance per machine, never on `avoiding` (failed or already used).
    private func scaleUp(_ observation: FleetObservation, missing: Int, avoiding: Set<Int>, hold: String?) -> [FleetAction] {
        if let hold {
            return [.warn(id: nil, message: "not creating instances until the configuration changes: \(hold)")]
        }
        var usedMachines = avoiding
        var actions: [FleetAction] = []
        var planned = 0.0
        var created = 0
        var candidates = observation.offers.makeIterator()
        for _ in 0..<missing {
            var next = candidates.next()
            while let machine = next?.offer.machineID, usedMachines.contains(machine) { next = candidates.next() }
            guard let offer = next else {
                let why =
                    observation.offerSearchProblem.map { "the offer search failed (\($0))" }
                    ?? "no offer fits the filters on a machine that has not failed before"
                actions.append(.warn(id: nil, message: "\(why); \(missing - created) instance(s) missing"))
                break
            }
            if let budget = policy.budgetPerDay, observation.spentToday + planned + offer.cost.total > budget {
                actions.append(
                    .warn(
                        id: nil,
                        message: String(
                            format:
                                "not creating: the daily budget of $%.2f would be exceeded ($%.2f spent today, the next instance costs about $%.2f in its first 10 minutes)",
                            budget,
                            observation.spentToday + planned,
                            offer.cost.total
                        )
                    )
                )
                break
            }
            planned += offer.cost.total
            created += 1
            if let machine = offer.offer.machineID { usedMachines.insert(machine) }
            actions.append(.create(offer: offer, label: policy.labelStem + makeUnique()))
        }
        return actions
    }

    static func span(_ seconds: TimeInterval) -> String {
        let whole = Int(max(0, seconds).rounded())
        if whole < 60 { return "\(whole) s" }
        if whole < 3600 { return "\(whole / 60) min \(whole % 60) s" }
        return "\(whole / 3600) h \(whole % 3600 / 60) min"
    }
}
