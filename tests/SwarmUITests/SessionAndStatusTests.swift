import Foundation
import SwarmCore
@testable import SwarmUI
import SwarmUIEmulator
import Testing

@Suite("Sessions, status and errors")
struct SessionAndStatusTests {
    @Test func sessionIsRenewedAfterSwarmUIRestart() async throws {
        try await withEmulatorClient { running, client in
            let first = try await client.session()
            _ = try await client.status()
            await running.emulator.restart()
            // The cached session is now unknown to SwarmUI: the call must renew it and succeed.
            let status = try await client.status()
            #expect(status.backendState == .running)
            let second = try await client.session()
            #expect(first != second)
            // The same over the WebSocket route: SwarmUI sends an invalid_session_id frame, the client renews.
            await running.emulator.restart()
            #expect(try await client.generate(request()) { _ in }.count == 1)
            #expect(try await client.session() != second)
            #expect(await running.emulator.observe().sessionsCreated == 3)
        }
    }

    @Test func routeErrorWithStatus200IsAnError() async throws {
        try await withEmulatorClient { _, client in
            let error = await expectSwarmUIError(.routeError(id: nil)) {
                _ = try await client.describeModel(name: "does/not/exist")
            }
            #expect(error?.detail == "Model not found.")
            #expect(error?.isRetryable == false)
        }
    }

    @Test func statusGoesFromLoadingToRunning() async throws {
        // Loading long enough that a loaded machine still sees it; the wait below is bounded generously.
        try await withEmulatorClient(.init(loadingTime: .seconds(4))) { _, client in
            let early = try await client.status()
            #expect(early.backendState == .loading)
            #expect(early.anyLoading)
            #expect(!early.isReady && !early.isFailed)
            #expect(try await client.backends().first?.state == .loading)
            let deadline = ContinuousClock.now + .seconds(30)
            var status = early
            while !status.isReady, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
                status = try await client.status()
            }
            #expect(status.isReady)
            #expect(status.supportedFeatures.contains("video"))
            let backend = try #require(try await client.backends().first)
            #expect(backend.state == .running && backend.canLoadModels && backend.type == "comfyui_selfstart")
        }
    }

    @Test func erroredBackendFailsFastAndRecovers() async throws {
        try await withEmulatorClient(.init(backendErrored: true)) { running, client in
            let status = try await client.status()
            #expect(status.backendState == .errored)
            #expect(status.isFailed && !status.isReady)
            #expect(!status.backendMessage.isEmpty)
            let error = await expectSwarmUIError(.routeError(id: nil)) {
                _ = try await client.generate(request()) { _ in }
            }
            #expect(error?.detail == "No backends available!")
            #expect(error?.isRetryable == true)
            await running.emulator.setBackendErrored(false)
            #expect(try await client.status().isReady)
        }
    }

    @Test func bearerTokenIsRequiredAndAccepted() async throws {
        let token = "s3cret-token-value"
        try await SwarmUIEmulator.withRunning(configuration: .init(requiredBearerToken: token)) { running in
            try await withClient(baseURL: running.baseURL) { client in
                let error = await expectSwarmUIError(.unauthorized) { _ = try await client.status() }
                #expect(error?.isRetryable == false)
                // The WebSocket upgrade is refused too, and reported as such.
                await expectSwarmUIError(.unauthorized) { _ = try await client.generate(request()) { _ in } }
            }
            try await withClient(baseURL: running.baseURL, token: "wrong-token-value") { client in
                let error = await expectSwarmUIError(.unauthorized) { _ = try await client.status() }
                #expect(!(error?.description.contains("wrong-token-value") ?? true))
            }
            try await withClient(baseURL: running.baseURL, token: token) { client in
                #expect(try await client.status().isReady)
                let outputs = try await client.generate(request()) { _ in }
                let (bytes, _, _) = try await drain(try await client.fetchOutput(outputs[0].reference))
                #expect(Array(bytes.prefix(8)) == pngSignature)
            }
        }
    }

    @Test func unreachableSwarmUIIsReportedQuickly() async throws {
        // A port that was just free: nothing listens there.
        let port = try await SwarmUIEmulator.withRunning { $0.port }
        let started = ContinuousClock.now
        try await withClient(baseURL: "http://127.0.0.1:\(port)") { client in
            let error = await expectSwarmUIError(.unreachable) { _ = try await client.status() }
            #expect(error?.isRetryable == true)
            await expectSwarmUIError(.unreachable) { _ = try await client.generate(request()) { _ in } }
        }
        // Far below the 60 s request deadline: a refused connection is reported, not retried until the deadline.
        #expect(ContinuousClock.now - started < .seconds(20))
    }

    @Test func interpretsSwarmUIErrorShapes() throws {
        let invalid = Data(#"{"error":"Invalid session ID. You may need to refresh the page.","error_id":"invalid_session_id"}"#.utf8)
        #expect(throws: SwarmUIError(.invalidSession, route: "X", detail: "Invalid session ID. You may need to refresh the page.")) {
            _ = try SwarmUIClient.interpret(status: 401, body: invalid, route: "X")
        }
        #expect(throws: SwarmUIError(.routeError(id: "bad_route"), route: "X", detail: "Unknown API route")) {
            _ = try SwarmUIClient.interpret(status: 400, body: Data(#"{"error_id":"bad_route","error":"Unknown API route"}"#.utf8), route: "X")
        }
        #expect(throws: SwarmUIError(.unauthorized, route: "X", detail: "Unauthorized")) {
            _ = try SwarmUIClient.interpret(status: 401, body: Data("Unauthorized".utf8), route: "X")
        }
        #expect(throws: SwarmUIError(.httpStatus(502), route: "X", detail: "Bad Gateway")) {
            _ = try SwarmUIClient.interpret(status: 502, body: Data("Bad Gateway".utf8), route: "X")
        }
        #expect(try SwarmUIClient.interpret(status: 200, body: Data(#"{"success":true}"#.utf8), route: "X") == ["success": true])
    }
}
