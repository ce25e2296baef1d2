import AsyncHTTPClient
import Crypto
import JobProtocol
import Logging
import NIOCore
import Storage
import SwarmCore
import SwarmUI

import Foundation

/// Takes a job's generated outputs from SwarmUI to where the result points: uploaded to the job's destination
/// (streamed and hashed on the way, never held whole) or inlined as data URLs. Outputs whose upload failed for good
/// stay on the volume, recorded in `kept`, so a retry of the job on this worker stores them without generating again.
/// Injected into `JobRunner`, which decides nothing about storage.
public struct OutputDelivery: Sendable {
    let swarm: any SwarmUIBackend
    let store: OutputStore
    /// Outputs a failed upload left for a retry; nil when the worker keeps none (no volume).
    let kept: KeptOutputs?
    let inlineMaxBytes: Int64
    let logger: Logger

    public init(
        swarm: any SwarmUIBackend,
        queue: any QueueClient,
        httpClient: HTTPClient,
        inlineMaxBytes: Int64,
        uploadsViaQueue: Bool = false,
        bucket: S3Configuration? = nil,
        keptOutputsPath: String? = nil,
        logger: Logger
    ) {
        self.swarm = swarm
        self.store = OutputStore(
            queue: queue,
            uploadsViaQueue: uploadsViaQueue,
            bucket: bucket,
            httpClient: httpClient,
            uploader: OutputUploader(httpClient: httpClient, logger: logger),
            inlineMaxBytes: inlineMaxBytes
        )
        self.kept = keptOutputsPath.map { KeptOutputs(directory: $0) }
        self.inlineMaxBytes = inlineMaxBytes
        self.logger = logger
    }

    /// Where `job`'s outputs go; nil when they are inlined.
    func destination(for job: QueueJob) throws -> OutputStore.Destination? {
        try store.destination(for: job)
    }

    /// Outputs an earlier attempt of `jobID` generated but could not store (only when they would be stored again).
    func reusable(jobID: String, destination: OutputStore.Destination?) -> [GeneratedOutput]? {
        destination == nil ? nil : kept?.load(jobID: jobID)
    }

    /// The result's `files`, in batch order. `reused` says the outputs come from `reusable`: when SwarmUI's files are
    /// gone the record goes too, so that the next attempt generates again.
    func deliver(
        _ outputs: [GeneratedOutput],
        to destination: OutputStore.Destination?,
        jobID: String,
        reused: Bool
    ) async throws -> [JSONValue] {
        var files: [JSONValue] = []
        do {
            for output in outputs.sorted(by: { $0.batchIndex < $1.batchIndex }) {
                if let destination {
                    files.append(try await upload(output, to: destination, jobID: jobID, index: files.count))
                } else {
                    files.append(try await inline(output, source: try await swarm.openOutput(output.reference), index: files.count))
                }
            }
        } catch {
            if let failure = error as? JobFailure, failure.storageFailure { throw keep(outputs, jobID: jobID, after: failure) }
            if reused { kept?.remove(jobID: jobID) }
            throw error
        }
        if destination != nil { kept?.remove(jobID: jobID) }
        return files
    }

