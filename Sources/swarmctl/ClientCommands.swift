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
            (the same, from a file). Many: --batch FILE, with one JSON object per line, or a CSV whose header names \
            the input fields; sent in chunks to /run-batch with a progress bar on stderr. Prints the job ids.
            """
    )

    @OptionGroup var target: ClientOptions
    @Option(help: "Prompt text; the job input becomes {\"prompt\": TEXT}.") var prompt: String?
    @Option(help: "The job input as JSON.") var input: String?
    @Option(help: "A JSON file with the job input or submit body.") var file: String?
    @Option(help: "A file of jobs: JSON lines, or CSV (*.csv).") var batch: String?
    @Option(help: "Jobs per run-batch request.") var chunkSize = 1_000
    @Option(help: "Model to generate with (input.model), for jobs that do not name one.") var model: String?
    @Option(help: "Worker preset (input.preset), for jobs that do not name one.") var preset: String?
    @Option(help: "Webhook URL called when each job ends.") var webhook: String?
    @Flag(help: "Follow the job to its end and print the result (one job only).") var wait = false

    func validate() throws {
        let sources = [prompt != nil, input != nil, file != nil, batch != nil].filter { $0 }.count
        guard sources == 1 else { throw ValidationError("give exactly one of --prompt, --input, --file or --batch") }
        guard (1...10_000).contains(chunkSize) else { throw ValidationError("--chunk-size must be 1 to 10000") }
        if wait, batch != nil { throw ValidationError("--wait follows one job; use 'swarmctl jobs' to follow a batch") }
    }

    func run() async throws {
        let client = target.client()
        if let batch {
            try await submitBatch(path: batch, client: client)
            return
        }
        let answer = try await client.submit(completed(BatchFile.submitBody(try singleInput())))
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

    private func submitBatch(path: String, client: ControlPlaneClient) async throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("--batch: cannot read \(path)") }
        let jobs = try BatchFile.jobs(from: String(decoding: data, as: UTF8.self), format: .init(path: path)).map(completed)
        guard !jobs.isEmpty else { throw ValidationError("--batch: \(path) holds no jobs") }
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
