import Foundation
import SwarmCore

/// RunPod's scaler types (runpod.md, "Autoscaling"), as `serve --scaler` spells them.
public enum ScalerType: String, Sendable, Hashable, Codable, CaseIterable {
    /// Add a worker when the oldest queued job has waited longer than `scalerValue` seconds.
    case queueDelay = "queue-delay"
    /// Want `ceil((inQueue + inProgress) / scalerValue)` workers.
    case requestCount = "request-count"
}

/// How many workers an endpoint keeps, RunPod's way. The defaults keep one persistent instance (the PRD's setup).
public struct ScalerSettings: Sendable, Hashable, Codable {
    public var workersMin: Int
    public var workersMax: Int
    /// Seconds a ready worker may sit without a job before it is scaled down.
    public var idleTimeout: Double
    public var scaler: ScalerType
    /// Seconds (queue-delay) or jobs per worker (request-count).
    public var scalerValue: Double
    /// Most stopped (disk kept, GPU released) instances kept for a fast resume; 0: scale-down always destroys.
    public var keepWarm: Int

    public init(
        workersMin: Int = 1,
        workersMax: Int = 1,
        idleTimeout: Double = 300,
        scaler: ScalerType = .queueDelay,
        scalerValue: Double = 4,
        keepWarm: Int = 1
    ) {
        self.workersMin = workersMin
        self.workersMax = workersMax
        self.idleTimeout = idleTimeout
        self.scaler = scaler
        self.scalerValue = scalerValue
        self.keepWarm = keepWarm
    }

    /// What is wrong with the settings, naming the flag; nil when they are usable.
    public var problem: String? {
        if workersMin < 0 { return "--workers-min: must be 0 or more" }
        if workersMax < 0 { return "--workers-max: must be 0 or more (0: no workers)" }
        if workersMin > workersMax { return "--workers-min \(workersMin) is more than --workers-max \(workersMax)" }
        if !(idleTimeout >= 1 && idleTimeout <= 86_400) { return "--idle-timeout: seconds from 1 to 86400" }
        if !(scalerValue >= 1) { return "--scaler-value: must be 1 or more (seconds for queue-delay, jobs per worker for request-count)" }
        if keepWarm < 0 { return "--keep-warm: must be 0 or more" }
        return nil
    }

    /// One line for logs and `instance status`.
    public var summary: String {
        let value = scaler == .queueDelay ? "\(Self.number(scalerValue)) s" : "\(Self.number(scalerValue)) jobs/worker"
        return "workers \(workersMin)–\(workersMax), \(scaler.rawValue) \(value), idle timeout \(Self.number(idleTimeout)) s, keep-warm \(keepWarm)"
    }

    static func number(_ value: Double) -> String { value == value.rounded() ? String(Int(value)) : String(format: "%.2f", value) }
}

/// The endpoint's queue as the scaler sees it.
public struct QueueLoad: Sendable, Hashable {
    public var inQueue: Int
    public var inProgress: Int
    /// Seconds the oldest queued job has waited; nil when none is queued.
    public var oldestQueuedAge: Double?

    public init(inQueue: Int = 0, inProgress: Int = 0, oldestQueuedAge: Double? = nil) {
        self.inQueue = inQueue
        self.inProgress = inProgress
        self.oldestQueuedAge = oldestQueuedAge
    }
}

/// One instance of the fleet as the scaler sees it.
public struct ScalerInstance: Sendable, Hashable {
    public enum State: String, Sendable, Hashable {
        /// Rented or resumed, its worker not READY yet.
        case booting
        /// READY, no job.
        case idle
        /// READY, running a job.
        case busy
        /// Stopped: disk kept, GPU released, storage billed.
        case stopped
        /// A resume was asked and the worker is not READY yet.
        case resuming
    }

    public var id: Int
    public var state: State
    /// $/h while running (`dph_total`).
    public var dph: Double
    public var diskGB: Double
    /// What its disk bills while stopped, $/h: its offer's `storage_cost` × `diskGB` (`InstanceBilling.storagePerHour`).
    public var storagePerHour: Double
    /// The end of its last job, or when it became ready (idle counts from the later).
    public var idleSince: Date?
    /// When the resume was asked (state `resuming`).
    public var resumeAskedAt: Date?
    /// vast refused the resume, or the instance sat in `scheduling`: its GPU is gone.
    public var resumeFailed: Bool

