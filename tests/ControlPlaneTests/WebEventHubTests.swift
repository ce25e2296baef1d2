@testable import ControlPlane
import Foundation
@testable import JobStore
import SwarmCore
import Testing

@Suite struct WebEventHubTests {
    /// Open tabs of one endpoint share the store's readings: one per change, however many tabs, woken by the store's
    /// work signal. The fallback interval is long enough that only signals can cause a reading here.
    @Test func tabsShareOneReadingPerChangeAndTheTaskEndsWithTheLastTab() async throws {
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        let work = KeyedSignal()
        let feed = Task {
            for await endpoint in try await store.workAvailable() { work.signal(endpoint) }
        }
        defer { feed.cancel() }
        let hub = WebEventHub(store: store, work: work, lease: 60, interval: .seconds(600), logger: quietLogger)
        var tabs = (0..<5).map { _ in hub.subscribe(endpoint: "swarmui", watching: nil).makeAsyncIterator() }
        for index in tabs.indices {
            let first = await tabs[index].next()
            #expect(first?.jobs.isEmpty == true)
            #expect(first?.counts["IN_QUEUE"] == 0)
        }
        #expect(hub.readCount == 1)
        #expect(hub.activeEndpoints == 1)

        _ = try await store.enqueue([NewJob(id: "j1", endpoint: "swarmui", input: ["prompt": "a cat"])], now: Date())
        for index in tabs.indices {
            let next = await tabs[index].next()
            #expect(next?.jobs["j1"]?["status"] == "IN_QUEUE")
            #expect(next?.counts["IN_QUEUE"] == 1)
        }
        #expect(hub.readCount == 2)

        // A tab opened now gets the latest reading without a read of its own.
        var late = hub.subscribe(endpoint: "swarmui", watching: nil).makeAsyncIterator()
        #expect(await late.next()?.jobs["j1"] != nil)
        #expect(hub.readCount == 2)

        // A job page watching a job that is not among the newest wakes one reading, which only it sees.
        var watcher = hub.subscribe(endpoint: "swarmui", watching: "j0").makeAsyncIterator()
        _ = try await store.enqueue([NewJob(id: "j0", endpoint: "other", input: [:])], now: Date())
        work.signal("swarmui")
        var watched: WebSnapshot?
        while let next = await watcher.next() {
            if next.jobs["j0"] != nil {
                watched = next
                break
            }
        }
        #expect(watched?.jobs["j0"]?["watched"] == true)
        #expect(await tabs[0].next()?.jobs["j0"] == nil)

        tabs.removeAll()
        late = hub.subscribe(endpoint: "other", watching: nil).makeAsyncIterator()
        watcher = hub.subscribe(endpoint: "other", watching: nil).makeAsyncIterator()
        let deadline = ContinuousClock.now + .seconds(5)
        while hub.activeEndpoints > 1, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        // The swarmui task ended with its last tab; only "other" reads now.
        #expect(hub.activeEndpoints == 1)
        _ = late

        // At shutdown the work signal closes: the streams end instead of holding the exit.
        work.close()
        var ended = false
        while !ended, ContinuousClock.now < deadline + .seconds(5) { ended = await watcher.next() == nil }
        #expect(ended)
        #expect(hub.activeEndpoints == 0)
    }
}
