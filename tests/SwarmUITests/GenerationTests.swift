import Foundation
import SwarmCore
import SwarmUI
import SwarmUIEmulator
import Testing

@Suite("Generation")
struct GenerationTests {
    @Test func generateReportsProgressAndReturnsFinalOutputs() async throws {
        try await withEmulatorClient { running, client in
            let recorder = EventRecorder()
            let outputs = try await client.generate(request(["steps": 6], images: 2)) { await recorder.record($0) }
            #expect(outputs.map(\.batchIndex) == [0, 1])
            #expect(outputs.allSatisfy { $0.reference.hasPrefix("View/local/raw/") && $0.reference.hasSuffix(".png") })
            #expect(outputs.allSatisfy { !$0.isDataURL && $0.requestID != nil && $0.metadata?.contains("sui_image_params") == true })
            let events = await recorder.events
            #expect(await recorder.progressBatches == [0, 1])
            #expect(events.contains(.keepAlive))
            let statuses = events.compactMap { if case .status(let s) = $0 { s } else { nil } }
            #expect(statuses.contains { $0.liveGenerations == 1 })
            let overall = events.compactMap { if case .progress(_, let overall, _) = $0 { overall } else { nil } }
            #expect(overall == overall.sorted() && overall.last == 1.0)
            for output in outputs {
                let (bytes, _, _) = try await drain(try await client.fetchOutput(output.reference))
                #expect(Array(bytes.prefix(8)) == pngSignature)
            }
            let parameters = try #require(await running.emulator.observe().lastGenerateParameters)
            #expect(parameters["images"] == 2 && parameters["steps"] == 6)
        }
    }

    @Test func generateWaitsForALoadingBackend() async throws {
        try await withEmulatorClient(.init(loadingTime: .seconds(4))) { _, client in
            let recorder = EventRecorder()
            let outputs = try await client.generate(request()) { await recorder.record($0) }
            #expect(outputs.count == 1)
            let statuses = await recorder.events.compactMap { if case .status(let s) = $0 { s } else { nil } }
            #expect(statuses.contains { $0.waitingBackends == 1 && $0.backendState == .loading })
        }
    }

    @Test func videoParametersProduceAnMP4() async throws {
        try await withEmulatorClient { _, client in
            let outputs = try await client.generate(
                request([
                    "model": "Wan/wan2.2_i2v_high_noise_14B_fp8_scaled", "videomodel": "Wan/wan2.2_i2v_high_noise_14B_fp8_scaled",
                    "video_frames": 17, "videosteps": 3, "overrideoutpathformat": "jobs/job-7f3a-[batch_id]",
                ])
            ) { _ in }
            // The sampled start image arrives first as an intermediate (negative batch index) and is left out.
            #expect(outputs.map(\.reference) == ["View/local/jobs/job-7f3a-0.mp4"])
            let output = try await client.fetchOutput(outputs[0].reference)
            #expect(output.contentType == "video/mp4")
            #expect(output.length == Int64(17 * 2048))
            let (bytes, _, _) = try await drain(output)
            #expect(String(decoding: bytes[4..<8], as: UTF8.self) == "ftyp")
            // Over HTTP SwarmUI lists the intermediate too, in completion order.
            let listed = try await client.generateOverHTTP(request(["videomodel": "Wan/wan2.2_i2v_high_noise_14B_fp8_scaled"]))
            #expect(listed.map { $0.reference.hasSuffix(".png") } == [true, false])
        }
    }

    @Test func badParametersComeBackAsErrorFrames() async throws {
        try await withEmulatorClient { _, client in
            let unknown = await expectSwarmUIError(.routeError(id: nil)) {
                _ = try await client.generate(request(["model": "nope"])) { _ in }
            }
            #expect(unknown?.detail.contains("Invalid model value for param Model - 'nope'") == true)
            let missing = await expectSwarmUIError(.routeError(id: nil)) {
                _ = try await client.generate(SwarmUIGenerationRequest(images: 1, parameters: ["prompt": "x"])) { _ in }
            }
            #expect(missing?.detail == "No model input given")
            await expectSwarmUIError(.routeError(id: nil)) {
                _ = try await client.generateOverHTTP(request(["steps": 501]))
            }
        }
    }

