import NIOCore
import SwarmUI
import SwarmCore
import Synchronization

@testable import Worker

import Foundation

/// A `SwarmUIBackend` scripted by the test, for what the emulator cannot be made to do on cue: each `generate` takes
/// the next scripted answer (an error, or one PNG output), and every readiness check is counted.
final class ScriptedSwarmUI: SwarmUIBackend, Sendable {
    enum Answer: Sendable {
        case fail(SwarmUIBackendError)
        case output(bytes: [UInt8])
    }

    struct Record: Sendable {
        var answers: [Answer] = []
        var readinessChecks = 0
        var generations = 0
        var interrupts = 0
    }

    let record: Mutex<Record>

    init(_ answers: [Answer]) { record = Mutex(Record(answers: answers)) }

    var snapshot: Record { record.withLock { $0 } }

    func readiness(requiring requirements: BackendRequirements) async throws -> SwarmUIReadiness {
        record.withLock { $0.readinessChecks += 1 }
        return .ready
    }

    func generate(parameters: [String: JSONValue], onEvent: @escaping @Sendable (GenerationEvent) async -> Void) async throws -> [GeneratedOutput] {
        let answer = record.withLock { record in
            record.generations += 1
            return record.answers.isEmpty ? nil : record.answers.removeFirst()
        }
        await onEvent(.status(live: true, loadingModels: false))
        await onEvent(.progress(1))
        switch answer {
        case .fail(let error)?: throw error
        case .output(let bytes)?:
            return [GeneratedOutput(reference: "data:image/png;base64,\(Data(bytes).base64EncodedString())", batchIndex: 0, metadata: nil)]
        case nil: throw SwarmUIBackendError(.rejected, "no scripted answer left")
        }
    }

    func interruptAll() async throws { record.withLock { $0.interrupts += 1 } }

    func openOutput(_ reference: String) async throws -> OutputSource {
        let bytes = Data(base64Encoded: String(reference.drop { $0 != "," }.dropFirst())) ?? Data()
        let body = AsyncThrowingStream<ByteBuffer, any Error> { continuation in
            continuation.yield(ByteBuffer(bytes: bytes))
            continuation.finish()
        }
        return OutputSource(contentType: "image/png", length: Int64(bytes.count), body: body)
    }

    func deleteOutput(_ reference: String) async throws {}
    func ping() async throws {}
    func listModels(path: String, depth: Int, subtype: String) async throws -> JSONValue { [] }
    func describeModel(name: String, subtype: String) async throws -> JSONValue { [:] }
    func downloadModel(
        url: String,
        type: String,
        name: String,
        metadata: JSONValue?,
        onProgress: @escaping @Sendable (Double) async -> Void
    ) async throws {}
    func editModelMetadata(model: String, subtype: String, changes: [String: JSONValue]) async throws {}
}
