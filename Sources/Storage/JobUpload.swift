import Foundation
import JobProtocol

/// The control plane's side of the output routes (see `JobUpload` in JobProtocol for the wire types).
extension JobUpload {
    /// Validates the request and asks `storage` where the output goes; keys are `ObjectKey.output(...)`.
    public static func target(
        for request: UploadRequest,
        endpoint: String,
        jobID: String,
        storage: some OutputStorage,
        completeURL: String?
    ) async throws(StorageError) -> UploadTarget {
        guard (0...maximumSize).contains(request.size) else {
            throw StorageError(.rejected, "output \(request.name) of job \(jobID) announces \(request.size) bytes; the limit is 5 TiB")
        }
        let contentType = request.contentType.trimmingCharacters(in: .whitespaces)
        guard contentType.contains("/"), !contentType.contains(where: { $0.isNewline }) else {
            throw StorageError(.rejected, "output \(request.name) of job \(jobID) has no valid content_type (got \"\(request.contentType)\")")
        }
        let key = ObjectKey.output(endpoint: endpoint, jobID: jobID, fileName: request.name)
        return try await storage.uploadTarget(key: key, size: request.size, contentType: contentType, completeURL: completeURL)
    }

    /// Finishes an upload for the job it belongs to (refusing a target outside `<endpoint>/<job id>/`), completes it,
    /// and returns the stored object and its link.
    public static func complete(
        _ completion: UploadCompletion,
        endpoint: String,
        jobID: String,
        storage: some OutputStorage
    ) async throws(StorageError) -> (object: ObjectInfo, url: String) {
        try checkOwnership(of: completion.target, endpoint: endpoint, jobID: jobID)
        let object = try await storage.completeUpload(completion.target, parts: completion.parts)
        return (object, try await storage.downloadURL(key: completion.target.key))
    }

    /// Gives up an upload of the job it belongs to (S3 multipart: AbortMultipartUpload), so that no parts stay
    /// in the bucket, unseen and billed. Aborting an upload that is already gone is not an error.
    public static func abort(
        _ abort: UploadAbort,
        endpoint: String,
        jobID: String,
        storage: some OutputStorage
    ) async throws(StorageError) {
        try checkOwnership(of: abort.target, endpoint: endpoint, jobID: jobID)
        try await storage.abortUpload(abort.target)
    }

    /// A worker may only complete or abort its own job's outputs: the key must lie directly under `<endpoint>/<job id>/`.
    private static func checkOwnership(of target: UploadTarget, endpoint: String, jobID: String) throws(StorageError) {
        let prefix = ObjectKey.sanitize(endpoint, fallback: "endpoint") + "/" + ObjectKey.sanitize(jobID, fallback: "job") + "/"
        guard target.key.hasPrefix(prefix), !target.key.dropFirst(prefix.count).contains("/") else {
            throw StorageError(.rejected, "upload \(target.key) does not belong to job \(jobID) of \(endpoint)")
        }
    }
}
