import SwarmCore

/// One file of a job's result, as the worker reports it and clients read it:
/// `{"name", "content_type", "bytes", "sha256", "url"}`, where `url` is a storage link or a `data:` URL.
public struct OutputFile: Sendable, Hashable {
    public var name: String
    public var contentType: String
    public var bytes: Int64
    /// Lowercase hex of the file's SHA-256, for the client to check what it downloaded.
    public var sha256: String
    public var url: String

    public init(name: String, contentType: String, bytes: Int64, sha256: String, url: String) {
        self.name = name
        self.contentType = contentType
        self.bytes = bytes
        self.sha256 = sha256
        self.url = url
    }

    /// From a result's `files` entry; nil without a url. Missing sizes and digests read as unknown (0, "").
    public init?(json: JSONValue) {
        guard let url = json["url"]?.stringValue else { return nil }
        self.init(
            name: json["name"]?.stringValue ?? "",
            contentType: json["content_type"]?.stringValue ?? "application/octet-stream",
            bytes: json["bytes"]?.intValue.map(Int64.init) ?? 0,
            sha256: json["sha256"]?.stringValue ?? "",
            url: url
        )
    }

    public var jsonValue: JSONValue {
        ["name": .string(name), "content_type": .string(contentType), "bytes": .int(Int(bytes)), "sha256": .string(sha256), "url": .string(url)]
    }
}
