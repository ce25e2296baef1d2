import AsyncHTTPClient
import Foundation
import JobProtocol
import NIOHTTP1
import SwarmCore
import Testing

@testable import Storage

@Suite struct ConfigurationTests {
    let s3Environment = [
        "SWARM_STORAGE": "s3", "SWARM_S3_ENDPOINT": "https://0123.r2.cloudflarestorage.com", "SWARM_S3_BUCKET": "outputs",
        "SWARM_S3_REGION": "auto", "SWARM_S3_ACCESS_KEY_ID": "AKID", "SWARM_S3_SECRET_ACCESS_KEY": "s3cr3t-value",
    ]

    @Test func localIsTheDefault() throws {
        let configuration = try StorageConfiguration(environment: [:], dataDirectory: "/data")
        guard case .local(let directory) = configuration.backend else { Issue.record("expected local"); return }
        #expect(directory == "/data/outputs")
        #expect(configuration.multipartThreshold == 64 << 20)
        #expect(configuration.presignExpires == 3_600)
    }

    @Test func s3FromTheEnvironment() async throws {
        var environment = s3Environment
        environment["SWARM_MULTIPART_THRESHOLD"] = "10485760"
        environment["SWARM_PRESIGN_EXPIRES"] = "600"
        environment["SWARM_S3_PUBLIC_BASE_URL"] = "https://cdn.example.com/outputs/"
        let configuration = try StorageConfiguration(environment: environment, dataDirectory: "/data")
        guard case .s3(let s3) = configuration.backend else { Issue.record("expected s3"); return }
        #expect(s3.endpoint.description == "https://0123.r2.cloudflarestorage.com")
        #expect(s3.region == "auto")
        #expect(!s3.usesPathStyle)
        #expect(s3.publicBaseURL == "https://cdn.example.com/outputs")
        #expect(configuration.multipartThreshold == 10 << 20)
        #expect(configuration.presignExpires == 600)
        let storage = configuration.makeStorage(httpClient: .shared, controlPlaneURL: "http://cp", signingSecret: Secret("s"))
        #expect(try await storage.downloadURL(key: "ep/job/a b.png") == "https://cdn.example.com/outputs/ep/job/a%20b.png")
    }

    @Test(arguments: [
        ("SWARM_STORAGE", "ftp", "SWARM_STORAGE=ftp"),
        ("SWARM_S3_ENDPOINT", "", "SWARM_S3_ENDPOINT"),
        ("SWARM_S3_ENDPOINT", "s3.amazonaws.com", "SWARM_S3_ENDPOINT=s3.amazonaws.com"),
        ("SWARM_S3_ENDPOINT", "https://minio:9000/bucket", "without a path"),
        ("SWARM_S3_BUCKET", "", "SWARM_S3_BUCKET"),
        ("SWARM_S3_ACCESS_KEY_ID", "", "SWARM_S3_ACCESS_KEY_ID"),
        ("SWARM_S3_SECRET_ACCESS_KEY", "", "SWARM_S3_SECRET_ACCESS_KEY"),
        ("SWARM_S3_FORCE_PATH_STYLE", "maybe", "SWARM_S3_FORCE_PATH_STYLE=maybe"),
        ("SWARM_MULTIPART_THRESHOLD", "1000", "SWARM_MULTIPART_THRESHOLD=1000"),
        ("SWARM_PRESIGN_EXPIRES", "999999", "SWARM_PRESIGN_EXPIRES=999999"),
    ])
    func badSettingsNameTheVariable(name: String, value: String, mentions: String) {
        var environment = s3Environment
        environment[name] = value
        let error = #expect(throws: StorageError.self) { try StorageConfiguration(environment: environment, dataDirectory: "/data") }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains(mentions) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("s3cr3t-value") == false)
    }

    @Test func runpodBucketVariablesAndTheirEndpointForm() throws {
        let configuration = try S3Configuration(environment: [
            "BUCKET_ENDPOINT_URL": "https://my-outputs.s3.eu-west-3.amazonaws.com",
            "BUCKET_ACCESS_KEY_ID": "AKID", "BUCKET_SECRET_ACCESS_KEY": "secret",
        ])
        #expect(configuration.bucket == "my-outputs")
        #expect(configuration.endpoint.description == "https://s3.eu-west-3.amazonaws.com")
        #expect(configuration.region == "eu-west-3")
        #expect(configuration.credentials.secretAccessKey.value == "secret")
    }

    @Test(
        arguments: [
            ("s3.amazonaws.com", nil, nil),
            ("s3.eu-west-3.amazonaws.com", nil, "eu-west-3"),
            ("my.dotted.bucket.s3.us-west-2.amazonaws.com", "my.dotted.bucket", "us-west-2"),
            ("b.s3-ap-south-1.amazonaws.com", "b", "ap-south-1"),
            ("s3.dualstack.eu-north-1.amazonaws.com", nil, "eu-north-1"),
            ("b.fra1.digitaloceanspaces.com", "b", "fra1"),
            ("0123.r2.cloudflarestorage.com", nil, "auto"),
            ("minio.example.com", nil, nil),
        ] as [(String, String?, String?)]
    )
    func bucketAndRegionFromTheHost(host: String, bucket: String?, region: String?) {
        let inferred = S3Configuration.inferBucketAndRegion(host: host)
        #expect(inferred.bucket == bucket)
        #expect(inferred.region == region)
    }