    public init(
        id: Int,
        state: State,
        dph: Double,
        diskGB: Double = 100,
        storagePerHour: Double? = nil,
        idleSince: Date? = nil,
        resumeAskedAt: Date? = nil,
        resumeFailed: Bool = false
    ) {
        self.id = id
        self.state = state
        self.dph = dph
        self.diskGB = diskGB
        // Without a price: vast's typical $0.15/GB/month.
        self.storagePerHour = storagePerHour ?? InstanceBilling.storagePerHour(diskGB: diskGB, perGBMonth: 0.15)
        self.idleSince = idleSince
        self.resumeAskedAt = resumeAskedAt
        self.resumeFailed = resumeFailed
    }
}

/// What a cold start costs: a new rental downloads the image and models, then boots; a resume only boots.
public struct ColdStart: Sendable, Hashable {
    /// Seconds to pull the image and download the models on a new instance.
    public var downloadSeconds: Double
    /// Seconds from a running container to a READY worker (SwarmUI's start).
    public var bootSeconds: Double

    public init(downloadSeconds: Double = 900, bootSeconds: Double = 90) {
        self.downloadSeconds = downloadSeconds
        self.bootSeconds = bootSeconds
    }
}

/// Everything one scaling decision depends on.
public struct ScalerInput: Sendable {
    public var now: Date
    public var settings: ScalerSettings
    public var queue: QueueLoad
    public var instances: [ScalerInstance]
    public var coldStart: ColdStart
    /// Seconds until the fleet is expected to be needed again after a scale-down (the gap between batches).
    public var expectedIdleGap: Double
    /// A resume not READY after this many seconds has failed (the GPU went to someone else).
    public var resumeTimeout: Double
    public var spentToday: Double
    public var budgetPerDay: Double?

    public init(
        now: Date,
        settings: ScalerSettings,
        queue: QueueLoad,
        instances: [ScalerInstance],
        coldStart: ColdStart = ColdStart(),
        expectedIdleGap: Double = 8 * 3600,
        resumeTimeout: Double = 600,
        spentToday: Double = 0,
        budgetPerDay: Double? = nil
    ) {
        self.now = now
        self.settings = settings
        self.queue = queue
        self.instances = instances
        self.coldStart = coldStart
        self.expectedIdleGap = expectedIdleGap
        self.resumeTimeout = resumeTimeout
        self.spentToday = spentToday
        self.budgetPerDay = budgetPerDay
    }
}

/// What to do with one instance, or a new rental (`id` nil).
public struct ScalerChoice: Sendable, Hashable, CustomStringConvertible {
    public enum Action: String, Sendable, Hashable {
        case keep, resume, stop, destroy, rent
    }

    public var id: Int?
    public var action: Action
    public var reason: String

    public init(id: Int?, action: Action, reason: String) {
        self.id = id
        self.action = action
        self.reason = reason
    }

    public var description: String { "\(action.rawValue) \(id.map { "instance \($0)" } ?? "a new instance"): \(reason)" }
}

/// The scaler's answer: how many workers are wanted (serving or starting) and what happens to each instance.
public struct ScalerDecision: Sendable, Hashable {
    public var wanted: Int
    /// Why `wanted` is what it is.
    public var reason: String
    /// One per instance in the input's order, then one `rent` per new instance.
    public var choices: [ScalerChoice]

    public func choice(for id: Int) -> ScalerChoice? { choices.first { $0.id == id } }
    public var rentals: Int { choices.count { $0.action == .rent } }
}

