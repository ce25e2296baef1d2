import AsyncHTTPClient
import Foundation
import JobProtocol
import SwarmCore
import Testing

@testable import Storage

/// botocore's signatures (Fixtures/sigv4_botocore.json, made by make_sigv4_fixtures.py with a frozen clock)
/// and the examples AWS publishes in "Authenticating Requests (AWS Signature Version 4)" of the S3 API reference.
@Suite struct SigV4Tests {
    struct Fixtures: Decodable {
        var generator: String
        var date: String
        var access_key_id: String
        var secret_access_key: String
        var presigned: [Case]
        var signed: [Case]
    }

    struct Case: Decodable, CustomTestStringConvertible {
        var name: String
        var operation: String
        var endpoint: String
        var region: String
        var bucket: String
        var path_style: Bool
        var key: String
        var session_token: String?
        var content_type: String?
        var upload_id: String?
        var part_number: Int?
        var expires: Int?
        var url: String?
        var body: String?
        var x_amz_date: String?
        var x_amz_content_sha256: String?
        var authorization: String?

        var testDescription: String { name }
    }

    static let fixtures: Fixtures = {
        let url = Bundle.module.url(forResource: "sigv4_botocore", withExtension: "json", subdirectory: "Fixtures")!
        return try! JSONDecoder().decode(Fixtures.self, from: Data(contentsOf: url))
    }()

    /// 2026-11-30T12:34:56Z, the generator's frozen clock.
    static let frozen = Date(timeIntervalSince1970: 1_796_042_096)

    static func storage(for fixture: Case) throws -> S3Storage {
        let credentials = S3Credentials(
            accessKeyID: fixtures.access_key_id,
            secretAccessKey: Secret(fixtures.secret_access_key),
            sessionToken: fixture.session_token.map(Secret.init)
        )
        let configuration = S3Configuration(
            endpoint: try S3Endpoint(url: fixture.endpoint),
            bucket: fixture.bucket,
            region: fixture.region,
            credentials: credentials,
            forcePathStyle: fixture.path_style
        )
        return S3Storage(configuration: configuration, httpClient: .shared, now: { frozen })
    }

    @Test func frozenClockMatchesTheGenerator() {
        #expect(SigV4Timestamp(Self.frozen).dateTime == Self.fixtures.date)
        #expect(SigV4Timestamp(Date(timeIntervalSince1970: 951_782_400)).dateTime == "20000229T000000Z")
        #expect(SigV4Timestamp(Date(timeIntervalSince1970: 4_102_444_799)).dateTime == "20991231T235959Z")
    }

    @Test(arguments: fixtures.presigned)
    func presignedURLMatchesBotocore(_ fixture: Case) throws {
        let storage = try Self.storage(for: fixture)
        let expires = try #require(fixture.expires)
        let url: String
        switch fixture.operation {
        case "get": url = storage.presignGet(key: fixture.key, expires: expires)
        case "put": url = storage.presignPut(key: fixture.key, contentType: fixture.content_type, expires: expires)
        case "part":
            url = storage.presignPart(
                key: fixture.key,
                uploadID: try #require(fixture.upload_id),
                partNumber: try #require(fixture.part_number),
                expires: expires
            )
        default: Issue.record("unknown operation \(fixture.operation)"); return
        }
        #expect(url == fixture.url)
    }