    @Test func ipv6Endpoint() throws {
        let endpoint = try S3Endpoint(url: "http://[::1]:9000")
        #expect(endpoint.authority == "[::1]:9000")
        #expect(!endpoint.allowsVirtualHost)
    }

    @Test func runpodJobS3Config() throws {
        let configuration = try S3Configuration(runpodS3Config: [
            "accessId": "AKID", "accessSecret": "secret", "bucketName": "b1", "endpointUrl": "https://nyc3.digitaloceanspaces.com",
        ])
        #expect(configuration.bucket == "b1")
        #expect(configuration.region == "nyc3")
        #expect(throws: StorageError.self) { try S3Configuration(runpodS3Config: ["accessId": "AKID"]) }
    }

    @Test func addressingStyle() throws {
        func configuration(_ endpoint: String, bucket: String = "outputs", force: Bool = false) throws -> S3Configuration {
            S3Configuration(
                endpoint: try S3Endpoint(url: endpoint),
                bucket: bucket,
                region: "us-east-1",
                credentials: S3Credentials(accessKeyID: "a", secretAccessKey: Secret("s")),
                forcePathStyle: force
            )
        }
        #expect(try configuration("http://127.0.0.1:9000").usesPathStyle)
        #expect(try configuration("http://localhost:9000").usesPathStyle)
        #expect(try configuration("https://s3.amazonaws.com", bucket: "my.bucket").usesPathStyle)
        #expect(try configuration("https://s3.amazonaws.com", bucket: "Upper").usesPathStyle)
        #expect(try configuration("https://minio.example.com", force: true).usesPathStyle)
        #expect(try !configuration("https://s3.amazonaws.com").usesPathStyle)
        #expect(try configuration("https://s3.amazonaws.com:443").endpoint.port == nil)
    }

    @Test func objectKeysAreSanitized() {
        #expect(ObjectKey.output(endpoint: "swarmui", jobID: "job-1", fileName: "a b+ü.png") == "swarmui/job-1/a_b_ü.png")
        #expect(ObjectKey.output(endpoint: "../..", jobID: "a/b", fileName: "..") == "endpoint/a_b/output")
        #expect(ObjectKey.output(endpoint: "e", jobID: "j", fileName: ".hidden\n.mp4") == "e/j/hidden_.mp4")
        let long = ObjectKey.sanitize(String(repeating: "x", count: 300) + ".webm", fallback: "o")
        #expect(long.utf8.count == 200 && long.hasSuffix(".webm"))
    }

    @Test func xmlRepliesAreReadTolerantly() {
        let initiate = """
            <?xml version="1.0" encoding="UTF-8"?>
            <InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket>\
            <Key>k</Key><UploadId>VXBsb2FkIElE&amp;x</UploadId></InitiateMultipartUploadResult>
            """
        #expect(S3XML.firstText(of: "UploadId", in: initiate) == "VXBsb2FkIElE&x")
        #expect(S3XML.firstText(of: "Code", in: "<s3:Error><s3:Code>SlowDown</s3:Code></s3:Error>") == "SlowDown")
        #expect(S3XML.firstText(of: "ETag", in: "<ETag>&quot;abc&#34;&#x41;</ETag>") == "\"abc\"A")
        #expect(S3XML.firstText(of: "Missing", in: "<a><b/></a>") == nil)
        #expect(S3XML.firstText(of: "Key", in: "<Keys>no</Keys><Key attr=\"1\">yes</Key>") == "yes")
    }

    @Test func s3FailuresAreClassified() {
        let body = "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
        #expect(S3Storage.failure(status: .serviceUnavailable, body: "", operation: "HeadObject", key: "k", bucket: "b").code == .unavailable)
        #expect(S3Storage.failure(status: .badRequest, body: body, operation: "PUT", key: "k", bucket: "b").code == .unavailable)
        #expect(S3Storage.failure(status: .forbidden, body: "", operation: "PUT", key: "k", bucket: "b").code == .rejected)
        #expect(S3Storage.failure(status: .notFound, body: "", operation: "HeadObject", key: "k", bucket: "b").code == .notFound)
        let missingBucket = S3Storage.failure(
            status: .notFound,
            body: "<Error><Code>NoSuchBucket</Code></Error>",
            operation: "HeadObject",
            key: "k",
            bucket: "b"
        )
        #expect(missingBucket.code == .rejected)
        #expect(missingBucket.message == "HeadObject of k in b failed with HTTP 404 (NoSuchBucket)")
    }
}
