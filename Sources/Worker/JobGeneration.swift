import AsyncHTTPClient
import JobProtocol
import Logging
import NIOCore
import NIOHTTP1
import SwarmCore
import SwarmUI

import Foundation

/// One generation over SwarmUI: the request's parameters completed (init image, batch size, output path), the
/// generate call bounded by GENERATION_TIMEOUT, progress sent to the queue, and when SwarmUI started working.
struct JobGeneration: Sendable {
    let swarm: any SwarmUIBackend
    let httpClient: HTTPClient
    /// How long one generation may run (GENERATION_TIMEOUT).
    let timeout: Duration
    let logger: Logger

    /// The request's SwarmUI parameters, ready to send. `fetchesInitImage` is false when kept outputs are reused.
    func parameters(for request: GenerateRequest, jobID: String, fetchesInitImage: Bool) async throws -> [String: JSONValue] {
        var parameters = request.parameters
        if let url = request.initImageURL, fetchesInitImage {
            parameters["initimage"] = .string(try await fetchInitImage(url))
        }
        parameters["images"] = .int(request.images)
        // A predictable output path lets an operator find a job's files on the volume (dots are stripped by SwarmUI).
        if parameters["overrideoutpathformat"] == nil {
            parameters["overrideoutpathformat"] = .string("swarm-jobs/\(jobID.filter { $0.isLetter || $0.isNumber || $0 == "-" })-[batch_id]")
        }
        return parameters
    }

    /// Runs the generation; answers its outputs and the moment SwarmUI started on it (after queueing and model
    /// loading), or nil when it never said.
    func run(
        _ parameters: [String: JSONValue],
        progress: ProgressThrottle
    ) async throws -> (outputs: [GeneratedOutput], started: ContinuousClock.Instant?) {
        let firstActivity = FirstActivity()
        let swarm = swarm
        let outputs = try await bounded {
            try await swarm.generate(parameters: parameters) { event in
                switch event {
                case .status(let live, _):
                    if live { await firstActivity.mark() }
                case .progress(let fraction):
                    await firstActivity.mark()
                    await progress.report(fraction, stage: "generating")
                case .keepAlive:
                    break
                }
            }
        }
        return (outputs, await firstActivity.at)
    }

    /// Runs a generation for at most `timeout`. Past it SwarmUI is told to stop (InterruptAll; closing the socket
    /// cancels nothing there) and the job fails as retryable: a hung generation must not hold the worker until the
    /// queue's execution timeout, and another attempt may well succeed.
    private func bounded(_ generation: @escaping @Sendable () async throws -> [GeneratedOutput]) async throws -> [GeneratedOutput] {
        let swarm = swarm, timeout = timeout
        return try await withThrowingTaskGroup(of: [GeneratedOutput]?.self) { group in
            group.addTask { try await generation() }
            // Cancelled with the job (an interrupt), this throws, and the job's interrupt reason decides its outcome.
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            if let finished = try await group.next(), let outputs = finished { return outputs }
            logger.warning("generation still running after GENERATION_TIMEOUT (\(Int(timeout.seconds)) s); interrupting it")
            do { try await swarm.interruptAll() } catch { logger.warning("InterruptAll failed: \(error)") }
            throw JobFailure(
                message: "the generation ran longer than GENERATION_TIMEOUT (\(Int(timeout.seconds)) s) and was interrupted; "
                    + "it can run again (raise GENERATION_TIMEOUT for longer videos)",
                retryable: true
            )
        }
    }

    /// Downloads an https init image, capped in size and time, as a data URL for SwarmUI.
    private func fetchInitImage(_ url: String) async throws -> String {
        let cap = 32 << 20
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        do {
            let response = try await httpClient.execute(request, timeout: .seconds(60))
            guard response.status.code == 200 else {
                throw JobFailure(message: "input.init_image: fetching \(url) answered HTTP \(response.status.code)", retryable: false)
            }
            let type = response.headers.first(name: "content-type")?.split(separator: ";").first.map(String.init) ?? "image/png"
            guard type.hasPrefix("image/") else {
                throw JobFailure(message: "input.init_image: \(url) is \(type), not an image", retryable: false)
            }
            let body = try await response.body.collect(upTo: cap)
            return "data:\(type);base64,\(Data(body.readableBytesView).base64EncodedString())"
        } catch let error as JobFailure {
            throw error
        } catch let error as NIOTooManyBytesError {
            _ = error
            throw JobFailure(message: "input.init_image: \(url) is larger than \(formatBytes(Int64(cap)))", retryable: false)
        } catch {
            throw JobFailure(message: "input.init_image: cannot fetch \(url): \(error)", retryable: false)
        }
    }
}

/// The moment SwarmUI started working on the job (after queueing and model loading).
private actor FirstActivity {
    private(set) var at: ContinuousClock.Instant?
    func mark() { if at == nil { at = ContinuousClock.now } }
}
