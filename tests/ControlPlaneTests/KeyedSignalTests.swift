import SwarmCore
import Testing

@testable import ControlPlane

/// The wake-ups behind every long poll: a lost one holds a take, a runsync or a job-stop for its whole timeout.
@Suite(.timeLimit(.minutes(1))) struct KeyedSignalTests {
    /// Twice the time bound the tests check: a wait that ends by its timeout, not by the wake-up under test, fails.
    static let timeout = Duration.seconds(20)
    static let bound = Duration.seconds(10)

    @Test func aSignalWakesTheWaiterOnItsKey() async throws {
        let signal = KeyedSignal()
        let seen = signal.generation
        let started = ContinuousClock.now
        async let woken = signal.wait(for: "swarmui", after: seen, timeout: Self.timeout)
        try await waitUntilSomeoneWaits(signal, seen: seen)
        signal.signal("swarmui")
        #expect(await woken)
        #expect(ContinuousClock.now - started < Self.bound)
    }

    @Test func aSignalBetweenReadingTheGenerationAndWaitingIsNotLost() async {
        let signal = KeyedSignal()
        let seen = signal.generation
        signal.signal("other-endpoint")
        let started = ContinuousClock.now
        #expect(await signal.wait(for: "swarmui", after: seen, timeout: Self.timeout))
        #expect(ContinuousClock.now - started < Self.bound)
    }

    @Test func aWaitWithoutASignalEndsAtItsTimeout() async {
        let signal = KeyedSignal()
        let started = ContinuousClock.now
        #expect(await signal.wait(for: "swarmui", after: signal.generation, timeout: .milliseconds(200)))
        #expect(ContinuousClock.now - started >= .milliseconds(200))
    }

    @Test func aSignalOnAnotherKeyLeavesTheWaiterWaiting() async throws {
        let signal = KeyedSignal()
        let seen = signal.generation
        async let woken = signal.wait(for: "swarmui", after: seen, timeout: .milliseconds(300))
        try await waitUntilSomeoneWaits(signal, seen: seen)
        signal.signal("other-endpoint")
        let started = ContinuousClock.now
        _ = await woken
        // Woken by the timeout, not by the other key's signal.
        #expect(ContinuousClock.now - started >= .milliseconds(100))
    }

    @Test func cancellingTheWaitingTaskEndsTheWait() async throws {
        let signal = KeyedSignal()
        let seen = signal.generation
        let started = ContinuousClock.now
        let waiter = Task { await signal.wait(for: "swarmui", after: seen, timeout: Self.timeout) }
        try await waitUntilSomeoneWaits(signal, seen: seen)
        waiter.cancel()
        _ = await waiter.value
        #expect(ContinuousClock.now - started < Self.bound)
    }

    @Test func closingWakesEveryWaiterAndLaterWaitsReturnAtOnce() async throws {
        let signal = KeyedSignal()
        let seen = signal.generation
        let started = ContinuousClock.now
        async let first = signal.wait(for: "swarmui", after: seen, timeout: Self.timeout)
        async let second = signal.wait(for: "job-1", after: seen, timeout: Self.timeout)
        try await waitUntilSomeoneWaits(signal, seen: seen, count: 2)
        signal.close()
        #expect(await first == false)
        #expect(await second == false)
        #expect(await signal.wait(for: "swarmui", after: signal.generation, timeout: Self.timeout) == false)
        #expect(ContinuousClock.now - started < Self.bound)
    }

    /// Until `count` waiters are registered, so that the signal under test comes after the wait began.
    private func waitUntilSomeoneWaits(_ signal: KeyedSignal, seen: UInt64, count: Int = 1) async throws {
        var polls = 0
        while signal.waiterCount < count, polls < 2_000 {
            polls += 1
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(signal.waiterCount == count)
        #expect(signal.generation == seen)
    }
}
