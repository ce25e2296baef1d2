import JobProtocol
import Testing

@testable import Worker

/// Progress to the queue: at most one update a second (the first at once), and only when the value moved.
@Suite(.timeLimit(.minutes(1)))
struct ProgressThrottleTests {
    @Test func postsTheFirstUpdateThenOnePerSecondWhenTheValueMoved() async throws {
        let queue = ScriptedQueue()
        let progress = ProgressThrottle(queue: queue, jobID: "j1")
        await progress.report(0.1, stage: "generating")
        #expect(queue.snapshot.progress["j1"] == 1, "the first update goes at once")
        await progress.report(0.2, stage: "generating")
        #expect(queue.snapshot.progress["j1"] == 1, "a second update within the second waits")
        try await Task.sleep(for: .milliseconds(1100))
        await progress.report(0.1, stage: "generating")
        #expect(queue.snapshot.progress["j1"] == 1, "an unchanged value is not sent again")
        await progress.report(0.3, stage: "generating")
        #expect(queue.snapshot.progress["j1"] == 2)
    }
}