    @Test(arguments: fixtures.signed)
    func authorizationHeaderMatchesBotocore(_ fixture: Case) throws {
        let storage = try Self.storage(for: fixture)
        let contentType = fixture.content_type.map { [(name: "content-type", value: $0)] } ?? []
        let request: SigV4Request
        switch fixture.operation {
        case "create":
            request = storage.configuration.request(method: "POST", key: fixture.key, query: [("uploads", "")], headers: contentType)
        case "complete":
            request = storage.configuration.request(
                method: "POST",
                key: fixture.key,
                query: [("uploadId", try #require(fixture.upload_id))],
                headers: contentType
            )
            let parts = [CompletedPart(number: 1, etag: "\"etag-1\""), CompletedPart(number: 2, etag: "\"etag-2\"")]
            #expect(S3Storage.completeBody(parts) == fixture.body)
        case "abort":
            request = storage.configuration.request(method: "DELETE", key: fixture.key, query: [("uploadId", try #require(fixture.upload_id))])
        case "head":
            request = storage.configuration.request(method: "HEAD", key: fixture.key)
        default: Issue.record("unknown operation \(fixture.operation)"); return
        }
        let headers = Dictionary(storage.signedHeaders(for: request, body: fixture.body ?? "").map { ($0.name.lowercased(), $0.value) }) { $1 }
        #expect(headers["authorization"] == fixture.authorization)
        #expect(headers["x-amz-date"] == fixture.x_amz_date)
        #expect(headers["x-amz-content-sha256"] == fixture.x_amz_content_sha256)
        #expect(headers["x-amz-security-token"] == fixture.session_token)
    }

    // MARK: AWS's published examples (access key AKIAIOSFODNN7EXAMPLE, 2013-05-24, us-east-1, examplebucket)

    static let awsSigner = SigV4Signer(
        credentials: S3Credentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: Secret("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")),
        region: "us-east-1"
    )
    static let awsDate = Date(timeIntervalSince1970: 1_369_353_600)

    static func awsAuthorization(_ request: SigV4Request, payload: String) -> String? {
        awsSigner.sign(request, payloadSHA256: payload, date: awsDate).first { $0.name == "Authorization" }?.value
    }

    @Test func awsExamplePresignedGet() {
        let request = SigV4Request(method: "GET", scheme: "https", host: "examplebucket.s3.amazonaws.com", path: "/test.txt")
        #expect(
            Self.awsSigner.presign(request, expires: 86_400, date: Self.awsDate)
                == "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                + "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
                + "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
                + "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        )
    }

    @Test func awsExampleGetObjectWithRange() {
        let request = SigV4Request(
            method: "GET",
            scheme: "https",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            headers: [("Range", "bytes=0-9")]
        )
        #expect(
            Self.awsAuthorization(request, payload: SigV4.emptyPayloadSHA256)
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                + "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        )
    }

    @Test func awsExamplePutObject() {
        // The key "test$file.text" checks that `$` is percent-encoded in the canonical URI.
        let request = SigV4Request(
            method: "PUT",
            scheme: "https",
            host: "examplebucket.s3.amazonaws.com",
            path: "/test$file.text",
            headers: [("Date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-storage-class", "REDUCED_REDUNDANCY")]
        )
        #expect(
            Self.awsAuthorization(request, payload: "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072")?
                .hasSuffix("Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd") == true
        )
    }

    @Test func awsExampleGetBucketLifecycle() {
        let request = SigV4Request(
            method: "GET",
            scheme: "https",
            host: "examplebucket.s3.amazonaws.com",
            path: "/",
            query: [("lifecycle", "")]
        )
        #expect(
            Self.awsAuthorization(request, payload: SigV4.emptyPayloadSHA256)?
                .hasSuffix("Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543") == true
        )
    }

    @Test func awsExampleListObjects() {
        // Query items out of order: the canonical query string sorts them.
        let request = SigV4Request(
            method: "GET",
            scheme: "https",
            host: "examplebucket.s3.amazonaws.com",
            path: "/",
            query: [("prefix", "J"), ("max-keys", "2")]
        )
        #expect(
            Self.awsAuthorization(request, payload: SigV4.emptyPayloadSHA256)?
                .hasSuffix("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7") == true
        )
    }

    // MARK: Encoding rules

    @Test func percentEncodingFollowsRFC3986() {
        #expect(SigV4.encode("a b+c/d~e_f-g.h") == "a%20b%2Bc%2Fd~e_f-g.h")
        #expect(SigV4.encodePath("/dir/ü 图.png") == "/dir/%C3%BC%20%E5%9B%BE.png")
        #expect(SigV4.encodePath("/a//b/./c") == "/a//b/./c")
        #expect(SigV4.canonicalQuery([("b", "2"), ("a", "x y"), ("a", "1")]) == "a=1&a=x%20y&b=2")
    }

    @Test func secretsStayOutOfDescriptions() {
        let credentials = S3Credentials(accessKeyID: "AKID", secretAccessKey: Secret("very-secret"), sessionToken: Secret("tok-secret"))
        for text in ["\(credentials)", String(reflecting: credentials)] {
            #expect(!text.contains("very-secret") && !text.contains("tok-secret"))
        }
    }
}
