import Foundation
import SwarmCore

/// Where an S3-compatible service listens: scheme, host and a port when it is not the scheme's default.
public struct S3Endpoint: Sendable, Hashable, CustomStringConvertible {
    public var scheme: String
    public var host: String
    public var port: Int?

    /// Parses `https://s3.eu-central-1.amazonaws.com`, `http://127.0.0.1:9000`; `variable` names the setting in errors.
    public init(url: String, variable: String = "SWARM_S3_ENDPOINT") throws(StorageError) {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty
        else {
            throw StorageError(.configuration, "\(variable)=\(url) is not an http(s) URL such as https://s3.eu-central-1.amazonaws.com")
        }
        guard components.path.isEmpty || components.path == "/", components.query == nil else {
            throw StorageError(
                .configuration,
                "\(variable)=\(url) must be the service's root URL, without a path or query (the bucket goes in SWARM_S3_BUCKET)"
            )
        }
        self.scheme = scheme
        // An IPv6 literal keeps its brackets, as in the Host header.
        self.host = host.contains(":") && !host.hasPrefix("[") ? "[\(host.lowercased())]" : host.lowercased()
        let defaultPort = scheme == "https" ? 443 : 80
        self.port = components.port.flatMap { $0 == defaultPort ? nil : $0 }
    }

    /// `host` or `host:port`, as sent in the Host header and signed.
    public var authority: String { port.map { "\(host):\($0)" } ?? host }

    public var description: String { "\(scheme)://\(authority)" }

    /// Buckets on an IP address or a single-label host cannot be reached as a subdomain.
    var allowsVirtualHost: Bool {
        let labels = host.split(separator: ".")
        let isIPv4 = labels.count == 4 && labels.allSatisfy { UInt8($0) != nil }
        return labels.count > 1 && !isIPv4 && !host.contains(":")
    }
}

/// Everything needed to talk to one bucket.
public struct S3Configuration: Sendable {
    public var endpoint: S3Endpoint
    public var bucket: String
    /// Signing region: `us-east-1` for MinIO and most self-hosted services, `auto` for Cloudflare R2.
    public var region: String
    public var credentials: S3Credentials
    /// Address the bucket as `endpoint/bucket/key` instead of `bucket.endpoint/key` (MinIO without a domain).
    public var forcePathStyle: Bool
    /// When set, download links are `<base>/<key>` instead of presigned GETs (a public bucket or a CDN).
    public var publicBaseURL: String?

    public init(
        endpoint: S3Endpoint,
        bucket: String,
        region: String,
        credentials: S3Credentials,
        forcePathStyle: Bool = false,
        publicBaseURL: String? = nil
    ) {
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self.credentials = credentials
        self.forcePathStyle = forcePathStyle
        self.publicBaseURL = publicBaseURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
    }

    /// Path style when forced, when the host cannot carry a subdomain, or when the bucket name is not a valid
    /// DNS label (upper case, underscores, or dots under https, which would break the certificate match).
    public var usesPathStyle: Bool {
        if forcePathStyle || !endpoint.allowsVirtualHost { return true }
        let dnsSafe = bucket.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 46 }
        return !dnsSafe || (endpoint.scheme == "https" && bucket.contains("."))
    }

    /// The request for `key` (`nil` addresses the bucket itself).
    func request(
        method: String,
        key: String?,
        query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)] = []
    ) -> SigV4Request {
        let objectPath = key.map { "/" + $0 } ?? "/"
        if usesPathStyle {
            let path = key == nil ? "/\(bucket)" : "/\(bucket)\(objectPath)"
            return SigV4Request(method: method, scheme: endpoint.scheme, host: endpoint.authority, path: path, query: query, headers: headers)
        }
        return SigV4Request(
            method: method,
            scheme: endpoint.scheme,
            host: "\(bucket).\(endpoint.authority)",
            path: objectPath,
            query: query,
            headers: headers
        )
    }
}

