import ArgumentParser
import ControlPlane
import Foundation
import SwarmCore

/// Where the client commands send requests: `SWARM_URL`, `SWARM_API_KEY` and `--endpoint`.
struct ClientOptions: ParsableArguments {
    @Option(help: "Endpoint to use.") var endpoint = "swarmui"

    func client() -> ControlPlaneClient {
        let environment = ProcessInfo.processInfo.environment
        let key = environment["SWARM_API_KEY"].flatMap { $0.isEmpty ? nil : Secret($0) }
        return ControlPlaneClient(baseURL: environment["SWARM_URL"] ?? "http://127.0.0.1:8288", endpoint: endpoint, apiKey: key)
    }
}

struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Submit one job, or many from a JSON-lines or CSV file.",
        discussion: """
            One job: --prompt TEXT, --input JSON (the input object, or a whole submit body with "input"), or --file PATH \
            (the same, from a file); --image FILE uploads a local picture to the control plane and passes its link as \
            init_image. Many: --batch FILE, with one JSON object per line, or a CSV whose header names the input \
            fields (an "image" field names a local picture, uploaded as that job's init_image, relative to the file); \
            or --images DIR with --prompt, one job per picture in the folder. Jobs go in chunks to /run-batch with a \
            progress bar on stderr. Prints the job ids.
            """
    )

    @OptionGroup var target: ClientOptions
    @Option(help: "Prompt text; the job input becomes {\"prompt\": TEXT}.") var prompt: String?
    @Option(help: "The job input as JSON.") var input: String?
    @Option(help: "A JSON file with the job input or submit body.") var file: String?
    @Option(help: "A file of jobs: JSON lines, or CSV (*.csv).") var batch: String?
    @Option(help: "A local picture (PNG, JPEG, WebP, GIF) to upload and pass as init_image.") var image: String?
    @Option(help: "A folder of pictures: one job per picture with --prompt, each uploaded as its init_image.") var images: String?
    @Option(help: "Jobs per run-batch request.") var chunkSize = 1_000
    @Option(help: "Model to generate with (input.model), for jobs that do not name one.") var model: String?
    @Option(help: "Worker preset (input.preset), for jobs that do not name one.") var preset: String?
    @Option(help: "Webhook URL called when each job ends.") var webhook: String?
    @Flag(help: "Follow the job to its end and print the result (one job only).") var wait = false

    func validate() throws {
        if images != nil {
            guard prompt != nil, input == nil, file == nil, batch == nil, image == nil else {
                throw ValidationError("--images DIR takes --prompt (one job per picture) and none of --input, --file, --batch or --image")
            }
        } else {
            let sources = [prompt != nil, input != nil, file != nil, batch != nil].filter { $0 }.count
            guard sources == 1 else { throw ValidationError("give exactly one of --prompt, --input, --file or --batch") }
        }
        if image != nil, batch != nil {
            throw ValidationError("--image is for one job; in a --batch file, name each job's picture in an \"image\" field")
        }
        guard (1...10_000).contains(chunkSize) else { throw ValidationError("--chunk-size must be 1 to 10000") }
        if wait, batch != nil || images != nil { throw ValidationError("--wait follows one job; use 'swarmctl jobs' to follow a batch") }
    }

    func run() async throws {
        let client = target.client()
        if let batch {
            try await submitBatch(path: batch, client: client)
            return
        }
        if let images, let prompt {
            try await submitFolder(images, prompt: prompt, client: client)
            return
        }
        var body = BatchFile.submitBody(try singleInput())
        if let image { body = Self.settingInput(body, "init_image", to: .string(try await Self.upload(image, client: client))) }
        let answer = try await client.submit(completed(body))
        guard let id = answer["id"]?.stringValue else { throw ValidationError("the server answered without an id: \(answer.jsonString())") }
        guard wait else {
            print(id)
            return
        }
        printError("submitted \(id), waiting for it to finish")
        let result = try await follow(id: id, client: client)
        print(result.jsonString())
        if result["status"]?.stringValue != "COMPLETED" { throw ExitCode.failure }
    }

    /// A submit body with the command line's defaults filled in: `--model` and `--preset` where the input names
    /// none, and `--webhook`.
    private func completed(_ body: JSONValue) -> JSONValue {
        guard case .object(var fields) = body else { return body }
        if case .object(var input)? = fields["input"] {
            if let model, input["model"] == nil { input["model"] = .string(model) }
            if let preset, input["preset"] == nil { input["preset"] = .string(preset) }
            fields["input"] = .object(input)
        }
        if let webhook { fields["webhook"] = .string(webhook) }
        return .object(fields)
    }

    private func singleInput() throws -> JSONValue {
        if let prompt { return ["prompt": .string(prompt)] }
        let text: String
        if let input {
            text = input
        } else if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("--file: cannot read \(file)") }
            text = String(decoding: data, as: UTF8.self)
        } else {
            throw ValidationError("give --prompt, --input or --file")
        }
        guard let value = JSONValue.parse(Data(text.utf8)), case .object = value else {
            throw ValidationError("the job input must be a JSON object, e.g. {\"prompt\": \"a cat\"}")
        }
        return value
    }

    /// Uploads a local picture to the control plane; returns the link a job names as `init_image`.
    private static func upload(_ path: String, client: ControlPlaneClient) async throws -> String {
        let answer = try await client.uploadInput(path: path)
        guard let url = answer["url"]?.stringValue else { throw ValidationError("the server stored \(path) but answered without a url") }
        return url
    }

    /// `body` with `input[field] = value`.
    private static func settingInput(_ body: JSONValue, _ field: String, to value: JSONValue?) -> JSONValue {
        guard case .object(var fields) = body, case .object(var input)? = fields["input"] else { return body }
        input[field] = value
        fields["input"] = .object(input)
        return .object(fields)
    }

    /// One job per picture in `folder` (by name order), each uploaded first.
    private func submitFolder(_ folder: String, prompt: String, client: ControlPlaneClient) async throws {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
            throw ValidationError("--images: cannot read the folder \(folder)")
        }
        let pictures = names.filter { ControlPlaneClient.imageTypes[($0 as NSString).pathExtension.lowercased()] != nil }.sorted()
        guard !pictures.isEmpty else { throw ValidationError("--images: \(folder) holds no .png, .jpg, .webp or .gif pictures") }
        let jobs = pictures.map { name -> JSONValue in
            ["input": ["prompt": .string(prompt), "image": .string((folder as NSString).appendingPathComponent(name))]]
        }
        try await submitJobs(try await uploadingImages(jobs, relativeTo: nil, client: client).map(completed), client: client)
    }

    /// Jobs whose input names a local picture in `image` get it uploaded (each file once) and linked as
    /// `init_image`; every upload happens before any job is submitted, so a missing file submits nothing.
    private func uploadingImages(_ jobs: [JSONValue], relativeTo folder: String?, client: ControlPlaneClient) async throws -> [JSONValue] {
        let paths = jobs.map { job -> String? in
            guard let path = job["input"]?["image"]?.stringValue else { return nil }
            guard let folder, !path.hasPrefix("/") else { return path }
            return (folder as NSString).appendingPathComponent(path)
        }
        let distinct = Array(Set(paths.compactMap { $0 })).sorted()
        guard !distinct.isEmpty else { return jobs }
        var links: [String: String] = [:]
        let progress = ProgressBar(total: distinct.count, label: "pictures uploaded")
        for path in distinct {
            do {
                links[path] = try await Self.upload(path, client: client)
            } catch {
                progress.finish()
                printError("nothing submitted: uploading \(path) failed: \(error)")
                throw ExitCode.failure
            }
            progress.update(links.count)
        }
        progress.finish()
        return zip(jobs, paths).map { job, path in
            guard let path, let link = links[path] else { return job }
            return Self.settingInput(Self.settingInput(job, "image", to: nil), "init_image", to: .string(link))
        }
    }

    private func submitBatch(path: String, client: ControlPlaneClient) async throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("--batch: cannot read \(path)") }
        let parsed = try BatchFile.jobs(from: String(decoding: data, as: UTF8.self), format: .init(path: path))
        guard !parsed.isEmpty else { throw ValidationError("--batch: \(path) holds no jobs") }
        let folder = (path as NSString).deletingLastPathComponent
        try await submitJobs(
            try await uploadingImages(parsed, relativeTo: folder.isEmpty ? "." : folder, client: client).map(completed),
            client: client
        )
    }

    private func submitJobs(_ jobs: [JSONValue], client: ControlPlaneClient) async throws {
        let progress = ProgressBar(total: jobs.count, label: "submitted")
        var submitted = 0
        for start in stride(from: 0, to: jobs.count, by: chunkSize) {
            let chunk = Array(jobs[start..<min(start + chunkSize, jobs.count)])
            let ids: [String]
            do {
                ids = try await client.submitBatch(chunk)
            } catch {
                progress.finish()
                // Chunks are atomic: everything before this one is stored, nothing of it is.
                printError("stopped after \(submitted) of \(jobs.count) jobs (lines from \(start + 1) not submitted): \(error)")
                throw ExitCode.failure
            }
            for id in ids { print(id) }
            submitted += ids.count
            progress.update(submitted)
        }
        progress.finish()
    }
}

