import Foundation
import JobProtocol
import Logging
import SwarmCore
import VastAI

/// What the fleet must remember across restarts. The control plane implements it on its database;
/// `InMemoryFleetStore` is the reference.
public protocol FleetStore: Sendable {
    /// The fleet's instances, with the workers' latest pings (stage, time, log tail) merged in.
    func members() async throws -> [FleetMember]
    /// Called as soon as vast returns the new id, before anything else.
    func insert(_ member: FleetMember) async throws
    func update(_ member: FleetMember) async throws
    /// The instance is gone from vast; the control plane revokes its worker key here.
    func remove(id: Int) async throws
    func failedMachineIDs() async throws -> Set<Int>
    func addFailedMachine(_ id: Int) async throws
    func creationHold() async throws -> String?
    func setCreationHold(_ reason: String?) async throws
    /// The instance count `swarmctl instance up|down` set, kept across restarts; nil: the policy's own.
    func desiredSize() async throws -> Int?
    /// Dollars spent since 00:00 UTC of `now`, on instances present and past: `$/h` while running, the storage price
    /// while stopped.
    func spentToday(now: Date) async throws -> Double
    /// A warm stop begins: from `time` the instance bills its storage only, until `recordResumed`.
    func recordStopped(id: Int, at time: Date) async throws
    /// The instance runs, and bills `$/h`, again.
    func recordResumed(id: Int, at time: Date) async throws
    /// The scaler's decision in words, kept for `swarmctl instance status` when it changes.
    func recordScalerDecision(_ text: String) async throws
}

extension FleetStore {
    /// Stores that show no status keep nothing.
    public func recordScalerDecision(_ text: String) async throws {}
}

