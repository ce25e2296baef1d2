import JobProtocol

/// An output in storage, as a job's result lists it.
public struct StoredOutput: Sendable, Hashable {
    public var key: String
    public var bytes: Int64
    public var sha256: String
    /// Presigned GET, signed control-plane link, or public URL.
    public var url: String

    public init(key: String, bytes: Int64, sha256: String, url: String) {
        self.key = key
        self.bytes = bytes
        self.sha256 = sha256
        self.url = url
    }
}

/// What storage knows about a stored object.
public struct ObjectInfo: Sendable, Hashable {
    public var bytes: Int64
    public var etag: String?
    public var contentType: String?

    public init(bytes: Int64, etag: String?, contentType: String?) {
        self.bytes = bytes
        self.etag = etag
        self.contentType = contentType
    }
}

/// The control plane's side of output storage; `S3Storage` and `LocalStorage` implement it.
public protocol OutputStorage: Sendable {
    /// Where a worker uploads an output of `size` bytes to `key` (see `ObjectKey.output`). S3 answers with
    /// part URLs when `size` reaches the multipart threshold; `completeURL` is echoed into such a target.
    func uploadTarget(key: String, size: Int64, contentType: String, completeURL: String?) async throws(StorageError) -> UploadTarget

    /// Makes an upload visible once the worker reports it done (S3 multipart: assembles the parts) and checks
    /// the stored size against the announced one; on a mismatch the object is removed and `.integrity` thrown.
    func completeUpload(_ target: UploadTarget, parts: [CompletedPart]) async throws(StorageError) -> ObjectInfo

    /// Gives up an upload so that nothing partial remains (S3 multipart: discards the parts).
    func abortUpload(_ target: UploadTarget) async throws(StorageError)

    /// A link clients can download `key` from: presigned, signed by the control plane, or public.
    func downloadURL(key: String) async throws(StorageError) -> String

    /// Size and ETag of `key`, or nil when there is no such object.
    func head(key: String) async throws(StorageError) -> ObjectInfo?
}