/// RunPod's scaler over vast.ai instances, as a pure function: queue, instances and settings in, a decision out.
///
/// - Scale-up resumes stopped instances first (seconds: the models are on their disk), then rents.
/// - Scale-down only takes ready workers idle past the idle timeout, never one running a job, and never below
///   `workersMin`. Each is stopped when keeping its disk until the next expected use costs less than the cold start
///   it saves, and `keepWarm` allows one more stopped instance; otherwise destroyed.
/// - A resume vast refused, or not ready within `resumeTimeout`, is destroyed and replaced by a rental.
/// - At the daily budget nothing new starts.
public enum FleetScaler {
    public static func decide(_ input: ScalerInput) -> ScalerDecision {
        let settings = input.settings
        let load = input.queue
        let instances = input.instances
        func count(_ states: ScalerInstance.State...) -> Int { instances.count { states.contains($0.state) } }
        let failedResumes = instances.filter(isFailedResume(input))
        let failedIDs = Set(failedResumes.map(\.id))
        let starting = count(.booting, .resuming) - failedResumes.count
        let serving = count(.idle, .busy)
        let active = serving + starting

        // Demand, before the min/max clamp.
        var (demand, why) = demand(load: load, settings: settings, serving: serving, starting: starting)
        var wanted = min(settings.workersMax, max(settings.workersMin, demand))
        if wanted != demand {
            why += wanted > demand ? "; raised to --workers-min \(settings.workersMin)" : "; capped at --workers-max \(settings.workersMax)"
        }
        if let budget = input.budgetPerDay, input.spentToday >= budget, wanted > active {
            wanted = active
            why += String(format: "; the daily budget of $%.2f is spent ($%.2f), so nothing new starts", budget, input.spentToday)
        }
        demand = wanted

        var choices: [Int: ScalerChoice] = [:]
        // Starting and busy instances stay; idle ones stay until their timeout, and while they are needed.
        var kept = 0
        for instance in instances where failedIDs.contains(instance.id) {
            let reason =
                instance.resumeFailed
                ? "the resume failed (its GPU was rented away while stopped); a new rental replaces it"
                : "not ready \(span(input.now.timeIntervalSince(instance.resumeAskedAt ?? input.now))) after the resume (vast shows it scheduling: its GPU is gone); a new rental replaces it"
            choices[instance.id] = ScalerChoice(id: instance.id, action: .destroy, reason: reason)
        }
        for instance in instances where (instance.state == .booting || instance.state == .resuming) && !failedIDs.contains(instance.id) {
            choices[instance.id] = ScalerChoice(id: instance.id, action: .keep, reason: instance.state == .booting ? "booting" : "resuming")
            kept += 1
        }
        for instance in instances where instance.state == .busy {
            choices[instance.id] = ScalerChoice(id: instance.id, action: .keep, reason: "running a job")
            kept += 1
        }
        // Idle ones: the longest-idle go first when there are too many.
        let idle = instances.filter { $0.state == .idle }.sorted { ($0.idleSince ?? input.now, $0.id) < ($1.idleSince ?? input.now, $1.id) }
        var stoppedCount = count(.stopped)
        var released: [ScalerInstance] = []
        for (index, instance) in idle.enumerated() {
            let idleFor = input.now.timeIntervalSince(instance.idleSince ?? input.now)
            let othersLeft = idle.count - index - 1
            if kept + othersLeft >= wanted, idleFor >= settings.idleTimeout {
                released.append(instance)
            } else {
                let reason =
                    kept + othersLeft >= wanted
                    ? "idle \(span(idleFor)) of the \(span(settings.idleTimeout)) idle timeout"
                    : "ready, wanted (\(wanted) worker\(wanted == 1 ? "" : "s"))"
                choices[instance.id] = ScalerChoice(id: instance.id, action: .keep, reason: reason)
                kept += 1
            }
        }
        for instance in released {
            let choice = release(instance, input: input, stoppedCount: stoppedCount)
            if choice.action == .stop { stoppedCount += 1 }
            choices[instance.id] = choice
        }

        // Scale-up: resume the stopped ones first (cheapest storage-to-speed first: the most recently stopped is
        // the likeliest to find its GPU free, but vast does not say; take the cheapest to run), then rent.
        var missing = max(0, wanted - kept)
        let stopped = instances.filter { $0.state == .stopped }.sorted { ($0.dph, $0.id) < ($1.dph, $1.id) }
        var stillStopped: [ScalerInstance] = []
        for instance in stopped {
            if missing > 0 {
                choices[instance.id] = ScalerChoice(
                    id: instance.id,
                    action: .resume,
                    reason: "\(why); its disk holds the models, so it is ready in about \(span(input.coldStart.bootSeconds))"
                )
                missing -= 1
            } else {
                stillStopped.append(instance)
            }
        }
        // The keep-warm cap: the most expensive disks go first.
        let warmCap = max(0, settings.keepWarm - released.count { choices[$0.id]?.action == .stop })
        for (index, instance) in stillStopped.sorted(by: { ($0.storagePerHour, $0.id) < ($1.storagePerHour, $1.id) }).enumerated() {
            choices[instance.id] =
                index < warmCap
                ? ScalerChoice(id: instance.id, action: .keep, reason: "stopped, kept warm (--keep-warm \(settings.keepWarm))")
                : ScalerChoice(id: instance.id, action: .destroy, reason: "more stopped instances than --keep-warm \(settings.keepWarm)")
        }
        var result = instances.compactMap { choices[$0.id] }
        for _ in 0..<missing { result.append(ScalerChoice(id: nil, action: .rent, reason: why)) }
        return ScalerDecision(wanted: wanted, reason: why, choices: result)
    }

