import SwarmCore
import Synchronization
import Testing

/// The synchronisation primitives of SwarmCore, including what cancellation does to each.
@Suite(.timeLimit(.minutes(1)))
struct LatchTests {
    @Test func everyWaiterReturnsOnceSetAndLaterWaitersReturnAtOnce() async {
        let latch = Latch()
        let returned = Counter()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<5 {
                group.addTask {
                    await latch.wait()
                    returned.add()
                }
            }
            try? await Task.sleep(for: .milliseconds(50))
            #expect(returned.value == 0, "nobody returns before the latch is set")
            #expect(!latch.isSet)
            latch.set()
            await group.waitForAll()
        }
        #expect(returned.value == 5)
        #expect(latch.isSet)
        await latch.wait()
        latch.set()
        #expect(latch.isSet, "setting twice is harmless")
    }

    /// The bug of the control plane's former `Gate`: cancelling one waiter opened the door for all of them.
    @Test func cancellingOneWaiterReleasesOnlyThatWaiter() async throws {
        let latch = Latch()
        let others = Counter()
        let cancelled = Task { await latch.wait() }
        let waiting = (0..<3).map { _ in
            Task {
                await latch.wait()
                others.add()
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        cancelled.cancel()
        await cancelled.value
        try await Task.sleep(for: .milliseconds(100))
        #expect(others.value == 0, "the other waiters keep waiting")
        #expect(!latch.isSet, "cancellation does not set the latch")
        latch.set()
        for task in waiting { await task.value }
        #expect(others.value == 3)
    }

    @Test func aTaskCancelledBeforeItWaitsReturnsAtOnce() async {
        let latch = Latch()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await latch.wait()
            return Task.isCancelled
        }
        #expect(await task.value)
        #expect(!latch.isSet)
    }

    @Test func sleepEndsEarlyWhenSetAndRunsItsCourseOtherwise() async {
        let latch = Latch()
        #expect(await latch.sleep(for: .milliseconds(20)), "the whole duration passed")
        let clock = ContinuousClock()
        let started = clock.now
        async let early = latch.sleep(for: .seconds(30))
        try? await Task.sleep(for: .milliseconds(50))
        latch.set()
        #expect(await early == false)
        #expect(clock.now - started < .seconds(10))
    }

    @Test func sleepEndsEarlyWhenCancelled() async {
        let latch = Latch()
        let task = Task { await latch.sleep(for: .seconds(30)) }
        try? await Task.sleep(for: .milliseconds(50))
        task.cancel()
        #expect(await task.value == false)
        #expect(!latch.isSet)
    }
}

/// A count shared with child tasks.
final class Counter: Sendable {
    private let count = Atomic<Int>(0)
    func add() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

@Suite struct AtomicFlagTests {
    @Test func setOnceSeenEverywhere() async {
        let flag = AtomicFlag()
        #expect(!flag.isSet)
        await Task.detached { flag.set() }.value
        #expect(flag.isSet)
        flag.set()
        #expect(flag.isSet)
    }
}

@Suite struct ThrottleTests {
    @Test func saysYesFirstThenOncePerInterval() {
        let throttle = Throttle(every: .seconds(10))
        let start = ContinuousClock.now
        #expect(throttle.ready(now: start), "the first time at once")
        #expect(!throttle.ready(now: start + .seconds(3)))
        #expect(!throttle.ready(now: start + .seconds(9)))
        #expect(throttle.ready(now: start + .seconds(10)))
        #expect(!throttle.ready(now: start + .seconds(19)), "the interval counts from the last yes")
        #expect(throttle.ready(now: start + .seconds(25)))
    }
}

@Suite struct TakeOnceTests {
    @Test func exactlyOneOfManyTakersGetsTheValue() async {
        let once = TakeOnce("chunk")
        let got = Counter()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask { if once.take() != nil { got.add() } }
            }
        }
        #expect(got.value == 1)
        #expect(once.take() == nil)
        #expect(TakeOnce<Int>(nil).take() == nil)
    }
}

@Suite(.timeLimit(.minutes(1)))
struct KeyedSignalCoreTests {
    @Test func cancellingOneWaiterLeavesTheOthersWaitingUntilTheirSignal() async throws {
        let signal = KeyedSignal()
        let seen = signal.generation
        let cancelled = Task { await signal.awaitSignal(for: "a", after: seen, timeout: .seconds(30)) }
        let other = Task { await signal.awaitSignal(for: "a", after: seen, timeout: .seconds(30)) }
        try await eventually { signal.waiterCount == 2 }
        cancelled.cancel()
        #expect(await cancelled.value, "a cancelled wait returns (not closed)")
        try await eventually { signal.waiterCount == 1 }
        signal.signal("a")
        #expect(await other.value)
        #expect(signal.waiterCount == 0)
    }

    @Test func closingWakesEveryWaiterWithFalse() async throws {
        let signal = KeyedSignal()
        let seen = signal.generation
        let waiters = (0..<3).map { key in Task { await signal.awaitSignal(for: "\(key)", after: seen, timeout: .seconds(30)) } }
        try await eventually { signal.waiterCount == 3 }
        signal.close()
        for waiter in waiters { #expect(await waiter.value == false) }
        #expect(await signal.awaitSignal(for: "later", after: signal.generation, timeout: .seconds(30)) == false)
    }

    private func eventually(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else { Issue.record("condition not met in 10 s"); return }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}