    @Test func interruptAllStopsARunningGeneration() async throws {
        try await withEmulatorClient(.init(stepDuration: .milliseconds(200))) { running, client in
            let recorder = EventRecorder()
            let generation = Task {
                // 100 s at most (SwarmUI's step limit is 500): far longer than the test takes, so only the interrupt ends it.
                try await client.generate(request(["steps": 500])) { await recorder.record($0) }
            }
            let deadline = ContinuousClock.now + .seconds(30)
            while await recorder.progressBatches.isEmpty, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            let interruptedAt = ContinuousClock.now
            try await client.interruptAll()
            let result = await generation.result
            #expect(ContinuousClock.now - interruptedAt < .seconds(20))
            guard case .failure(let error) = result else {
                Issue.record("the generation finished despite InterruptAll")
                return
            }
            #expect((error as? SwarmUIError)?.code == .interrupted)
            #expect(await running.emulator.observe().interrupts == 1)
            // The session stays usable.
            #expect(try await client.generate(request()) { _ in }.count == 1)
        }
    }

    @Test func interruptWhileQueuedEndsWithoutOutput() async throws {
        try await withEmulatorClient(.init(loadingTime: .seconds(30))) { _, client in
            let recorder = EventRecorder()
            let generation = Task { try await client.generate(request()) { await recorder.record($0) } }
            func queued() async -> Bool {
                await recorder.events.contains { if case .status(let s) = $0 { s.waitingBackends == 1 } else { false } }
            }
            while !(await queued()) { try await Task.sleep(for: .milliseconds(20)) }
            try await client.interruptAll()
            guard case .failure(let error) = await generation.result else {
                Issue.record("a generation interrupted in the queue returned outputs")
                return
            }
            // SwarmUI sends no error for a request cancelled before a backend took it, just no output.
            #expect((error as? SwarmUIError)?.code == .noOutput)
        }
    }

    @Test func restartDuringGenerationDropsTheConnection() async throws {
        try await withEmulatorClient(.init(stepDuration: .milliseconds(50))) { running, client in
            let recorder = EventRecorder()
            let generation = Task {
                try await client.generate(request(["steps": 200])) { await recorder.record($0) }
            }
            while await recorder.progressBatches.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
            await running.emulator.restart()
            guard case .failure(let error) = await generation.result else {
                Issue.record("the generation survived a restart")
                return
            }
            #expect((error as? SwarmUIError)?.code == .connectionClosed)
            #expect((error as? SwarmUIError)?.isRetryable == true)
        }
    }

    @Test func generateReturnsAtSocketIntentionWithoutWaitingForTheLinger() async throws {
        try await withEmulatorClient(.init(stepDuration: .zero, socketLinger: .seconds(5))) { _, client in
            _ = try await client.session()
            let started = ContinuousClock.now
            #expect(try await client.generate(request(["steps": 1])) { _ in }.count == 1)
            #expect(ContinuousClock.now - started < .seconds(1))
        }
    }

    @Test func generateOverHTTPReturnsOutputs() async throws {
        try await withEmulatorClient { _, client in
            let outputs = try await client.generateOverHTTP(request(images: 2))
            #expect(outputs.count == 2 && outputs.allSatisfy { $0.reference.hasPrefix("View/local/") })
        }
    }

    @Test func eventLogTimesEachRequest() async throws {
        try await withEmulatorClient { running, client in
            _ = try await client.generate(request()) { _ in }
            let events = await running.emulator.observe().events
            let received = try #require(events.first { $0.kind == .generateReceived })
            let finished = try #require(events.first { $0.kind == .lastFrameSent && $0.requestID == received.requestID })
            #expect(received.at < finished.at)
            #expect(received.at - finished.at < .seconds(5))
        }
    }
}
