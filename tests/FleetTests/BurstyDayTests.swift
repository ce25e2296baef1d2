import Fleet
import Foundation
import JobProtocol
import Logging
import Synchronization
import SwarmCore
import Testing
import VastAI
import VastAIEmulator
import VastAITestSupport

/// A bursty day replayed in accelerated time: the reconciler and the scaler against the emulator, round by round on
/// a simulated clock, with simulated workers that boot (download + SwarmUI start, or SwarmUI start alone after a
/// resume) and run one job at a time.
@Suite struct BurstyDayTests {
    struct Day {
        var completed = 0
        var cost = 0.0
        var peak = 0
        var resumes = 0
        var rentals = 0
        var fallbackRentals = 0
        var zeroAfterBurst: [Bool] = []
    }

    static let round = 30.0
    static let jobSeconds = 45.0
    static let download = 600.0
    static let boot = 60.0
    /// (start, jobs): 200 jobs, idle gaps of hours between.
    static let bursts: [(at: Double, jobs: Int)] = [(0, 80), (3 * 3600, 70), (7 * 3600, 50)]
    static let dayLength = 10 * 3600.0

    static func replay(_ settings: ScalerSettings, failResumeBeforeBurst: Int? = nil) async throws -> Day {
        try await withVast(FleetReconcilerTests.fastEmulator) { running, client in
            let store = InMemoryFleetStore()
            let fleet = FleetReconcilerTests.reconciler(client, store, policy: FleetPolicy(desiredSize: 1))
            actor Queue {
                var queued: [Double] = []
                var working: [String: Double] = [:]  // worker label → when its job ends
                func load(at t: Double) -> FleetLoad {
                    FleetLoad(
                        queue: QueueLoad(inQueue: queued.count, inProgress: working.count, oldestQueuedAge: queued.first.map { t - $0 }),
                        busyWorkers: Set(working.keys)
                    )
                }
                func add(_ count: Int, at t: Double) { queued += Array(repeating: t, count: count) }
                /// Ends jobs due by `t`, then gives each free ready worker the next job; returns the jobs completed.
                func step(ready: [String], at t: Double, jobSeconds: Double) -> Int {
                    let done = working.filter { $0.value <= t }
                    for label in done.keys { working[label] = nil }
                    for label in ready where working[label] == nil && !queued.isEmpty {
                        queued.removeFirst()
                        working[label] = t + jobSeconds
                    }
                    return done.count
                }
                /// A worker that goes away (stopped, destroyed) gives its job back.
                func release(_ labels: Set<String>) {
                    for label in labels where working[label] != nil {
                        working[label] = nil
                        queued.insert(0, at: 0)
                    }
                }
            }
            let queue = Queue()
            let clock = Mutex(0.0)
            let start = Date()
            await fleet.enableScaling(
                FleetScaling(
                    settings: { settings },
                    load: { await queue.load(at: clock.withLock { $0 }) },
                    coldStart: ColdStart(downloadSeconds: download, bootSeconds: boot),
                    expectedIdleGap: 3 * 3600,
                    resumeTimeout: 300
                )
            )
            var day = Day()
            var nextBurst = 0
            var t = 0.0
            var failed = false
            var refusedSeen = false
            while t <= dayLength {
                clock.withLock { $0 = t }
                if nextBurst < bursts.count, t >= bursts[nextBurst].at {
                    if nextBurst > 0 {
                        day.zeroAfterBurst.append(await store.members().allSatisfy { $0.stoppedAt != nil || $0.destroyRequestedAt != nil })
                    }
                    if failResumeBeforeBurst == nextBurst, !failed, let stopped = await store.members().first(where: { $0.stoppedAt != nil }) {
                        await running.emulator.takeGPU(instance: stopped.id, .refuse)
                        failed = true
                    }
                    await queue.add(bursts[nextBurst].jobs, at: t)
                    nextBurst += 1
                }
                let now = start.addingTimeInterval(t)
                let actions = try await fleet.reconcile(now: now)
                let created = actions.count { if case .create = $0 { true } else { false } }
                day.rentals += created
                // The rental follows the failed resume's destroy once vast confirms it.
                if await fleet.lastDecision?.choices.contains(where: { $0.action == .destroy && $0.reason.contains("rented away") }) == true {
                    refusedSeen = true
                }
                if refusedSeen, day.fallbackRentals == 0, created > 0 { day.fallbackRentals = created }
                day.resumes += await fleet.lastDecision?.choices.count { $0.action == .resume } ?? 0
                // Workers boot, ping READY, take jobs; instances that stopped or left give theirs back.
                var ready: [String] = []
                var gone: Set<String> = []
                var up = 0
                for member in await store.members() {
                    if member.stoppedAt != nil || member.destroyRequestedAt != nil {
                        gone.insert(member.label)
                        continue
                    }
                    up += 1
                    let bootedAt =
                        member.resumedAt.map { $0.timeIntervalSince(start) + boot } ?? member.createdAt.timeIntervalSince(start) + download + boot
                    if t >= bootedAt {
                        await store.recordPing(id: member.id, stage: .ready, at: now)
                        ready.append(member.label)
                    }
                }
                day.peak = max(day.peak, up)
                await queue.release(gone)
                day.completed += await queue.step(ready: ready, at: t, jobSeconds: jobSeconds)
                t += round
            }
            day.zeroAfterBurst.append(await store.members().allSatisfy { $0.stoppedAt != nil || $0.destroyRequestedAt != nil })
            // What the daily budget's guard counts: $/h while running, the disk's storage price while stopped.
            day.cost = await store.spent(since: start, now: start.addingTimeInterval(t))
            return day
        }
    }

    @Test(.timeLimit(.minutes(3))) func aBurstyDayScalesUpDownToZeroAndResumes() async throws {
        let scaled = try await Self.replay(
            ScalerSettings(workersMin: 0, workersMax: 3, idleTimeout: 300, scaler: .requestCount, scalerValue: 20, keepWarm: 3),
            failResumeBeforeBurst: 1
        )
        let steady = try await Self.replay(ScalerSettings(workersMin: 1, workersMax: 1))
        print(
            String(
                format:
                    "bursty day, 200 jobs in 3 bursts: scaler (0-3 workers, request-count 20, idle 300 s, keep-warm 3) $%.2f, peak %d, %d rentals (%d after a failed resume), %d resumes; min=max=1 $%.2f",
                scaled.cost,
                scaled.peak,
                scaled.rentals,
                scaled.fallbackRentals,
                scaled.resumes,
                steady.cost
            )
        )
        #expect(scaled.completed == 200)
        #expect(steady.completed == 200)
        // 80 jobs at 20 per worker want 4, capped at --workers-max 3.
        #expect(scaled.peak == 3)
        #expect(steady.peak == 1)
        // Down to zero after each burst's idle timeout, stopped instances resumed for the next bursts.
        #expect(scaled.zeroAfterBurst == [true, true, true])
        #expect(scaled.resumes >= 3)
        #expect(scaled.fallbackRentals == 1)
        // Three for the first burst, one after the failed resume; every other start was a resume.
        #expect(scaled.rentals == 4)
        #expect(scaled.cost < steady.cost)
    }
}