extension S3Configuration {
    /// Reads the `SWARM_S3_*` variables, falling back to RunPod's `BUCKET_*` names. A `BUCKET_ENDPOINT_URL`
    /// written the rp_upload way (`https://<bucket>.s3.<region>.amazonaws.com`) also yields bucket and region.
    public init(environment env: [String: String]) throws(StorageError) {
        func value(_ names: String...) -> (name: String, value: String)? {
            for name in names {
                if let value = env[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty { return (name, value) }
            }
            return nil
        }
        guard let endpointSetting = value("SWARM_S3_ENDPOINT", "BUCKET_ENDPOINT_URL") else {
            throw StorageError(
                .configuration,
                "SWARM_STORAGE=s3 needs SWARM_S3_ENDPOINT (or BUCKET_ENDPOINT_URL), e.g. https://s3.eu-central-1.amazonaws.com"
            )
        }
        guard let keyID = value("SWARM_S3_ACCESS_KEY_ID", "BUCKET_ACCESS_KEY_ID") else {
            throw StorageError(.configuration, "SWARM_STORAGE=s3 needs SWARM_S3_ACCESS_KEY_ID (or BUCKET_ACCESS_KEY_ID)")
        }
        guard let secret = value("SWARM_S3_SECRET_ACCESS_KEY", "BUCKET_SECRET_ACCESS_KEY") else {
            throw StorageError(.configuration, "SWARM_STORAGE=s3 needs SWARM_S3_SECRET_ACCESS_KEY (or BUCKET_SECRET_ACCESS_KEY)")
        }
        var endpoint = try S3Endpoint(url: endpointSetting.value, variable: endpointSetting.name)
        var bucket = value("SWARM_S3_BUCKET")?.value
        var region = value("SWARM_S3_REGION")?.value
        let inferred = Self.inferBucketAndRegion(host: endpoint.host)
        if bucket == nil, let named = inferred.bucket {
            bucket = named
            endpoint.host = String(endpoint.host.dropFirst(named.count + 1))
        }
        region = region ?? inferred.region
        guard let bucket else {
            throw StorageError(.configuration, "SWARM_STORAGE=s3 needs SWARM_S3_BUCKET (the bucket that receives outputs)")
        }
        let forcePathStyle: Bool
        switch value("SWARM_S3_FORCE_PATH_STYLE")?.value.lowercased() {
        case nil, "0", "false", "no": forcePathStyle = false
        case "1", "true", "yes": forcePathStyle = true
        case let other?:
            throw StorageError(.configuration, "SWARM_S3_FORCE_PATH_STYLE=\(other) is not a boolean; use 1 or 0")
        }
        let publicBase = value("SWARM_S3_PUBLIC_BASE_URL")?.value
        if let publicBase, URLComponents(string: publicBase)?.host == nil {
            throw StorageError(.configuration, "SWARM_S3_PUBLIC_BASE_URL=\(publicBase) is not an absolute URL")
        }
        self.init(
            endpoint: endpoint,
            bucket: bucket,
            region: region ?? "us-east-1",
            credentials: S3Credentials(accessKeyID: keyID.value, secretAccessKey: Secret(secret.value)),
            forcePathStyle: forcePathStyle,
            publicBaseURL: publicBase
        )
    }

    /// The `s3Config` object a RunPod job may carry: `{"accessId", "accessSecret", "bucketName", "endpointUrl"}`.
    public init(runpodS3Config config: JSONValue) throws(StorageError) {
        guard let accessID = config["accessId"]?.stringValue, let secret = config["accessSecret"]?.stringValue,
            let endpointURL = config["endpointUrl"]?.stringValue
        else {
            throw StorageError(.configuration, "the job's s3Config needs accessId, accessSecret and endpointUrl")
        }
        var environment = [
            "SWARM_S3_ENDPOINT": endpointURL, "SWARM_S3_ACCESS_KEY_ID": accessID, "SWARM_S3_SECRET_ACCESS_KEY": secret,
        ]
        environment["SWARM_S3_BUCKET"] = config["bucketName"]?.stringValue
        try self.init(environment: environment)
    }

    /// `<bucket>.s3.<region>.amazonaws.com` (also `s3-<region>`, `s3.dualstack.<region>`), `s3.amazonaws.com`,
    /// `<bucket>.<region>.digitaloceanspaces.com`, and Cloudflare R2 (whose region is always `auto`).
    static func inferBucketAndRegion(host: String) -> (bucket: String?, region: String?) {
        let labels = host.split(separator: ".").map(String.init)
        if host.hasSuffix(".amazonaws.com"), let s3 = labels.firstIndex(where: { $0 == "s3" || $0.hasPrefix("s3-") }) {
            let bucket = s3 > 0 ? labels[..<s3].joined(separator: ".") : nil
            let between = labels[(s3 + 1)..<(labels.count - 2)].filter { $0 != "dualstack" }
            let region = labels[s3].hasPrefix("s3-") ? String(labels[s3].dropFirst(3)) : between.last
            return (bucket, region)
        }
        if host.hasSuffix(".r2.cloudflarestorage.com") {
            return (nil, "auto")
        }
        if host.hasSuffix(".digitaloceanspaces.com"), labels.count >= 3 {
            return (labels.count == 4 ? labels[0] : nil, labels[labels.count - 3])
        }
        return (nil, nil)
    }
}
