import ControlPlane
import FalEmulator
import Foundation
import HTTPTypes
import JobStore
import Storage
import SwarmCore
import Testing

/// Jobs with `input.provider: "fal"` run on fal.ai (the emulator), and their video lands in our storage.
@Suite struct FalForwardingTests {
    static let input: JSONValue = [
        "provider": "fal", "preset": "wan22-i2v-lightx2v", "prompt": "a cat", "init_image": "https://example.com/cat.png",
        "width": 832, "height": 480, "video": ["frames": 81, "fps": 16],
    ]

    static func withForwarding(
        emulator: FalEmulator.Configuration = .init(queueTime: .milliseconds(100), runTime: .milliseconds(200), outputBytes: 300_000),
        spill: SpillSettings? = nil,
        _ test: @escaping @Sendable (Harness, RunningFalEmulator, String) async throws -> Void
    ) async throws {
        try await FalEmulator.withRunning(configuration: emulator) { fal in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("fal-outputs-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var configuration = ControlPlaneConfiguration(
                longPollTimeout: .seconds(2),
                outputs: OutputStorageSettings(configuration: StorageConfiguration(backend: .local(directory: directory)))
            )
            configuration.fal = FalForwardSettings(
                url: fal.baseURL,
                key: Secret("emulated-fal-key"),
                initialPoll: .milliseconds(50),
                maximumPoll: .milliseconds(200)
            )
            configuration.fal?.spill = spill
            try await withControlPlane(configuration) { api in try await test(api, fal, directory) }
        }
    }

    @Test func aFalJobCompletesThroughFalAndItsVideoIsCopiedIntoOurStorage() async throws {
        try await Self.withForwarding { api, fal, directory in
            // withControlPlane runs once per backend against the same emulator: count from here.
            let submittedBefore = await fal.emulator.submittedCount()
            let id = try await api.submit(Self.input)
            let done = try await api.eventually(id) { $0 == "COMPLETED" || $0 == "FAILED" }
            #expect(done["status"] == "COMPLETED", "\(done.text)")
            #expect(done["provider"] == "fal")
            let requestID = try #require(done["falRequestId"]?.stringValue)
            // 81 frames at 480p: fal's price list, and what the emulator charged.
            #expect(abs((done["falCostUsd"]?.doubleValue ?? 0) - 0.2025) < 1e-9)
            #expect(await fal.emulator.charged().filter { $0.requestID == requestID }.count == 1)
            #expect(await fal.emulator.submittedCount() == submittedBefore + 1)
            let file = try #require(done["output"]?["files"]?.arrayValue?.first)
            #expect(file["bytes"]?.intValue == 300_000)
            let url = try #require(file["url"]?.stringValue)
            #expect(!url.contains(fal.baseURL), "the link must be ours, not fal's CDN")
            let key = ObjectKey.output(endpoint: "swarmui", jobID: id, fileName: try #require(file["name"]?.stringValue))
            let ours = try Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent(key))
            #expect(ours == (try Data(contentsOf: fal.emulator.outputFile(requestID: requestID))))
        }
    }

    @Test func falErrorsFailTheJobWithFalsMessage() async throws {
        try await Self.withForwarding { api, fal, _ in
            await fal.emulator.failNext("CUDA out of memory")
            let id = try await api.submit(Self.input)
            let done = try await api.eventually(id) { $0 == "COMPLETED" || $0 == "FAILED" }
            #expect(done["status"] == "FAILED")
            #expect(done["error"]?.stringValue?.contains("CUDA out of memory") == true)
            #expect(done["provider"] == "fal")
        }
    }

    @Test func cancellingOurJobCancelsTheFalRequest() async throws {
        try await Self.withForwarding(emulator: .init(queueTime: .seconds(5), runTime: .seconds(5))) { api, fal, _ in
            let id = try await api.submit(Self.input)
            let running = try await api.eventually(id) { _ in true }
            #expect(running["status"] == "IN_PROGRESS")
            // Wait until it was submitted to fal.
            var requestID: String?
            for _ in 0..<100 where requestID == nil {
                requestID = try await api.status(id)["falRequestId"]?.stringValue
                try await Task.sleep(for: .milliseconds(20))
            }
            let request = try #require(requestID)
            #expect(try await api.call(.post, "/v2/swarmui/cancel/\(id)").status == .ok)
            let status = await fal.emulator.status(id: request, logs: false)
            #expect(status.body["error_type"] == "request_cancelled")
        }
    }

