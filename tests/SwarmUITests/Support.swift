import AsyncHTTPClient
import Foundation
import NIOCore
import Logging
import SwarmCore
import SwarmUI
import SwarmUIEmulator
import Testing

/// Runs `body` against a fresh emulator on an ephemeral port with a client configured for it.
func withEmulatorClient<T>(
    _ configuration: SwarmUIEmulator.Configuration = .init(),
    token: String? = nil,
    _ body: (RunningEmulator, SwarmUIClient) async throws -> T
) async throws -> T {
    try await SwarmUIEmulator.withRunning(configuration: configuration) { running in
        try await withClient(baseURL: running.baseURL, token: token) { client in try await body(running, client) }
    }
}

func withClient<T>(baseURL: String, token: String? = nil, _ body: (SwarmUIClient) async throws -> T) async throws -> T {
    let configuration = SwarmUIConfiguration(baseURL: baseURL, bearerToken: token.map(Secret.init), requestTimeout: .seconds(60))
    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration.httpClientConfiguration())
    let client = SwarmUIClient(
        configuration: configuration,
        httpClient: http,
        logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    )
    do {
        let result = try await body(client)
        try await http.shutdown()
        return result
    } catch {
        try? await http.shutdown()
        throw error
    }
}

/// Expects `body` to fail with a `SwarmUIError` of `code`, and returns it for further checks.
@discardableResult
func expectSwarmUIError(
    _ code: SwarmUIError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async -> SwarmUIError? {
    do {
        try await body()
        Issue.record("expected \(code), but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as SwarmUIError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected a SwarmUIError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// Collects generation events from the `@Sendable` callback.
actor EventRecorder {
    private(set) var events: [SwarmUIGenerationEvent] = []
    func record(_ event: SwarmUIGenerationEvent) { events.append(event) }

    var progressBatches: Set<Int> {
        Set(events.compactMap { if case .progress(let batch, _, _) = $0 { batch } else { nil } })
    }
}

let sdxl = "OfficialStableDiffusion/sd_xl_base_1.0"

func request(_ extra: [String: JSONValue] = [:], images: Int = 1) -> SwarmUIGenerationRequest {
    var parameters: [String: JSONValue] = ["model": .string(sdxl), "prompt": "a red fox in snow", "steps": 4]
    parameters.merge(extra) { _, new in new }
    return SwarmUIGenerationRequest(images: images, parameters: parameters)
}

/// All bytes of an output, with how they arrived.
func drain(_ output: SwarmUIOutput) async throws -> (bytes: [UInt8], chunks: Int, largestChunk: Int) {
    var bytes: [UInt8] = []
    var chunks = 0
    var largest = 0
    for try await chunk in output.body {
        chunks += 1
        largest = max(largest, chunk.readableBytes)
        bytes.append(contentsOf: chunk.readableBytesView)
    }
    return (bytes, chunks, largest)
}

let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
