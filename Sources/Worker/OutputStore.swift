import AsyncHTTPClient
import JobProtocol
import Logging
import Storage
import SwarmCore

/// Where a job's outputs go, in order of preference: the job's own `s3Config` or the worker's `BUCKET_*` bucket
/// (the worker signs its uploads), the queue's upload route (swarmctl's control plane signs them), or inline as
/// data URLs when neither exists.
struct OutputStore: Sendable {
    enum Destination: Sendable {
        case bucket(S3Storage)
        case queue
    }

    let queue: any QueueClient
    let uploadsViaQueue: Bool
    let bucket: S3Configuration?
    let httpClient: HTTPClient
    let uploader: OutputUploader
    /// Outputs up to this size go inline when the queue cannot be reached to ask for an upload target: the result
    /// (kept on the volume until the queue acknowledges it) then does not depend on storage being up.
    let inlineMaxBytes: Int64

    /// The queue has no upload route: the output is to be inlined after all.
    struct UploadsNotOffered: Error {}

    /// A stored output as a result lists it.
    struct Stored: Sendable {
        var bytes: Int64
        var sha256: String
        var url: String
    }

    /// Where `job`'s outputs go; nil when they are inlined.
    func destination(for job: QueueJob) throws -> Destination? {
        if let config = job.extra["s3Config"], !config.isNull {
            do {
                return .bucket(S3Storage(configuration: try S3Configuration(runpodS3Config: config), httpClient: httpClient))
            } catch {
                throw JobFailure(message: "s3Config: \(error.message)", retryable: false)
            }
        }
        if let bucket { return .bucket(S3Storage(configuration: bucket, httpClient: httpClient)) }
        return uploadsViaQueue ? .queue : nil
    }

    /// Uploads `size` bytes that `open` yields from the start each time (a retry reopens the source).
    func store(
        _ destination: Destination,
        jobID: String,
        name: String,
        size: Int64,
        contentType: String,
        open: @escaping @Sendable () async throws -> AnyByteSequence
    ) async throws -> Stored {
        do {
            switch destination {
            case .bucket(let storage):
                // Keyed like the control plane's objects; a RunPod worker has no endpoint name of ours.
                let key = ObjectKey.output(endpoint: "swarmui", jobID: jobID, fileName: name)
                let stored = try await storage.store(key: key, size: size, contentType: contentType, uploader: uploader, open: open)
                return Stored(bytes: stored.bytes, sha256: stored.sha256, url: stored.url)
            case .queue:
                let target: UploadTarget
                do {
                    target = try await queue.requestUpload(jobID: jobID, .init(name: name, size: size, contentType: contentType))
                } catch {
                    // A queue that speaks our URL form but has no upload route (an older control plane, a test peer),
                    // or one that cannot be reached while the output is small enough to go inline.
                    if error.code == .rejected(status: 404) || (error.isRetryable && size <= inlineMaxBytes) { throw UploadsNotOffered() }
                    throw error
                }
                do {
                    let result = try await uploader.upload(target, open: open)
                    let done = try await queue.completeUpload(jobID: jobID, .init(target: target, parts: result.parts))
                    return Stored(bytes: result.bytes, sha256: result.sha256, url: done.url)
                } catch {
                    // Parts of a failed multipart upload stay in the bucket, unseen and billed, until aborted; a retry
                    // of the job asks for a new target anyway. Best effort: the upload's own error is the one to report.
                    if case .multipart = target { try? await queue.abortUpload(jobID: jobID, .init(target: target)) }
                    throw error
                }
            }
        } catch let error as StorageError {
            throw JobFailure(message: Self.failure(name, destination, error.message), retryable: true, storageFailure: true)
        } catch let error as QueueError {
            throw JobFailure(message: Self.failure(name, destination, error.description), retryable: true, storageFailure: true)
        }
    }

    private static func failure(_ name: String, _ destination: Destination, _ reason: String) -> String {
        let check =
            switch destination {
            case .bucket: "check the bucket's endpoint, credentials and that it accepts uploads (BUCKET_* or the job's s3Config)"
            case .queue: "check the control plane's output storage (SWARM_STORAGE and its variables) and that the worker can reach it"
            }
        return "storage unavailable: output \(name) could not be stored (\(reason)); \(check). The job can run again."
    }
}