    @Test func aForwardedJobThatTimesOutHereCancelsItsFalRequest() async throws {
        try await Self.withForwarding(emulator: .init(queueTime: .seconds(30), runTime: .seconds(30))) { api, fal, _ in
            let id = try await api.submit(Self.input, extra: ["policy": ["executionTimeout": 5_000]])
            var requestID: String?
            for _ in 0..<100 where requestID == nil {
                requestID = try await api.status(id)["falRequestId"]?.stringValue
                try await Task.sleep(for: .milliseconds(20))
            }
            let request = try #require(requestID)
            #expect(await fal.emulator.status(id: request, logs: false).body["status"] == "IN_QUEUE")
            let ended = try await api.eventually(id, timeout: .seconds(15)) { $0 == "TIMED_OUT" || $0 == "COMPLETED" || $0 == "FAILED" }
            #expect(ended["status"] == "TIMED_OUT", "\(ended.text)")
            #expect(ended["provider"] == "fal")
            var cancelled = false
            for _ in 0..<100 where !cancelled {
                cancelled = await fal.emulator.status(id: request, logs: false).body["error_type"] == "request_cancelled"
                if !cancelled { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(cancelled, "the fal.ai request of a job that timed out here must be cancelled")
        }
    }

    @Test func aJobThatWaitsBecauseTheSpillOverBudgetIsSpentSaysSoInItsStatus() async throws {
        // fal.ai's price of the job (81 frames at 480p) is $0.2025: a budget of $0.10 cannot pay for it.
        try await Self.withForwarding(spill: SpillSettings(after: .zero, budgetPerDay: 0.1)) { api, fal, _ in
            var input = Self.input.objectValue ?? [:]
            input["provider"] = "vastai"
            let pinned = try await api.submit(.object(input))
            input["provider"] = nil
            let auto = try await api.submit(.object(input))
            let waiting = try await Self.eventually(api, auto) { $0["spillOver"] != nil }
            #expect(waiting["status"] == "IN_QUEUE")
            #expect(waiting["provider"] == nil)
            let reason = try #require(waiting["spillOver"]?.stringValue)
            #expect(reason.contains("spill-over budget of $0.1 ") && reason.contains("fal.ai would charge $0.20"), "\(reason)")
            // Only the job spill-over would forward says so.
            #expect(try await api.status(pinned)["spillOver"] == nil)
            #expect(await fal.emulator.submittedCount() == 0)
            // Once a worker takes it, it no longer waits: the field goes with the queue.
            #expect(try await api.take() != nil)
            #expect(try await api.take() != nil)
            #expect(try await api.status(auto)["spillOver"] == nil)
        }
    }

    /// Reads the job's status until `predicate` holds or 10 s pass; returns the last answer.
    static func eventually(_ api: Harness, _ id: String, _ predicate: (Harness.Answer) -> Bool) async throws -> Harness.Answer {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            let answer = try await api.status(id)
            if predicate(answer) || ContinuousClock.now > deadline { return answer }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    @Test func whatFalCannotDoIsRefusedAndFalNeedsAKey() async throws {
        try await Self.withForwarding { api, fal, _ in
            var input = Self.input.objectValue ?? [:]
            input["width"] = 1000
            let badSize = try await api.call(.post, "/v2/swarmui/run", ["input": .object(input)])
            #expect(badSize.status == .badRequest)
            #expect(badSize.text.contains("input.width"))
            input = Self.input.objectValue ?? [:]
            input["preset"] = "sdxl"
            #expect(try await api.call(.post, "/v2/swarmui/run", ["input": .object(input)]).text.contains("input.preset"))
            #expect(await fal.emulator.submittedCount() == 0, "nothing refused may reach fal.ai")
        }
        try await withControlPlane { api in
            let refused = try await api.call(.post, "/v2/swarmui/run", ["input": Self.input])
            #expect(refused.status == .badRequest)
            #expect(refused.text.contains("auto, vastai"))
        }
    }
}
