/// Where a worker sends one output. As JSON (the body of the control plane's job-upload reply):
/// `{"key", "size", "method": "PUT", "url", "headers": {...}}` for one request, or
/// `{"key", "size", "multipart": {"upload_id", "part_size", "parts": [{"number", "url"}], "complete_url"}}`.
public enum UploadTarget: Sendable, Hashable, Codable {
    case put(SingleUpload)
    case multipart(MultipartUpload)

    public var key: String {
        switch self {
        case .put(let upload): upload.key
        case .multipart(let upload): upload.key
        }
    }

    public var size: Int64 {
        switch self {
        case .put(let upload): upload.size
        case .multipart(let upload): upload.size
        }
    }

    private enum CodingKeys: String, CodingKey { case multipart, method }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if container.contains(.multipart) {
            var upload = try container.decode(MultipartUpload.self, forKey: .multipart)
            let outer = try SingleUpload.Outer(from: decoder)
            upload.key = outer.key
            upload.size = outer.size
            self = .multipart(upload)
        } else {
            self = .put(try SingleUpload(from: decoder))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .put(let upload):
            try upload.encode(to: encoder)
        case .multipart(let upload):
            try SingleUpload.Outer(key: upload.key, size: upload.size).encode(to: encoder)
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(upload, forKey: .multipart)
        }
    }
}

/// One PUT of the whole file. `headers` must be sent exactly (they are part of the signature).
public struct SingleUpload: Sendable, Hashable, Codable {
    public var key: String
    public var size: Int64
    public var method: String
    public var url: String
    public var headers: [String: String]

    public init(key: String, size: Int64, url: String, headers: [String: String]) {
        self.key = key
        self.size = size
        self.method = "PUT"
        self.url = url
        self.headers = headers
    }

    /// The fields a multipart target shares with a single one, at the top level of the JSON.
    struct Outer: Codable {
        var key: String
        var size: Int64
    }
}

/// An S3 multipart upload: every part but the last is exactly `partSize` bytes.
public struct MultipartUpload: Sendable, Hashable, Codable {
    public struct Part: Sendable, Hashable, Codable {
        public var number: Int
        public var url: String

        public init(number: Int, url: String) {
            self.number = number
            self.url = url
        }
    }

    public var key: String
    public var size: Int64
    public var uploadID: String
    public var partSize: Int64
    public var parts: [Part]
    /// Where the worker reports the parts' ETags when it is done (a control-plane route), if anywhere.
    public var completeURL: String?

    public init(key: String, size: Int64, uploadID: String, partSize: Int64, parts: [Part], completeURL: String?) {
        self.key = key
        self.size = size
        self.uploadID = uploadID
        self.partSize = partSize
        self.parts = parts
        self.completeURL = completeURL
    }

    // key and size live at the top level of the target, next to "multipart".
    private enum CodingKeys: String, CodingKey {
        case uploadID = "upload_id", partSize = "part_size", parts, completeURL = "complete_url"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        key = ""
        size = 0
        uploadID = try container.decode(String.self, forKey: .uploadID)
        partSize = try container.decode(Int64.self, forKey: .partSize)
        parts = try container.decode([Part].self, forKey: .parts)
        completeURL = try container.decodeIfPresent(String.self, forKey: .completeURL)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(uploadID, forKey: .uploadID)
        try container.encode(partSize, forKey: .partSize)
        try container.encode(parts, forKey: .parts)
        try container.encodeIfPresent(completeURL, forKey: .completeURL)
    }

    /// S3's limits: parts of 5 MiB to 5 GiB, at most 10,000 of them.
    public static let minimumPartSize: Int64 = 5 << 20
    public static let maximumPartCount = 10_000
    /// The worker holds two parts in memory (one sent, one read; `OutputUploader.partConcurrency` 1); 8 MiB, the AWS
    /// CLI's default chunk size, keeps that well under its 64 MiB budget at one request per 8 MiB.
    public static let preferredPartSize: Int64 = 8 << 20

    /// The part size for an object of `size` bytes: the preferred size, grown in whole MiB only when
    /// the object would otherwise need more than 10,000 parts (above 78 GiB).
    public static func partSize(forObjectOfSize size: Int64) -> Int64 {
        let needed = (size + Int64(maximumPartCount) - 1) / Int64(maximumPartCount)
        let roundedUp = (needed + (1 << 20) - 1) / (1 << 20) * (1 << 20)
        return max(preferredPartSize, roundedUp)
    }

    /// Number of parts for an object of `size` bytes cut into `partSize` pieces (at least one).
    public static func partCount(size: Int64, partSize: Int64) -> Int {
        max(1, Int((size + partSize - 1) / partSize))
    }
}

/// A part as S3 acknowledged it; CompleteMultipartUpload needs every one.
public struct CompletedPart: Sendable, Hashable, Codable {
    public var number: Int
    public var etag: String

    public init(number: Int, etag: String) {
        self.number = number
        self.etag = etag
    }
}