    /// Streams one output from SwarmUI to storage, hashing it on the way; a retry fetches it from SwarmUI again.
    private func upload(_ output: GeneratedOutput, to destination: OutputStore.Destination, jobID: String, index: Int) async throws -> JSONValue {
        let swarm = self.swarm
        let reference = output.reference
        let first = try await swarm.openOutput(reference)
        let size: Int64
        if let length = first.length {
            size = length
        } else {
            // The upload must announce its size: a source without one is read through once to count it.
            var counted: Int64 = 0
            do {
                for try await chunk in first.body { counted += Int64(chunk.readableBytes) }
            } catch {
                throw SwarmUIBackendError(.unavailable, "fetching output \(reference) failed: \(error)")
            }
            size = counted
        }
        // The first attempt reads the response already open (when it was not counted); retries open a new one.
        let unread = TakeOnce(first.length == nil ? nil : first)
        let open = { @Sendable () async throws -> AnyByteSequence in
            if let source = unread.take() { return AnyByteSequence(source.body) }
            return AnyByteSequence(try await swarm.openOutput(reference).body)
        }
        let name = Self.fileName(of: reference, index: index, contentType: first.contentType)
        let stored: OutputStore.Stored
        do {
            stored = try await store.store(destination, jobID: jobID, name: name, size: size, contentType: first.contentType, open: open)
        } catch is OutputStore.UploadsNotOffered {
            logger.notice("the queue stores no outputs or cannot be reached; returning \(name) inline")
            let source: OutputSource
            if let unopened = unread.take() { source = unopened } else { source = try await swarm.openOutput(reference) }
            return try await inline(output, source: source, index: index)
        }
        return OutputFile(name: name, contentType: first.contentType, bytes: stored.bytes, sha256: stored.sha256, url: stored.url).jsonValue
    }

    /// Collects one output in memory, hashing it on the way, and inlines it as a data URL. The result carries the
    /// whole file as base64 anyway, and no more than `inlineMaxBytes` is read, so staging it on disk would only add time.
    private func inline(_ output: GeneratedOutput, source: OutputSource, index: Int) async throws -> JSONValue {
        if let length = source.length, length > inlineMaxBytes {
            throw Self.tooLarge(bytes: length, limit: inlineMaxBytes)
        }
        var hasher = SHA256()
        var bytes = Data()
        bytes.reserveCapacity(Int(source.length ?? 0))
        do {
            for try await chunk in source.body {
                let size = Int64(bytes.count + chunk.readableBytes)
                if size > inlineMaxBytes { throw Self.tooLarge(bytes: size, limit: inlineMaxBytes) }
                chunk.withUnsafeReadableBytes { buffer in
                    hasher.update(bufferPointer: buffer)
                    bytes.append(contentsOf: buffer)
                }
            }
        } catch let error as JobFailure {
            throw error
        } catch {
            throw SwarmUIBackendError(.unavailable, "fetching output \(output.reference) failed: \(error)")
        }
        let digest = hasher.finalize().hexString
        let name = Self.fileName(of: output.reference, index: index, contentType: source.contentType)
        return OutputFile(
            name: name,
            contentType: source.contentType,
            bytes: Int64(bytes.count),
            sha256: digest,
            url: "data:\(source.contentType);base64,\(bytes.base64EncodedString())"
        ).jsonValue
    }

    /// A storage failure that leaves the outputs on the volume, recorded for a retry, and says where they are.
    private func keep(_ outputs: [GeneratedOutput], jobID: String, after failure: JobFailure) -> JobFailure {
        guard let kept, kept.save(jobID: jobID, outputs: outputs, logger: logger) else { return failure }
        let places = outputs.map { KeptOutputs.location(of: $0.reference) }.joined(separator: ", ")
        var failure = failure
        failure.message +=
            " The output stays on the volume where SwarmUI saved it (\(places) in SwarmUI's folder;"
            + " recorded in \(kept.path(jobID: jobID))): a retry of this job on this worker stores it without generating again."
        return failure
    }

    private static func tooLarge(bytes: Int64, limit: Int64) -> JobFailure {
        JobFailure(
            message:
                "output is \(formatBytes(bytes)), above the \(formatBytes(limit)) that can be returned inline; configure output storage (a swarmctl control plane, BUCKET_* on RunPod, or the job's s3Config) or raise SWARM_INLINE_MAX_BYTES",
            retryable: false
        )
    }

    static func fileName(of reference: String, index: Int, contentType: String) -> String {
        if !reference.hasPrefix("data:"), let last = reference.split(separator: "/").last, !last.isEmpty {
            return String(last)
        }
        let ext = contentType.split(separator: "/").last.map(String.init) ?? "bin"
        return "output-\(index).\(ext)"
    }
}