/// Carries out `FleetPlanner`'s decisions against vast.ai, one round at a time: observe every member by id, list the
/// account now and then (orphans), search offers only when an instance is missing, plan, then act and record.
/// A round that cannot see every member acts on nothing, since a failed read looks like a vanished instance.
public actor FleetReconciler {
    private let client: VastAIClient
    private let store: any FleetStore
    private var planner: FleetPlanner
    /// The policy's size, which the store's (set by `swarmctl instance up|down`) overrides.
    private let configuredSize: Int
    private let filter: OfferFilter
    private let download: DownloadEstimate
    private let makeRequest: @Sendable (_ label: String) async throws -> CreateInstanceRequest
    private let logger: Logger
    /// Rounds between account listings (vast rate-limits the list harder than the by-id call).
    private let listEvery: Int
    private let offersMaxAge: Duration
    /// Rounds left before the next account listing; 0: list this round.
    private var roundsUntilList = 0
    private var cachedOffers: (offers: [RankedOffer], at: ContinuousClock.Instant)?
    private var searchBlockedUntil: Date?
    /// Offers that failed at create because someone rented them first, until when they are left out: vast's search
    /// can list a rented offer for a while, and asking for it again each round would never rent anything.
    private var takenOffers: [Int: Date] = [:]
    private let takenOfferPause: TimeInterval
    /// Creates tried in one round when offers turn out taken, the first included.
    private let createAttempts = 3
    /// The scaler (issue 23); nil: the fleet keeps its size.
    private var scaling: FleetScaling?
    /// Since when each ready worker has held no job; a worker first seen idle starts from the records'
    /// (`FleetLoad.idleSince`), so that a restart does not give idle workers a fresh timeout.
    private var idleSince: [Int: Date] = [:]
    /// Instances whose resume vast refused.
    private var refusedResumes: Set<Int> = []
    /// The scaler's latest decision, for status.
    public private(set) var lastDecision: ScalerDecision?

    /// - Parameter makeRequest: the create body for a label; the control plane mints the instance's worker key here.
    public init(
        client: VastAIClient,
        store: any FleetStore,
        planner: FleetPlanner,
        filter: OfferFilter,
        download: DownloadEstimate,
        listEvery: Int = 4,
        offersMaxAge: Duration = .seconds(120),
        takenOfferPause: Duration = .seconds(600),
        logger: Logger = Logger(label: "vastai.fleet"),
        makeRequest: @escaping @Sendable (_ label: String) async throws -> CreateInstanceRequest
    ) {
        self.client = client
        self.store = store
        self.planner = planner
        self.configuredSize = planner.policy.desiredSize
        self.filter = filter
        self.download = download
        self.listEvery = max(1, listEvery)
        self.offersMaxAge = offersMaxAge
        self.takenOfferPause = takenOfferPause.seconds
        self.logger = logger
        self.makeRequest = makeRequest
    }

    /// Reconciles every `interval` until cancelled; a failed round is logged and retried on the next tick.
    public func run(interval: Duration = .seconds(15)) async {
        while !Task.isCancelled {
            do {
                _ = try await reconcile()
            } catch is CancellationError {
                return
            } catch {
                logger.error("fleet round failed; retrying next round", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: interval)
        }
    }

    /// One round. Store errors end it; vast errors on an action are logged and the round goes on.
    /// - Returns: the actions decided, for tests and status.
    @discardableResult
    public func reconcile(now: Date = Date()) async throws -> [FleetAction] {
        // Read every round, so that `swarmctl instance down` holds in a server that is already running.
        let override = try await store.desiredSize()
        let wanted = max(0, override ?? configuredSize)
        if scaling == nil || override != nil, wanted != planner.policy.desiredSize {
            logger.notice("fleet size now \(wanted)", metadata: ["was": "\(planner.policy.desiredSize)", "configured": "\(configuredSize)"])
            planner.policy.desiredSize = wanted
        }
        var members = try await store.members()
        for index in members.indices {
            members[index].vast = try await client.instance(id: members[index].id)
        }
        // The list and the search only feed orphan reaping and creation: when they fail, recovery still runs.
        var account: [Instance]?
        if roundsUntilList == 0 {
            do {
                account = try await client.instances()
                roundsUntilList = listEvery - 1
            } catch let error as VastAIError {
                logger.warning("cannot list the account's instances; orphans are looked for next round", metadata: ["error": "\(error)"])
            }
        } else {
            roundsUntilList -= 1
        }
        // `swarmctl instance up N|down` outranks the scaler, as it outranks --fleet-size.
        planner.policy.keepStopped = scaling != nil && override == nil
        if let scaling, override == nil {
            members = try await scale(members, scaling, now: now)
        }
        let failed = try await store.failedMachineIDs()
        let staying = members.filter { $0.destroyRequestedAt == nil && $0.stoppedAt == nil }.count
        var offers: [RankedOffer] = []
        var searchProblem: String?
        if staying < planner.policy.desiredSize {
            do {
                offers = try await rankedOffers(excluding: failed)
            } catch let error as VastAIError {
                searchProblem = error.description
            }
        }
        takenOffers = takenOffers.filter { $0.value > now }
        var observation = FleetObservation(
            now: now,
            members: members,
            accountInstances: account,
            offers: offers.filter { takenOffers[$0.offer.id] == nil },
            failedMachineIDs: failed,
            spentToday: try await store.spentToday(now: now),
            creationHold: try await store.creationHold(),
            offerSearchProblem: searchProblem
        )
        var actions = planner.plan(observation)
        var decided: [FleetAction] = []
        let byID = Dictionary(members.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for attempt in 1...createAttempts {
            decided += actions
            var taken = false
            // One failed action (a destroy vast refuses) must not keep the others from happening.
            for action in actions {
                do {
                    try await perform(action, member: action.instanceID.flatMap { byID[$0] }, now: now)
                } catch let error as VastAIError {
                    if error.code == .offerUnavailable, case .create(let ranked, _) = action {
                        takenOffers[ranked.offer.id] = now.addingTimeInterval(takenOfferPause)
                        taken = true
                        logger.warning(
                            "offer taken before it could be rented; trying the next best",
                            metadata: ["offer": "\(ranked.offer.id)", "left_out_for": "\(FleetPlanner.span(takenOfferPause))"]
                        )
                    } else {
                        logger.error("fleet action failed; the next round decides again", metadata: ["action": "\(action)", "error": "\(error)"])
                    }
                }
            }
            guard taken, attempt < createAttempts else { break }
            // Plan the creation again, without the taken offers and with the instances this round did rent.
            observation.members = try await store.members()
            observation.offers = observation.offers.filter { takenOffers[$0.offer.id] == nil }
            actions = planner.plan(observation).filter { if case .create = $0 { true } else { false } }
        }
        return decided
    }

    /// Turns on the scaler: from the next round the wanted count follows the queue, idle workers are stopped or
    /// destroyed, stopped ones resumed.
    public func enableScaling(_ scaling: FleetScaling) {
        self.scaling = scaling
    }

    /// One scaler round: decide, stop/resume/destroy as decided, and set the planner's size to the instances that
    /// stay plus the rentals, which the planner then makes.
    /// - Returns: the members as they are after the scaler's actions.
    private func scale(_ members: [FleetMember], _ scaling: FleetScaling, now: Date) async throws -> [FleetMember] {
        let settings = try await scaling.settings()
        let load = try await scaling.load()
        var instances: [ScalerInstance] = []
        for member in members where member.destroyRequestedAt == nil {
            let state: ScalerInstance.State
            let pingedSinceResume = member.resumedAt.map { resumed in (member.lastPing ?? .distantPast) > resumed } ?? true
            if member.stoppedAt != nil {
                state = .stopped
            } else if member.resumedAt != nil, !(member.stage == .ready && pingedSinceResume) {
                state = .resuming
            } else if member.stage == .ready {
                state = load.busyWorkers.contains(member.label) ? .busy : .idle
            } else {
                state = .booting
            }
            if state == .idle {
                // Never before its resume: what the records hold then is from before the stop.
                let recorded = load.idleSince[member.label].map { max($0, member.resumedAt ?? $0) }
                idleSince[member.id] = idleSince[member.id] ?? min(recorded ?? now, now)
            } else {
                idleSince[member.id] = nil
            }
            instances.append(
                ScalerInstance(
                    id: member.id,
                    state: state,
                    dph: member.dphTotal ?? member.vast?.dphTotal ?? 0,
                    diskGB: scaling.diskGB,
                    // The price recorded at rental (migration 9); the setting's for instances rented before it.
                    storagePerHour: member.storageDollarsPerHour
                        ?? InstanceBilling.storagePerHour(diskGB: scaling.diskGB, perGBMonth: scaling.storagePerGBMonth),
                    idleSince: idleSince[member.id],
                    resumeAskedAt: member.resumedAt,
                    resumeFailed: refusedResumes.contains(member.id)
                )
            )
        }
        let decision = FleetScaler.decide(
            ScalerInput(
                now: now,
                settings: settings,
                queue: load.queue,
                instances: instances,
                coldStart: scaling.coldStart,
                expectedIdleGap: scaling.expectedIdleGap,
                resumeTimeout: scaling.resumeTimeout,
                spentToday: try await store.spentToday(now: now),
                budgetPerDay: planner.policy.budgetPerDay
            )
        )
        if lastDecision?.wanted != decision.wanted || lastDecision?.reason != decision.reason {
            logger.notice("scaler: \(decision.wanted) worker(s) wanted: \(decision.reason)", metadata: ["settings": "\(settings.summary)"])
        }
        // Kept when something is done or the wanted count's reason changes, not every round an idle time grows.
        let acted = decision.choices.filter { $0.action != .keep }.map(\.description)
        if !acted.isEmpty || lastDecision?.wanted != decision.wanted || lastDecision?.reason != decision.reason {
            let text =
                "\(decision.wanted) worker(s) wanted (\(settings.summary)): \(decision.reason)"
                + (acted.isEmpty ? "" : "; " + acted.joined(separator: "; ")) + " [\(now.formatted(.iso8601))]"
            try await store.recordScalerDecision(text)
        }
        lastDecision = decision

        var byID = Dictionary(members.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for choice in decision.choices {
            guard let id = choice.id, var member = byID[id] else { continue }
            var resumed = false
            do {
                switch choice.action {
                case .keep, .rent:
                    continue
                case .stop:
                    try await client.stopInstance(id: id)
                    member.stoppedAt = now
                    member.resumedAt = nil
                    idleSince[id] = nil
                case .resume:
                    do {
                        try await client.startInstance(id: id)
                        resumed = true
                    } catch let error as VastAIError {
                        // Its GPU went to someone else: the next round destroys it and rents anew.
                        refusedResumes.insert(id)
                        logger.warning("resume refused; a new rental replaces it next round", metadata: ["instance": "\(id)", "error": "\(error)"])
                    }
                    member.stoppedAt = nil
                    member.resumedAt = now
                case .destroy:
                    try await client.destroyInstance(id: id)
                    member.destroyRequestedAt = now
                    refusedResumes.remove(id)
                    idleSince[id] = nil
                }
                try await store.update(member)
                // The stop history bills storage while stopped; a refused resume stays stopped until its destroy.
                if choice.action == .stop { try await store.recordStopped(id: id, at: now) }
                if resumed { try await store.recordResumed(id: id, at: now) }
                byID[id] = member
                logger.notice("scaler: \(choice)", metadata: ["instance": "\(id)"])
            } catch let error as VastAIError {
                logger.error("scaler action failed; the next round decides again", metadata: ["action": "\(choice)", "error": "\(error)"])
            }
        }
        let updated = members.map { byID[$0.id] ?? $0 }
        let staying = updated.count { $0.destroyRequestedAt == nil && $0.stoppedAt == nil }
        planner.policy.desiredSize = staying + decision.rentals
        return updated
    }

    private func rankedOffers(excluding failed: Set<Int>) async throws -> [RankedOffer] {
        if let cached = cachedOffers, ContinuousClock.now - cached.at < offersMaxAge { return cached.offers }
        // The daily search quota: asking again before its reset only burns requests.
        if let until = searchBlockedUntil, Date() < until {
            throw VastAIError(.searchQuotaExceeded(resetAt: until), operation: "search offers", message: "waiting for the quota to reset")
        }
        searchBlockedUntil = nil
        var filter = self.filter
        filter.excludedMachineIDs.formUnion(failed)
        let found: [Offer]
        do {
            found = try await client.searchOffers(query: filter.searchQuery)
        } catch let error as VastAIError {
            if case .searchQuotaExceeded(let resetAt) = error.code { searchBlockedUntil = resetAt ?? Date().addingTimeInterval(3600) }
            throw error
        }
        let ranking = OfferRanking(offers: found, filter: filter, download: download)
        if ranking.ranked.isEmpty { logger.warning("no vast.ai offer fits", metadata: ["why": "\(ranking.rejectionSummary)"]) }
        cachedOffers = (ranking.ranked, .now)
        return ranking.ranked
    }

    private func perform(_ action: FleetAction, member: FleetMember?, now: Date) async throws {
        let metadata: Logger.Metadata = ["instance": "\(action.instanceID.map(String.init) ?? "-")"]
        switch action {
        case .create(let ranked, let label):
            let created: CreatedInstance
            do {
                created = try await client.createInstance(offerID: ranked.offer.id, try await makeRequest(label))
            } catch let error as VastAIError where error.code == .offerUnavailable {
                // Taken since the search: the offers are searched again next time they are needed.
                cachedOffers = nil
                throw error
            }
            do {
                try await store.insert(
                    FleetMember(
                        id: created.id,
                        label: label,
                        offerID: ranked.offer.id,
                        machineID: ranked.offer.machineID,
                        dphTotal: ranked.offer.dphTotal,
                        createdAt: now,
                        storageDollarsPerHour: ranked.offer.storageCostPerGBMonth.map {
                            InstanceBilling.storagePerHour(diskGB: filter.diskGB, perGBMonth: $0)
                        }
                    )
                )
            } catch {
                // Paid for but unrecorded: its label makes it an orphan that a later round destroys.
                logger.critical(
                    "rented instance could not be recorded",
                    metadata: ["instance": "\(created.id)", "label": "\(label)", "error": "\(error)"]
                )
                throw error
            }
            cachedOffers = nil
            logger.notice("\(action)", metadata: ["instance": "\(created.id)"])
        case .reboot(let id, _):
            try await client.rebootInstance(id: id)
            if var member {
                member.reboots += 1
                member.lastRebootAt = now
                try await store.update(member)
            }
            logger.warning("\(action)", metadata: metadata)
        case .replace(let id, let machine, _):
            try await client.destroyInstance(id: id)
            if let machine { try await store.addFailedMachine(machine) }
            try await markDestroyRequested(member, now: now)
            logger.warning("\(action)", metadata: metadata)
        case .destroy(let id, _):
            try await client.destroyInstance(id: id)
            try await markDestroyRequested(member, now: now)
            logger.notice("\(action)", metadata: metadata)
        case .forget(let id, _):
            try await store.remove(id: id)
            logger.notice("\(action)", metadata: metadata)
        case .hold(let reason):
            try await store.setCreationHold(reason)
            logger.error("\(action)")
        case .warn:
            if var member, !member.warnedSlowStart {
                member.warnedSlowStart = true
                try await store.update(member)
            }
            logger.warning("\(action)", metadata: metadata)
        case .report:
            if var member {
                member.lastStatusAt = now
                try await store.update(member)
            }
            logger.info("\(action)", metadata: metadata)
        }
    }

    private func markDestroyRequested(_ member: FleetMember?, now: Date) async throws {
        guard var member else { return }
        member.destroyRequestedAt = now
        try await store.update(member)
    }
}

extension FleetAction {
    /// The instance the action is about, if any.
    public var instanceID: Int? {
        switch self {
        case .reboot(let id, _), .replace(let id, _, _), .destroy(let id, _), .forget(let id, _), .report(let id, _): id
        case .warn(let id, _): id
        case .create, .hold: nil
        }
    }
}

/// `FleetStore` in memory: for tests, and the reference for a database-backed one.
public actor InMemoryFleetStore: FleetStore {
    private var records: [Int: FleetMember] = [:]
    private var removed: [FleetMember] = []
    private var stops: [Int: [InstanceBilling.Stop]] = [:]
    private var failed: Set<Int> = []
    private var hold: String?
    private var wanted: Int?

    public init() {}

    public func members() -> [FleetMember] { records.values.sorted { $0.id < $1.id } }
    public func insert(_ member: FleetMember) { records[member.id] = member }

    public func update(_ member: FleetMember) {
        // Pings arrive through `recordPing`; an update made from an older read must not erase them.
        var merged = member
        if let current = records[member.id] {
            merged.stage = current.stage
            merged.lastPing = current.lastPing
            merged.logTail = current.logTail
        }
        records[member.id] = merged
    }

    public func remove(id: Int) {
        // Billing ended when the destroy was sent.
        if var member = records.removeValue(forKey: id) {
            member.destroyRequestedAt = member.destroyRequestedAt ?? Date()
            removed.append(member)
        }
    }

    public func failedMachineIDs() -> Set<Int> { failed }
    public func addFailedMachine(_ id: Int) { failed.insert(id) }
    public func creationHold() -> String? { hold }
    public func setCreationHold(_ reason: String?) { hold = reason }
    public func desiredSize() -> Int? { wanted }
    public func setDesiredSize(_ size: Int?) { wanted = size }

    public func spentToday(now: Date) -> Double {
        spent(since: Calendar(identifier: .gregorian).startOfDay(for: now, in: TimeZone(identifier: "UTC")!), now: now)
    }

    /// Dollars spent between `start` and `now`, until each instance's destroy was sent.
    public func spent(since start: Date, now: Date) -> Double {
        (removed + records.values).reduce(0) { total, member in
            let window = (start: max(member.createdAt, start), end: min(member.destroyRequestedAt ?? now, now))
            guard let dph = member.dphTotal, window.end > window.start else { return total }
            return total
                + InstanceBilling.dollars(window, dollarsPerHour: dph, storagePerHour: member.storageDollarsPerHour, stops: stops[member.id] ?? [])
        }
    }

    public func recordStopped(id: Int, at time: Date) { stops[id, default: []].append(InstanceBilling.Stop(stoppedAt: time)) }

    public func recordResumed(id: Int, at time: Date) {
        if let open = stops[id]?.lastIndex(where: { $0.resumedAt == nil }) { stops[id]?[open].resumedAt = time }
    }

    /// What the worker's ping brings: its stage (with progress or error) and newest log lines.
    public func recordPing(id: Int, stage: WorkerStage, logTail: [String] = [], at time: Date = Date()) {
        records[id]?.stage = stage
        records[id]?.lastPing = time
        if !logTail.isEmpty { records[id]?.logTail = logTail }
    }
}

extension Calendar {
    fileprivate func startOfDay(for date: Date, in zone: TimeZone) -> Date {
        var calendar = self
        calendar.timeZone = zone
        return calendar.startOfDay(for: date)
    }
}