    /// The wanted count before the min/max clamp, with its reason.
    static func demand(load: QueueLoad, settings: ScalerSettings, serving: Int, starting: Int) -> (Int, String) {
        let jobs = load.inQueue + load.inProgress
        switch settings.scaler {
        case .requestCount:
            let wanted = Int((Double(jobs) / settings.scalerValue).rounded(.up))
            return (
                wanted,
                "request-count: \(load.inQueue) queued + \(load.inProgress) in progress over \(ScalerSettings.number(settings.scalerValue)) per worker wants \(wanted)"
            )
        case .queueDelay:
            let active = serving + starting
            // Busy workers are needed; idle ones are not, and leave by their idle timeout.
            let base = min(active, load.inProgress)
            guard load.inQueue > 0 else { return (base, "queue-delay: nothing queued, \(load.inProgress) in progress") }
            let age = load.oldestQueuedAge ?? 0
            if active == 0 {
                // Nobody can take the job: waiting for the delay gains nothing.
                return (1, "queue-delay: \(load.inQueue) queued and no worker")
            }
            if age > settings.scalerValue, starting == 0 {
                return (
                    active + 1,
                    "queue-delay: the oldest queued job has waited \(span(age)), more than \(ScalerSettings.number(settings.scalerValue)) s"
                )
            }
            let detail =
                starting > 0
                ? "\(starting) worker(s) starting" : "the oldest has waited \(span(age)) of \(ScalerSettings.number(settings.scalerValue)) s"
            return (active, "queue-delay: \(load.inQueue) queued, \(detail)")
        }
    }

    /// Stop (keep the disk) or destroy an idle instance being scaled down.
    static func release(_ instance: ScalerInstance, input: ScalerInput, stoppedCount: Int) -> ScalerChoice {
        let idleFor = span(input.now.timeIntervalSince(instance.idleSince ?? input.now))
        // A resume boots too; only the download is saved.
        let warm = instance.storagePerHour * input.expectedIdleGap / 3600 + input.coldStart.bootSeconds / 3600 * instance.dph
        let cold = (input.coldStart.downloadSeconds + input.coldStart.bootSeconds) / 3600 * instance.dph
        let costs = String(
            format: "keeping its %.0f GB disk for the expected %@ gap, then resuming, costs $%.3f; a cold start $%.3f",
            instance.diskGB,
            span(input.expectedIdleGap),
            warm,
            cold
        )
        let base = "idle \(idleFor), past the \(span(input.settings.idleTimeout)) idle timeout"
        if stoppedCount >= input.settings.keepWarm {
            return ScalerChoice(
                id: instance.id,
                action: .destroy,
                reason: "\(base); --keep-warm \(input.settings.keepWarm) stopped instance(s) already"
            )
        }
        if warm < cold {
            return ScalerChoice(id: instance.id, action: .stop, reason: "\(base); \(costs)")
        }
        return ScalerChoice(id: instance.id, action: .destroy, reason: "\(base); \(costs)")
    }

    static func isFailedResume(_ input: ScalerInput) -> (ScalerInstance) -> Bool {
        { instance in
            guard instance.state == .resuming else { return false }
            if instance.resumeFailed { return true }
            guard let asked = instance.resumeAskedAt else { return false }
            return input.now.timeIntervalSince(asked) >= input.resumeTimeout
        }
    }

    static func span(_ seconds: Double) -> String { FleetPlanner.span(seconds) }
}
