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
}
