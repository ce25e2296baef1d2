import AsyncHTTPClient
import Crypto
import Foundation
import JobProtocol
import Logging
import NIOCore
import NIOHTTP1
import SwarmCore

/// Outputs in an S3-compatible bucket. The control plane signs; workers only ever see presigned URLs.
public struct S3Storage: OutputStorage {
    public let configuration: S3Configuration
    public let multipartThreshold: Int64
    /// Lifetime of presigned URLs, seconds.
    public let presignExpires: Int
    private let signer: SigV4Signer
    private let httpClient: HTTPClient
    private let now: @Sendable () -> Date
    private let timeout: TimeAmount
    private let retry: (attempts: Int, backoff: Backoff)
    private let logger: Logger

    public init(
        configuration: S3Configuration,
        httpClient: HTTPClient,
        multipartThreshold: Int64 = StorageConfiguration.defaultMultipartThreshold,
        presignExpires: Int = StorageConfiguration.defaultPresignExpires,
        requestTimeout: TimeAmount = .seconds(30),
        attempts: Int = 3,
        backoff: Backoff = Backoff(initial: .milliseconds(200), maximum: .seconds(5)),
        logger: Logger = Logger(label: "swarm.storage.s3"),
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.configuration = configuration
        self.multipartThreshold = multipartThreshold
        self.presignExpires = presignExpires
        self.signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region)
        self.httpClient = httpClient
        self.now = now
        self.timeout = requestTimeout
        self.retry = (max(1, attempts), backoff)
        var logger = logger
        logger[metadataKey: "s3.bucket"] = "\(configuration.bucket)"
        self.logger = logger
    }

    // MARK: Presigned URLs

    /// A URL that stores the request body at `key`. With a content type, the uploader must send that exact
    /// `Content-Type` header (it is signed, so the object gets the right type).
    public func presignPut(key: String, contentType: String?, expires: Int? = nil) -> String {
        let headers = contentType.map { [(name: "content-type", value: $0)] } ?? []
        return signer.presign(configuration.request(method: "PUT", key: key, headers: headers), expires: expires ?? presignExpires, date: now())
    }

    public func presignGet(key: String, expires: Int? = nil) -> String {
        signer.presign(configuration.request(method: "GET", key: key), expires: expires ?? presignExpires, date: now())
    }

    /// A URL for one part of a multipart upload (UploadPart); parts are numbered from 1.
    public func presignPart(key: String, uploadID: String, partNumber: Int, expires: Int? = nil) -> String {
        // botocore's order, so URLs compare equal to its output: uploadId before partNumber.
        let query = [(name: "uploadId", value: uploadID), (name: "partNumber", value: String(partNumber))]
        return signer.presign(configuration.request(method: "PUT", key: key, query: query), expires: expires ?? presignExpires, date: now())
    }

    /// `SWARM_S3_PUBLIC_BASE_URL/<key>` when configured, else a presigned GET.
    public func downloadURL(key: String) -> String {
        if let base = configuration.publicBaseURL { return base + "/" + SigV4.encodePath(key) }
        return presignGet(key: key)
    }

    // MARK: Requests the control plane sends itself

    /// Starts a multipart upload and returns its upload id.
    public func createMultipartUpload(key: String, contentType: String) async throws(StorageError) -> String {
        let request = configuration.request(
            method: "POST",
            key: key,
            query: [("uploads", "")],
            headers: [("content-type", contentType)]
        )
        let reply = try await send(request, operation: "CreateMultipartUpload", key: key)
        guard let uploadID = S3XML.firstText(of: "UploadId", in: reply.body), !uploadID.isEmpty else {
            throw StorageError(.rejected, "CreateMultipartUpload of \(key) in \(configuration.bucket): the reply has no UploadId")
        }
        return uploadID
    }

    /// Assembles the parts into the object; returns its ETag.
    @discardableResult
    public func completeMultipartUpload(key: String, uploadID: String, parts: [CompletedPart]) async throws(StorageError) -> String? {
        let body = Self.completeBody(parts)
        let request = configuration.request(
            method: "POST",
            key: key,
            query: [("uploadId", uploadID)],
            headers: [("content-type", "application/xml")]
        )
        let reply = try await send(request, body: body, operation: "CompleteMultipartUpload", key: key)
        // S3 may answer 200 and still fail: the error then comes in the body, after the status line was sent.
        if S3XML.firstText(of: "Code", in: reply.body) != nil, S3XML.firstText(of: "ETag", in: reply.body) == nil {
            throw Self.failure(status: .ok, body: reply.body, operation: "CompleteMultipartUpload", key: key, bucket: configuration.bucket)
        }
        return S3XML.firstText(of: "ETag", in: reply.body)
    }

    /// Discards an unfinished multipart upload and its parts.
    public func abortMultipartUpload(key: String, uploadID: String) async throws(StorageError) {
        let request = configuration.request(method: "DELETE", key: key, query: [("uploadId", uploadID)])
        do {
            _ = try await send(request, operation: "AbortMultipartUpload", key: key)
        } catch  where error.code == .notFound {
            // Already completed, aborted or expired: nothing is left to discard.
        }
    }

    public func head(key: String) async throws(StorageError) -> ObjectInfo? {
        do throws(StorageError) {
            let reply = try await send(configuration.request(method: "HEAD", key: key), operation: "HeadObject", key: key)
            guard let length = reply.headers.first(name: "content-length").flatMap(Int64.init) else {
                throw StorageError(.rejected, "HeadObject of \(key) in \(configuration.bucket): the reply has no Content-Length")
            }
            return ObjectInfo(bytes: length, etag: reply.headers.first(name: "etag"), contentType: reply.headers.first(name: "content-type"))
        } catch  where error.code == .notFound {
            return nil
        }
    }

    public func deleteObject(key: String) async throws(StorageError) {
        _ = try await send(configuration.request(method: "DELETE", key: key), operation: "DeleteObject", key: key)
    }

    /// Creates the bucket (tests and first-time setup against MinIO or moto; AWS buckets are made in the console).
    func createBucket() async throws(StorageError) {
        _ = try await send(configuration.request(method: "PUT", key: nil), operation: "CreateBucket", key: "")
    }

    // MARK: OutputStorage

    public func uploadTarget(key: String, size: Int64, contentType: String, completeURL: String?) async throws(StorageError) -> UploadTarget {
        guard size >= multipartThreshold else {
            return .put(
                SingleUpload(key: key, size: size, url: presignPut(key: key, contentType: contentType), headers: ["content-type": contentType])
            )
        }
        let uploadID = try await createMultipartUpload(key: key, contentType: contentType)
        let partSize = MultipartUpload.partSize(forObjectOfSize: size)
        let parts = (1...MultipartUpload.partCount(size: size, partSize: partSize)).map {
            MultipartUpload.Part(number: $0, url: presignPart(key: key, uploadID: uploadID, partNumber: $0))
        }
        return .multipart(MultipartUpload(key: key, size: size, uploadID: uploadID, partSize: partSize, parts: parts, completeURL: completeURL))
    }

    public func completeUpload(_ target: UploadTarget, parts: [CompletedPart]) async throws(StorageError) -> ObjectInfo {
        if case .multipart(let upload) = target {
            let expected = upload.parts.count
            guard parts.count == expected, Set(parts.map(\.number)) == Set(1...expected) else {
                throw StorageError(.integrity, "upload of \(target.key) reported parts \(parts.map(\.number).sorted()), expected 1...\(expected)")
            }
            do {
                try await completeMultipartUpload(key: upload.key, uploadID: upload.uploadID, parts: parts.sorted { $0.number < $1.number })
            } catch  where error.code == .notFound {
                // No such upload: completed by an attempt whose reply was lost, or never there. The object decides.
            }
        }
        guard let info = try await head(key: target.key) else {
            throw StorageError(.notFound, "upload of \(target.key) reported done, but the bucket \(configuration.bucket) has no such object")
        }
        guard info.bytes == target.size else {
            try? await deleteObject(key: target.key)
            throw StorageError(.integrity, "\(target.key) holds \(info.bytes) bytes, but \(target.size) were announced; the object was removed")
        }
        return info
    }

    public func abortUpload(_ target: UploadTarget) async throws(StorageError) {
        if case .multipart(let upload) = target {
            try await abortMultipartUpload(key: upload.key, uploadID: upload.uploadID)
        }
        // A single PUT either stored the whole object or nothing; there is nothing partial to discard.
    }

    // MARK: Signing and uploading in one process

    /// Uploads one output end to end, for a worker that holds the bucket's credentials itself (RunPod serverless
    /// with `BUCKET_*` variables or a job's `s3Config`): target, streamed upload, completion, download link.
    /// A multipart upload that fails is aborted, so no parts linger and no partial object appears.
    public func store<Source: AsyncSequence<ByteBuffer, any Error> & Sendable>(
        key: String,
        size: Int64,
        contentType: String,
        uploader: OutputUploader,
        open: @escaping @Sendable () async throws -> Source
    ) async throws(StorageError) -> StoredOutput {
        let target = try await uploadTarget(key: key, size: size, contentType: contentType, completeURL: nil)
        do {
            let result = try await uploader.upload(target, open: open)
            _ = try await completeUpload(target, parts: result.parts)
            return StoredOutput(key: key, bytes: result.bytes, sha256: result.sha256, url: downloadURL(key: key))
        } catch {
            try? await abortUpload(target)
            throw error
        }
    }

    // MARK: Transport

    static func completeBody(_ parts: [CompletedPart]) -> String {
        "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            + parts.map { "<Part><PartNumber>\($0.number)</PartNumber><ETag>\(S3XML.escape($0.etag))</ETag></Part>" }.joined()
            + "</CompleteMultipartUpload>"
    }

    /// The headers a signed request carries: its own, then the signature's (used by `send` and the fixture tests).
    func signedHeaders(for request: SigV4Request, body: String) -> [(name: String, value: String)] {
        let payloadHash = body.isEmpty ? SigV4.emptyPayloadSHA256 : SHA256.hash(data: Data(body.utf8)).hexString
        return request.headers + signer.sign(request, payloadSHA256: payloadHash, date: now())
    }

    /// Sends a signed request (signed afresh on each attempt, so a retry never carries a stale date), retrying
    /// what `StorageError.isRetryable` allows with backoff.
    private func send(
        _ request: SigV4Request,
        body: String = "",
        operation: String,
        key: String
    ) async throws(StorageError) -> (headers: HTTPHeaders, body: String) {
        var attempt = 0
        while true {
            do {
                return try await sendOnce(request, body: body, operation: operation, key: key)
            } catch {
                attempt += 1
                guard error.isRetryable, attempt < retry.attempts, !Task.isCancelled else { throw error }
                let delay = retry.backoff.delay(attempt: attempt - 1)
                logger.warning("\(operation) failed, retrying", metadata: ["error": "\(error)", "delay_ms": "\(delay.milliseconds)"])
                try? await Task.sleep(for: delay)
            }
        }
    }

    private func sendOnce(
        _ request: SigV4Request,
        body: String,
        operation: String,
        key: String
    ) async throws(StorageError) -> (headers: HTTPHeaders, body: String) {
        var http = HTTPClientRequest(url: request.url)
        http.method = HTTPMethod(rawValue: request.method)
        for (name, value) in signedHeaders(for: request, body: body) { http.headers.add(name: name, value: value) }
        if !body.isEmpty { http.body = .bytes(ByteBuffer(string: body)) }
        let target = key.isEmpty ? configuration.bucket : "\(key) in \(configuration.bucket)"
        let response: HTTPClientResponse
        let text: String
        do {
            response = try await httpClient.execute(http, timeout: timeout, logger: logger)
            text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        } catch {
            throw StorageError(.unavailable, "\(operation) of \(target) at \(configuration.endpoint) failed: \(error)")
        }
        guard (200..<300).contains(response.status.code) else {
            throw Self.failure(status: response.status, body: text, operation: operation, key: key, bucket: configuration.bucket)
        }
        return (response.headers, text)
    }

    static func failure(status: HTTPResponseStatus, body: String, operation: String, key: String, bucket: String) -> StorageError {
        let target = key.isEmpty ? bucket : "\(key) in \(bucket)"
        return failure(status: status, body: body, what: "\(operation) of \(target)")
    }

    /// An S3 error reply as a `StorageError`: "<what> failed with HTTP <status> (<S3 code>: <S3 message>)".
    static func failure(status: HTTPResponseStatus, body: String, what: String) -> StorageError {
        let code = S3XML.firstText(of: "Code", in: body)
        let message = S3XML.firstText(of: "Message", in: body)
        let detail = [code, message].compactMap { $0 }.joined(separator: ": ")
        let text = "\(what) failed with HTTP \(status.code)" + (detail.isEmpty ? "" : " (\(detail))")
        switch status.code {
        case 404 where code != "NoSuchBucket": return StorageError(.notFound, text)
        case 408, 429, 500...: return StorageError(.unavailable, text)
        default:
            // Throttling sometimes arrives as 503 and sometimes as 400 SlowDown.
            return StorageError(code == "SlowDown" || code == "RequestTimeout" ? .unavailable : .rejected, text)
        }
    }
}
