import Foundation

/// The control plane's worker routes for outputs, as types and functions the routes call:
///
/// - `POST /v2/{endpoint}/job-upload/{worker}/{job}` with `UploadRequest` → `UploadTarget` (from `JobUpload.target`)
/// - `POST <complete_url>` with `UploadCompletion` → `ObjectInfo` plus the download link (from `JobUpload.complete`)
/// - `POST /v2/{endpoint}/job-upload/{worker}/{job}/abort` with `UploadAbort` → the parts discarded (from `JobUpload.abort`)
public enum JobUpload {
    /// What the worker announces before uploading one output.
    public struct UploadRequest: Sendable, Hashable, Codable {
        public var name: String
        public var size: Int64
        public var contentType: String

        public init(name: String, size: Int64, contentType: String) {
            self.name = name
            self.size = size
            self.contentType = contentType
        }

        private enum CodingKeys: String, CodingKey {
            case name, size, contentType = "content_type"
        }
    }

    /// What the worker reports after a multipart upload: the target it was given and the parts' ETags.
    public struct UploadCompletion: Sendable, Hashable, Codable {
        public var target: UploadTarget
        public var parts: [CompletedPart]

        public init(target: UploadTarget, parts: [CompletedPart]) {
            self.target = target
            self.parts = parts
        }
    }

    /// What the worker reports when it gives up an upload for good: the target it was given.
    public struct UploadAbort: Sendable, Hashable, Codable {
        public var target: UploadTarget

        public init(target: UploadTarget) {
            self.target = target
        }
    }

    /// S3 stores at most 5 TiB per object.
    public static let maximumSize: Int64 = 5 << 40

    /// Validates the request and asks `storage` where the output goes; keys are `ObjectKey.output(...)`.
    public static func target(
        for request: UploadRequest, endpoint: String, jobID: String, storage: some OutputStorage, completeURL: String?
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
        _ completion: UploadCompletion, endpoint: String, jobID: String, storage: some OutputStorage
    ) async throws(StorageError) -> (object: ObjectInfo, url: String) {
        try checkOwnership(of: completion.target, endpoint: endpoint, jobID: jobID)
        let object = try await storage.completeUpload(completion.target, parts: completion.parts)
        return (object, try await storage.downloadURL(key: completion.target.key))
    }

    /// Gives up an upload of the job it belongs to (S3 multipart: AbortMultipartUpload), so that no parts stay
    /// in the bucket, unseen and billed. Aborting an upload that is already gone is not an error.
    public static func abort(
        _ abort: UploadAbort, endpoint: String, jobID: String, storage: some OutputStorage
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
