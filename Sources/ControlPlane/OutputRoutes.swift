import AsyncHTTPClient
import Foundation
import Hummingbird
import JobProtocol
import JobStore
import NIOCore
import Storage
import SwarmCore

/// Output uploads: the worker routes that hand out upload targets and complete them (issue 4), and, for local
/// storage, `PUT`/`GET /files/{key...}` authorised by the signed link alone (workers and clients hold no key for them).
struct OutputRoutes {
    let core: ControlPlaneCore
    let outputs: OutputStorageSettings
    let httpClient: HTTPClient
    private var store: any ControlPlaneStore { core.store }

    /// A request for a target announces a name, size and content type: a small JSON body.
    private static let requestLimit = 64 << 10
    /// A completion lists a target (up to 10,000 part URLs) and as many ETags.
    private static let completionLimit = 16 << 20

    func registerUploads(on group: RouterGroup<ControlPlaneRequestContext>) {
        group.post("job-upload/:worker/:job") { request, context in try await target(request, context) }
        group.post("job-upload/:worker/:job/complete") { request, context in try await complete(request, context) }
        group.post("job-upload/:worker/:job/abort") { request, context in try await abort(request, context) }
    }

    /// Client routes: `POST /v2/{endpoint}/inputs` with an image as the body (`swarmctl submit --image`).
    func registerInputs(on group: RouterGroup<ControlPlaneRequestContext>) {
        group.post("inputs") { request, context in try await input(request, context) }
    }

    func registerFiles(on router: Router<ControlPlaneRequestContext>) {
        guard outputs.isLocal else { return }
        router.put("files/**") { request, context in try await putFile(request, context) }
        router.get("files/**") { request, context in try await getFile(request, context) }
    }

    // MARK: Worker routes

    private func target(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let (endpoint, worker, id) = try await heldJob(context)
        var request = request
        let upload: JobUpload.UploadRequest = try await request.decodeJSON(
            limit: Self.requestLimit,
            example: #"{"name": "image.png", "size": 1234, "content_type": "image/png"}"#
        )
        let base = try baseURL(request)
        let completeURL = "\(outputs.publicURL ?? base)/v2/\(endpoint)/job-upload/\(worker)/\(id)/complete"
        let target: UploadTarget
        do {
            target = try await JobUpload.target(
                for: upload,
                endpoint: endpoint,
                jobID: id,
                storage: outputs.storage(httpClient: httpClient, baseURL: base),
                completeURL: completeURL
            )
        } catch {
            throw APIError(error)
        }
        return try .json(encoding: target)
    }

    private func complete(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let (endpoint, _, id) = try await heldJob(context)
        var request = request
        let completion: JobUpload.UploadCompletion = try await request.decodeJSON(
            limit: Self.completionLimit,
            example: #"{"target": {...}, "parts": []}"#
        )
        let storage = outputs.storage(httpClient: httpClient, baseURL: try baseURL(request))
        let stored: (object: ObjectInfo, url: String)
        do {
            stored = try await JobUpload.complete(completion, endpoint: endpoint, jobID: id, storage: storage)
        } catch {
            throw APIError(error)
        }
        return .json(["key": .string(completion.target.key), "bytes": .int(Int(stored.object.bytes)), "url": .string(stored.url)])
    }

