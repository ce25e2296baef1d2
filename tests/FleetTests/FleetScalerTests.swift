import Fleet
import Foundation
import Testing
import VastAI

@Suite struct FleetScalerTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func ago(_ seconds: Double) -> Date { now.addingTimeInterval(-seconds) }

    static func idle(_ id: Int, for seconds: Double, dph: Double = 0.4, disk: Double = 100) -> ScalerInstance {
        ScalerInstance(id: id, state: .idle, dph: dph, diskGB: disk, idleSince: ago(seconds))
    }

    static func busy(_ id: Int) -> ScalerInstance { ScalerInstance(id: id, state: .busy, dph: 0.4, idleSince: ago(3600)) }
    static func booting(_ id: Int) -> ScalerInstance { ScalerInstance(id: id, state: .booting, dph: 0.4) }
    static func stopped(_ id: Int, dph: Double = 0.4, disk: Double = 100) -> ScalerInstance {
        ScalerInstance(id: id, state: .stopped, dph: dph, diskGB: disk)
    }

    static func decide(
        _ settings: ScalerSettings,
        queue: QueueLoad = QueueLoad(),
        _ instances: [ScalerInstance],
        gap: Double = 2 * 3600,
        spent: Double = 0,
        budget: Double? = nil
    ) -> ScalerDecision {
        FleetScaler.decide(
            ScalerInput(
                now: now,
                settings: settings,
                queue: queue,
                instances: instances,
                coldStart: ColdStart(downloadSeconds: 900, bootSeconds: 90),
                expectedIdleGap: gap,
                resumeTimeout: 600,
                spentToday: spent,
                budgetPerDay: budget
            )
        )
    }

    static func actions(_ decision: ScalerDecision) -> [String] {
        decision.choices.map { "\($0.action.rawValue)\($0.id.map { " \($0)" } ?? "")" }
    }

    static let requestCount = ScalerSettings(workersMin: 0, workersMax: 5, idleTimeout: 60, scaler: .requestCount, scalerValue: 10, keepWarm: 2)
    static let queueDelay = ScalerSettings(workersMin: 0, workersMax: 3, idleTimeout: 60, scaler: .queueDelay, scalerValue: 30, keepWarm: 1)

    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var settings: ScalerSettings
        var queue: QueueLoad
        var instances: [ScalerInstance]
        var wanted: Int
        var actions: [String]
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        // The defaults keep today's one persistent instance, busy or not.
        Row(name: "default: one instance, rent it", settings: ScalerSettings(), queue: QueueLoad(), instances: [], wanted: 1, actions: ["rent"]),
        Row(
            name: "default: an idle instance stays forever",
            settings: ScalerSettings(),
            queue: QueueLoad(),
            instances: [idle(1, for: 86_000)],
            wanted: 1,
            actions: ["keep 1"]
        ),
        Row(
            name: "--fleet-size 0: nothing, whatever the queue",
            settings: ScalerSettings(workersMin: 0, workersMax: 0),
            queue: QueueLoad(inQueue: 9, oldestQueuedAge: 600),
            instances: [],
            wanted: 0,
            actions: []
        ),
        // request-count: ceil((inQueue + inProgress) / scalerValue).
        Row(
            name: "request-count: 25 jobs / 10 wants 3",
            settings: requestCount,
            queue: QueueLoad(inQueue: 25),
            instances: [],
            wanted: 3,
            actions: ["rent", "rent", "rent"]
        ),
        Row(
            name: "request-count: 21 queued + 10 running / 10 wants 4, busy and booting count",
            settings: requestCount,
            queue: QueueLoad(inQueue: 21, inProgress: 10),
            instances: [busy(1), booting(2)],
            wanted: 4,
            actions: ["keep 1", "keep 2", "rent", "rent"]
        ),
        Row(
            name: "request-count: 200 jobs capped at --workers-max",
            settings: requestCount,
            queue: QueueLoad(inQueue: 200),
            instances: [busy(1)],
            wanted: 5,
            actions: ["keep 1", "rent", "rent", "rent", "rent"]
        ),
        Row(
            name: "request-count: scale-up resumes stopped instances before renting",
            settings: requestCount,
            queue: QueueLoad(inQueue: 30),
            instances: [stopped(1, dph: 0.5), stopped(2, dph: 0.3)],
            wanted: 3,
            actions: ["resume 1", "resume 2", "rent"]
        ),
        Row(
            name: "request-count: the cheapest stopped instance is resumed first",
            settings: requestCount,
            queue: QueueLoad(inQueue: 10),
            instances: [stopped(1, dph: 0.5), stopped(2, dph: 0.3)],
            wanted: 1,
            actions: ["keep 1", "resume 2"]
        ),
        Row(
            name: "request-count: empty queue, idle past the timeout, stopped (keep-warm 2)",
            settings: requestCount,
            queue: QueueLoad(),
            instances: [idle(1, for: 61), idle(2, for: 120)],
            wanted: 0,
            actions: ["stop 1", "stop 2"]
        ),
        Row(
            name: "request-count: idle within the timeout stays",
            settings: requestCount,
            queue: QueueLoad(),
            instances: [idle(1, for: 59)],
            wanted: 0,
            actions: ["keep 1"]
        ),
        Row(
            name: "request-count: a busy worker is never scaled down",
            settings: requestCount,
            queue: QueueLoad(inProgress: 1),
            instances: [busy(1), idle(2, for: 600)],
            wanted: 1,
            actions: ["keep 1", "stop 2"]
        ),
        Row(
            name: "request-count: keep-warm cap reached, the third is destroyed",
            settings: requestCount,
            queue: QueueLoad(),
            instances: [stopped(1), stopped(2), idle(3, for: 600)],
            wanted: 0,
            actions: ["keep 1", "keep 2", "destroy 3"]
        ),
        Row(
            name: "request-count: more stopped than keep-warm, the costliest disk goes",
            settings: requestCount,
            queue: QueueLoad(),
            instances: [stopped(1, disk: 100), stopped(2, disk: 300), stopped(3, disk: 50)],
            wanted: 0,
            actions: ["keep 1", "destroy 2", "keep 3"]
        ),
        Row(
            name: "request-count: workers-min 1 keeps the longest-idle's sibling",
            settings: ScalerSettings(workersMin: 1, workersMax: 5, idleTimeout: 60, scaler: .requestCount, scalerValue: 10, keepWarm: 1),
            queue: QueueLoad(),
            instances: [idle(1, for: 600), idle(2, for: 300)],
            wanted: 1,
            actions: ["stop 1", "keep 2"]
        ),
        // queue-delay: add a worker when the oldest queued job waited longer than scalerValue seconds.
        Row(
            name: "queue-delay: scale from zero at once",
            settings: queueDelay,
            queue: QueueLoad(inQueue: 1, oldestQueuedAge: 0),
            instances: [],
            wanted: 1,
            actions: ["rent"]
        ),
        Row(
            name: "queue-delay: from zero, a stopped instance is resumed",
            settings: queueDelay,
            queue: QueueLoad(inQueue: 4, oldestQueuedAge: 2),
            instances: [stopped(7)],
            wanted: 1,
            actions: ["resume 7"]
        ),
        Row(
            name: "queue-delay: waited 31 s > 30 s adds one",
            settings: queueDelay,
            queue: QueueLoad(inQueue: 5, inProgress: 1, oldestQueuedAge: 31),
            instances: [busy(1)],
            wanted: 2,
            actions: ["keep 1", "rent"]
        ),
        Row(
            name: "queue-delay: waited 29 s adds none",
            settings: queueDelay,
            queue: QueueLoad(inQueue: 5, inProgress: 1, oldestQueuedAge: 29),
            instances: [busy(1)],
            wanted: 1,
            actions: ["keep 1"]
        ),
        Row(
            name: "queue-delay: one already starting, no second",
            settings: queueDelay,
            queue: QueueLoad(inQueue: 5, inProgress: 1, oldestQueuedAge: 300),
            instances: [busy(1), booting(2)],
            wanted: 2,
            actions: ["keep 1", "keep 2"]
        ),
        Row(
            name: "queue-delay: at --workers-max, none added",
            settings: queueDelay,
            queue: QueueLoad(inQueue: 9, inProgress: 3, oldestQueuedAge: 300),
            instances: [busy(1), busy(2), busy(3)],
            wanted: 3,
            actions: ["keep 1", "keep 2", "keep 3"]
        ),
        Row(
            name: "queue-delay: drained, the idle past the timeout leaves, the busy stays",
            settings: queueDelay,
            queue: QueueLoad(inProgress: 1),
            instances: [busy(1), idle(2, for: 90), idle(3, for: 30)],
            wanted: 1,
            actions: ["keep 1", "stop 2", "keep 3"]
        ),
    ]

    @Test(arguments: rows) func table(_ row: Row) {
        let decision = Self.decide(row.settings, queue: row.queue, row.instances)
        #expect(decision.wanted == row.wanted, "\(decision.reason)")
        #expect(Self.actions(decision) == row.actions, "\(decision.choices)")
        #expect(decision.choices.allSatisfy { !$0.reason.isEmpty })
    }

    @Test func stopsWhenStorageUntilTheNextUseCostsLessThanAColdStart() throws {
        // 100 GB at $0.15/GB/month is $0.0208/h; at $0.40/h a cold start (990 s) is $0.110, a resume (90 s) $0.010:
        // stopping pays for gaps up to about 4.8 h.
        let warm = Self.decide(Self.requestCount, [Self.idle(1, for: 600)], gap: 4 * 3600)
        let choice = try #require(warm.choice(for: 1))
        #expect(choice.action == .stop)
        #expect(choice.reason.contains("$0.093"), "\(choice.reason)")
        #expect(choice.reason.contains("$0.110"), "\(choice.reason)")
        #expect(Self.decide(Self.requestCount, [Self.idle(1, for: 600)], gap: 6 * 3600).choice(for: 1)?.action == .destroy)
        // A pricier GPU makes the cold start dearer, so keeping the disk pays for longer.
        #expect(Self.decide(Self.requestCount, [Self.idle(1, for: 600, dph: 2)], gap: 20 * 3600).choice(for: 1)?.action == .stop)
        // A bigger disk the other way.
        #expect(Self.decide(Self.requestCount, [Self.idle(1, for: 600, disk: 1000)], gap: 4 * 3600).choice(for: 1)?.action == .destroy)
        // --keep-warm 0: always destroyed.
        var noWarm = Self.requestCount
        noWarm.keepWarm = 0
        #expect(Self.decide(noWarm, [Self.idle(1, for: 600)], gap: 60).choice(for: 1)?.action == .destroy)
    }

    @Test func aFailedResumeIsDestroyedAndReplacedByARental() {
        let refused = ScalerInstance(id: 4, state: .resuming, dph: 0.4, resumeAskedAt: Self.ago(20), resumeFailed: true)
        let decision = Self.decide(Self.requestCount, queue: QueueLoad(inQueue: 5), [refused])
        #expect(Self.actions(decision) == ["destroy 4", "rent"])
        #expect(decision.choice(for: 4)?.reason.contains("rented away") == true)

        // Sitting in scheduling past the resume timeout is the same failure; within it, the resume is waited for.
        let scheduling = ScalerInstance(id: 5, state: .resuming, dph: 0.4, resumeAskedAt: Self.ago(601))
        #expect(Self.actions(Self.decide(Self.requestCount, queue: QueueLoad(inQueue: 5), [scheduling])) == ["destroy 5", "rent"])
        let waiting = ScalerInstance(id: 6, state: .resuming, dph: 0.4, resumeAskedAt: Self.ago(100))
        #expect(Self.actions(Self.decide(Self.requestCount, queue: QueueLoad(inQueue: 5), [waiting])) == ["keep 6"])
        // Another stopped instance is tried before a rental.
        #expect(Self.actions(Self.decide(Self.requestCount, queue: QueueLoad(inQueue: 5), [refused, Self.stopped(8)])) == ["destroy 4", "resume 8"])
    }

    @Test func theDailyBudgetStopsNewStartsButNotRunningWork() {
        let decision = Self.decide(
            Self.requestCount,
            queue: QueueLoad(inQueue: 40, inProgress: 1),
            [Self.busy(1), Self.stopped(2)],
            spent: 5,
            budget: 5
        )
        #expect(decision.wanted == 1)
        #expect(Self.actions(decision) == ["keep 1", "keep 2"])
        #expect(decision.reason.contains("daily budget"))
        #expect(Self.decide(Self.requestCount, queue: QueueLoad(inQueue: 40), [], spent: 4.99, budget: 5).rentals == 4)
    }

    @Test func settingsAreCheckedWithTheFlagNamed() {
        #expect(ScalerSettings().problem == nil)
        #expect(ScalerSettings(workersMin: 2, workersMax: 1).problem?.contains("--workers-min") == true)
        #expect(ScalerSettings(workersMin: 0, workersMax: -1).problem?.contains("--workers-max") == true)
        #expect(ScalerSettings(workersMin: 0, workersMax: 0).problem == nil)
        #expect(ScalerSettings(idleTimeout: 0).problem?.contains("--idle-timeout") == true)
        #expect(ScalerSettings(scalerValue: 0.5).problem?.contains("--scaler-value") == true)
        #expect(ScalerSettings(keepWarm: -1).problem?.contains("--keep-warm") == true)
        #expect(Self.requestCount.summary == "workers 0–5, request-count 10 jobs/worker, idle timeout 60 s, keep-warm 2")
    }
}
