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
    private var store: any JobStore { core.store }

    /// A request for a target announces a name, size and content type: a small JSON body.
    private static let requestLimit = 64 << 10
    /// A completion lists a target (up to 10,000 part URLs) and as many ETags.
    private static let completionLimit = 16 << 20

    func registerUploads(on group: RouterGroup<ControlPlaneRequestContext>) {
        group.post("job-upload/:worker/:job") { request, context in try await target(request, context) }
        group.post("job-upload/:worker/:job/complete") { request, context in try await complete(request, context) }
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
        let upload: JobUpload.UploadRequest = try await request.decodeJSON(limit: Self.requestLimit, example: #"{"name": "image.png", "size": 1234, "content_type": "image/png"}"#)
        let base = try baseURL(request)
        let completeURL = "\(outputs.publicURL ?? base)/v2/\(endpoint)/job-upload/\(worker)/\(id)/complete"
        let target: UploadTarget
        do {
            target = try await JobUpload.target(
                for: upload, endpoint: endpoint, jobID: id, storage: outputs.storage(httpClient: httpClient, baseURL: base), completeURL: completeURL)
        } catch {
            throw APIError(error)
        }
        return try .json(encoding: target)
    }

    private func complete(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let (endpoint, _, id) = try await heldJob(context)
        var request = request
        let completion: JobUpload.UploadCompletion = try await request.decodeJSON(limit: Self.completionLimit, example: #"{"target": {...}, "parts": []}"#)
        let storage = outputs.storage(httpClient: httpClient, baseURL: try baseURL(request))
        let stored: (object: ObjectInfo, url: String)
        do {
            stored = try await JobUpload.complete(completion, endpoint: endpoint, jobID: id, storage: storage)
        } catch {
            throw APIError(error)
        }
        return .json(["key": .string(completion.target.key), "bytes": .int(Int(stored.object.bytes)), "url": .string(stored.url)])
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
            throw APIError(.conflict, "job \(id) is \(job.status.rawValue) and not held by worker \(worker); only the worker running a job may upload its outputs")
        }
        return (endpoint, worker, id)
    }

    /// `http://<Host>` of the request; `SWARM_PUBLIC_URL` overrides it where links are made.
    private func baseURL(_ request: Request) throws -> String {
        if let publicURL = outputs.publicURL { return publicURL }
        guard let authority = request.head.authority, !authority.isEmpty else {
            throw APIError.badRequest(field: "Host", "the request names no host to build links with; set SWARM_PUBLIC_URL on the control plane")
        }
        return "http://\(authority)"
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
        guard path.hasPrefix(LocalStorage.routePrefix), let key = String(path.dropFirst(LocalStorage.routePrefix.count)).removingPercentEncoding else {
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