/// Polls a job to its end, printing status changes on stderr; returns the final status object.
func follow(id: String, client: ControlPlaneClient) async throws -> JSONValue {
    var last = ""
    while true {
        let status = try await client.status(id: id, waitMs: 30_000)
        let name = status["status"]?.stringValue ?? "?"
        if name != last {
            printError("\(id): \(name)")
            last = name
        }
        if ["COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"].contains(name) { return status }
    }
}

/// A one-line progress bar on stderr, redrawn in place.
final class ProgressBar {
    let total: Int
    let label: String
    private let width = 30

    init(total: Int, label: String) {
        self.total = total
        self.label = label
        update(0)
    }

    func update(_ done: Int) {
        let filled = total == 0 ? width : width * done / total
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data("\r[\(bar)] \(done)/\(total) \(label)".utf8))
    }

    func finish() { FileHandle.standardError.write(Data("\n".utf8)) }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a job's status and result.")
    @OptionGroup var target: ClientOptions
    @Argument(help: "The job id.") var id: String
    @Flag(help: "Wait until the job ends.") var wait = false

    func run() async throws {
        let client = target.client()
        let status = wait ? try await follow(id: id, client: client) : try await client.status(id: id)
        print(status.jsonString())
    }
}

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List jobs, newest first.")
    @OptionGroup var target: ClientOptions
    @Option(help: "Only jobs in this status (IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED, TIMED_OUT).") var status: String?
    @Option(help: "How many jobs to list.") var limit = 50

    func run() async throws {
        let page = try await target.client().jobs(status: status, limit: limit, cursor: nil)
        for job in page["jobs"]?.arrayValue ?? [] {
            let fields = ["id", "status", "createdAt", "workerId", "error"].compactMap { key in job[key]?.stringValue.map { "\(key)=\($0)" } }
            print(fields.joined(separator: "  "))
        }
        if let cursor = page["nextCursor"]?.stringValue { printError("more jobs exist (next cursor: \(cursor))") }
    }
}

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a queued or running job.")
    @OptionGroup var target: ClientOptions
    @Argument(help: "The job id.") var id: String

    func run() async throws {
        print(try await target.client().cancel(id: id).jsonString())
    }
}
