import Foundation
import Hummingbird
import JobProtocol
import JobStore
import NIOCore
import SwarmCore

/// What `/events` compares from one look at the store to the next: each change becomes one server-sent event.
struct WebSnapshot: Sendable, Equatable {
    var jobs: [String: JSONValue] = [:]
    var counts: JSONValue = .null
    var workers: [String: JSONValue] = [:]

    /// `event: <name>` lines for what differs from `previous` (everything on the first look).
    func events(since previous: WebSnapshot?) -> [String] {
        var lines: [String] = []
        for (id, job) in jobs.sorted(by: { $0.key < $1.key }) where previous?.jobs[id] != job {
            lines.append(Self.event("job", job))
        }
        if previous?.counts != counts { lines.append(Self.event("counts", counts)) }
        for (id, worker) in workers.sorted(by: { $0.key < $1.key }) where previous?.workers[id] != worker {
            lines.append(Self.event("worker", worker))
        }
        return lines
    }

    static func event(_ name: String, _ data: JSONValue) -> String { "event: \(name)\ndata: \(data.jsonString())\n\n" }

    static func job(_ job: JobRecord, watched: Bool) -> JSONValue {
        [
            "id": .string(job.id), "status": .string(job.status.rawValue), "final": .bool(job.status.isFinal), "watched": .bool(watched),
            "created": .string(WebFormat.time(job.createdAt)), "execution": .string(WebFormat.milliseconds(job.executionTimeMs)),
            "prompt": .string(WebViews.prompt(of: job)),
        ]
    }

    static func worker(_ worker: WorkerRecord) -> JSONValue {
        let download = WebViews.download(of: worker.report)
        return [
            "id": .string(worker.id), "stage": .string(worker.report?.stageName ?? "—"),
            "percent": download.map { .double($0.percent) } ?? .null,
            "done_bytes": download.map { .int(Int($0.doneBytes)) } ?? .null, "total_bytes": download.map { .int(Int($0.totalBytes)) } ?? .null,
        ]
    }
}

extension WebRoutes {
    /// How often the shared snapshot task looks at the store when nothing signals (`WebEventHub`), and for how long
    /// one connection lasts (EventSource reconnects).
    static let eventInterval: Duration = .milliseconds(500)
    static let eventLifetime: Duration = .seconds(600)

    /// Server-sent events for the page's script: `job` (the newest 100 of the endpoint, and the one a job page shows),
    /// `counts` (jobs by status) and `worker` (stage and download progress of every worker pinging). Every open stream
    /// of an endpoint reads the same snapshots (`WebEventHub`).
    func events(_ request: Request) async throws -> Response {
        guard let visitor = try await currentVisitor(request), visitor.setCookie == nil else {
            return html(WebViews.message(title: "Sign in", text: "sign in first", context: nil), status: .unauthorized)
        }
        let endpoint = self.endpoint(request)
        let watched = request.uri.queryParameters.get("job")
        let hub = eventHub
        let sessions = sessions
        let cookie = request.headers[values: .cookie]
        var headers = securityHeaders()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(
            status: .ok,
            headers: headers,
            body: ResponseBody { writer in
                try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
                var previous: WebSnapshot?
                let end = ContinuousClock.now + Self.eventLifetime
                var lastWrite = ContinuousClock.now
                for await snapshot in hub.subscribe(endpoint: endpoint, watching: watched) {
                    // A signed-out session stops receiving at once.
                    guard ContinuousClock.now < end, let value = WebSessions.cookie(WebSessions.cookieName, in: cookie),
                        sessions.session(cookieValue: value) != nil
                    else { break }
                    let lines = snapshot.events(since: previous)
                    if !lines.isEmpty {
                        try await writer.write(ByteBuffer(string: lines.joined()))
                        lastWrite = .now
                    } else if ContinuousClock.now - lastWrite > .seconds(15) {
                        // A comment keeps proxies from closing an idle stream and finds a closed connection.
                        try await writer.write(ByteBuffer(string: ": idle\n\n"))
                        lastWrite = .now
                    }
                    previous = snapshot
                }
                try await writer.finish(nil)
            }
        )
    }
}