    /// A worker gives up an upload for good: the multipart upload is aborted, so its parts leave the bucket.
    private func abort(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let (endpoint, _, id) = try await heldJob(context)
        var request = request
        let abort: JobUpload.UploadAbort = try await request.decodeJSON(limit: Self.completionLimit, example: #"{"target": {...}}"#)
        let storage = outputs.storage(httpClient: httpClient, baseURL: try baseURL(request))
        do {
            try await JobUpload.abort(abort, endpoint: endpoint, jobID: id, storage: storage)
        } catch {
            throw APIError(error)
        }
        return .json(["key": .string(abort.target.key), "aborted": true])
    }

    // MARK: Client inputs

    /// The worker fetches an `init_image` up to 32 MiB (JobRunner); a larger upload could never be used.
    static let inputLimit: Int64 = 32 << 20
    static let inputTypes = ["image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"]
    /// Input links live as long as SigV4 allows (7 days): a job may wait in the queue long before a worker fetches it.
    static let inputLinkExpires = StorageConfiguration.maximumPresignExpires

    /// Stores an image a client uploads for a job's `init_image`, streamed to storage (never held whole), and answers
    /// `{"url", "key", "bytes", "sha256", "content_type"}`; the url is what the job's input should name.
    private func input(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let endpoint = try context.endpoint(in: core.configuration)
        let type = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        guard let ext = Self.inputTypes[type] else {
            throw APIError(
                .unsupportedMediaType,
                "Content-Type \(type.isEmpty ? "is missing" : "\(type) is not accepted"); send the image as image/png, image/jpeg, image/webp or image/gif",
                field: "Content-Type"
            )
        }
        guard let length = request.headers[.contentLength].flatMap({ Int64($0) }) else {
            throw APIError(
                .lengthRequired,
                "Content-Length is required: the image is streamed to storage with its size announced",
                field: "Content-Length"
            )
        }
        guard length <= Self.inputLimit else {
            throw APIError(
                .contentTooLarge,
                "the image is \(formatBytes(length)), above the \(formatBytes(Self.inputLimit)) a worker fetches for init_image",
                field: "body"
            )
        }
        guard length > 0 else { throw APIError.badRequest(field: "body", "the image is empty") }
        let key = ObjectKey.input(endpoint: endpoint, fileName: randomUUIDString() + "." + ext)
        let storage = outputs.storage(httpClient: httpClient, baseURL: try baseURL(request))
        let stored: (bytes: Int64, sha256: String, url: String)
        do {
            stored = try await Self.storeInput(request.body, key: key, size: length, contentType: type, storage: storage, httpClient: httpClient)
        } catch {
            throw APIError(error)
        }
        return .json([
            "url": .string(stored.url), "key": .string(key), "bytes": .int(Int(stored.bytes)), "sha256": .string(stored.sha256),
            "content_type": .string(type),
        ])
    }

    /// Local storage writes the body to disk itself; S3 gets it streamed to a presigned PUT, once (a request body
    /// cannot be read again, so there is no retry: the client sends it again).
    static func storeInput(
        _ body: RequestBody,
        key: String,
        size: Int64,
        contentType: String,
        storage: any OutputStorage,
        httpClient: HTTPClient
    ) async throws(StorageError) -> (bytes: Int64, sha256: String, url: String) {
        if let local = storage as? LocalStorage {
            let (bytes, sha256) = try await local.write(key: key, expectedSize: size, body: body)
            return (bytes, sha256, local.signedURL(method: "GET", key: key, expires: inputLinkExpires))
        }
        guard let s3 = storage as? S3Storage else { throw StorageError(.configuration, "this storage takes no input uploads") }
        let target = UploadTarget.put(
            SingleUpload(key: key, size: size, url: s3.presignPut(key: key, contentType: contentType), headers: ["content-type": contentType])
        )
        let result = try await OutputUploader(httpClient: httpClient, maxAttempts: 1).upload(target) { body }
        _ = try await s3.completeUpload(target, parts: [])
        let url = s3.configuration.publicBaseURL != nil ? s3.downloadURL(key: key) : s3.presignGet(key: key, expires: inputLinkExpires)
        return (result.bytes, result.sha256, url)
    }

    /// The job named in the path, which must be running on the worker named in the path: a worker may only store
    /// outputs of the job it holds.
    private func heldJob(_ context: ControlPlaneRequestContext) async throws -> (endpoint: String, worker: String, job: String) {
        let endpoint = try context.endpoint(in: core.configuration)
        let worker = try context.pathID("worker")
        let id = try context.pathID("job")
        guard let job = try await store.job(id: id), job.endpoint == endpoint else {
            throw APIError.notFound("no job '\(id)' on endpoint \(endpoint)")
        }
        guard job.status == .inProgress, job.workerID == worker else {
            throw APIError(
                .conflict,
                "job \(id) is \(job.status.rawValue) and not held by worker \(worker); only the worker running a job may upload its outputs"
            )
        }
        return (endpoint, worker, id)
    }

    /// `http://<Host>` of the request; `SWARM_PUBLIC_URL` overrides it where links are made.
    private func baseURL(_ request: Request) throws -> String {
        if let publicURL = outputs.publicURL { return publicURL }
        guard let authority = request.head.authority, !authority.isEmpty else {
            throw APIError.badRequest(field: "Host", "the request names no host to build links with; set SWARM_PUBLIC_URL on the control plane")
        }
        return "\(core.configuration.scheme)://\(authority)"
    }

    // MARK: Local files

    private func putFile(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let (storage, key) = try signedFile(request, method: "PUT")
        let expected = request.headers[.contentLength].flatMap { Int64($0) }
        do {
            let (bytes, sha256) = try await storage.write(key: key, expectedSize: expected, body: request.body)
            return .json(["key": .string(key), "bytes": .int(Int(bytes)), "sha256": .string(sha256)])
        } catch {
            throw APIError(error)
        }
    }

    private func getFile(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let (storage, key) = try signedFile(request, method: "GET")
        let path: String
        do {
            path = try storage.fileURL(key: key).path
        } catch {
            throw APIError(error)
        }
        guard FileManager.default.fileExists(atPath: path) else { throw APIError.notFound("no file \(key)") }
        let body = try await FileIO().loadFile(path: path, context: context)
        let fileExtension = (key as NSString).pathExtension
        let type = MediaType.getMediaType(forExtension: fileExtension)?.description ?? "application/octet-stream"
        return Response(status: .ok, headers: [.contentType: type], body: body)
    }

    /// The local store and the decoded key after `/files/`, once the link's signature for `method` checks out.
    private func signedFile(_ request: Request, method: String) throws -> (LocalStorage, String) {
        guard let storage = outputs.storage(httpClient: httpClient, baseURL: "") as? LocalStorage else {
            throw APIError.notFound("this server keeps outputs in S3; download them from the links in the job's output")
        }
        let path = request.uri.path
        guard path.hasPrefix(LocalStorage.routePrefix), let key = String(path.dropFirst(LocalStorage.routePrefix.count)).removingPercentEncoding
        else {
            throw APIError.badRequest(field: "path", "\(path) is not a file link")
        }
        let query = request.uri.queryParameters
        do {
            try storage.verify(method: method, key: key, expires: query.get("expires"), signature: query.get("signature"))
        } catch {
            throw APIError(.forbidden, error.message)
        }
        return (storage, key)
    }
}

extension APIError {
    /// A storage failure as the caller should see it: its fault (4xx) or the storage's (5xx, worth retrying).
    init(_ error: StorageError) {
        let status: HTTPResponse.Status =
            switch error.code {
            case .rejected: .badRequest
            case .notFound: .notFound
            case .integrity: .unprocessableContent
            case .unavailable: .serviceUnavailable
            case .configuration, .io: .internalServerError
            }
        self.init(status, error.message)
    }
}

extension Request {
    /// The body decoded as `T`, with a 400 that shows what was expected.
    mutating func decodeJSON<T: Decodable>(limit: Int, example: String) async throws -> T {
        let buffer: ByteBuffer
        do {
            buffer = try await collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError(.contentTooLarge, "body: larger than the \(formatBytes(Int64(limit))) limit of this route", field: "body")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch {
            throw APIError.badRequest(field: "body", "expected JSON like \(example) (\(error))")
        }
    }
}
