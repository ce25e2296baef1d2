import Fleet
import Foundation
import HTTPTypes
import Hummingbird
import JobProtocol
import JobStore
import Logging
import NIOCore
import Storage
import SwarmCore
import VastAI

/// The operator's web page on `serve`: Overview, Jobs, Fleet and Costs at `/`, signed in with a client key.
///
/// Safe by default: a signed HttpOnly SameSite=Strict session cookie (`WebSessions`), a CSRF token and a same-origin
/// check on every POST, a Content-Security-Policy that allows scripts, styles and media from this server only, and
/// every user-supplied text escaped (`HTML`). Without client keys (serve then listens on loopback only) the page is
/// open, as the API is.
struct WebRoutes {
    let core: ControlPlaneCore
    let sessions: WebSessions
    /// Today's spend and the fal.ai comparison (`buildApplication` always passes one).
    let costs: any CostReporting
    /// Sends an instance's destroy for "replace"; nil when this serve runs no vast.ai fleet.
    let vast: VastAIClient?
    /// See `contentSecurityPolicy(outputs:)`.
    let csp: String
    /// The snapshots behind every open `/events` stream.
    let eventHub: WebEventHub
    private var store: any ControlPlaneStore { core.store }

    init(core: ControlPlaneCore, sessions: WebSessions, costs: any CostReporting, vast: VastAIClient?) {
        self.core = core
        self.sessions = sessions
        self.costs = costs
        self.vast = vast
        self.csp = Self.contentSecurityPolicy(outputs: core.configuration.outputs)
        self.eventHub = WebEventHub(
            store: core.store,
            work: core.work,
            lease: core.configuration.leaseTimeout.seconds,
            interval: Self.eventInterval,
            logger: core.logger
        )
    }

    func register(on router: Router<ControlPlaneRequestContext>) {
        let web = router.group()
        web.get("/") { request, _ in try await page(request) { visitor in try await overview(request, visitor) } }
        web.get("jobs") { request, _ in try await page(request) { visitor in try await jobs(request, visitor) } }
        web.get("jobs/:id") { request, context in try await page(request) { visitor in try await job(request, context, visitor) } }
        web.get("fleet") { request, _ in try await page(request) { visitor in try await fleet(request, visitor) } }
        web.get("fleet/confirm") { request, _ in try await page(request) { visitor in try confirm(request, visitor) } }
        web.post("fleet/action") { request, _ in try await change(request) { visitor, form in try await fleetAction(form, visitor) } }
        web.get("costs") { request, _ in try await page(request) { visitor in try await costsPage(request, visitor) } }
        web.get("events") { request, _ in try await events(request) }
        web.get("signin") { request, _ in try await signInPage(request) }
        web.post("signin") { request, _ in try await signIn(request) }
        web.post("signout") { request, _ in try await change(request) { visitor, _ in signOut(visitor) } }
        web.get("assets/app.css") { _, _ in asset(WebAssets.stylesheet, type: "text/css; charset=utf-8") }
        web.get("assets/app.js") { _, _ in asset(WebAssets.script, type: "text/javascript; charset=utf-8") }
    }

    // MARK: Access

    /// Who is asking: a signed-in session, or on an open server any browser (given an anonymous session).
    struct Visitor: Sendable {
        var session: WebSessions.Session
        var setCookie: String?
        var signedIn: Bool
    }

    /// nil: the server has client keys and the request carries no valid session.
    func currentVisitor(_ request: Request) async throws -> Visitor? {
        let session = sessions.session(request)
        if try await core.keys.isClosed(.client) {
            guard let session, let digest = session.keyDigest.flatMap(WebSessions.bytes(hex:)),
                try await core.keys.scope(ofKeyDigest: digest) == .client
            else { return nil }
            return Visitor(session: session, setCookie: nil, signedIn: true)
        }
        if let session { return Visitor(session: session, setCookie: nil, signedIn: session.keyDigest != nil) }
        let fresh = sessions.newSession(keyDigest: nil)
        return Visitor(session: fresh, setCookie: sessions.setCookie(fresh), signedIn: false)
    }

    func pageContext(_ request: Request, _ visitor: Visitor) -> WebViews.PageContext {
        WebViews.PageContext(
            csrf: sessions.csrfToken(for: visitor.session),
            signedIn: visitor.signedIn,
            endpoint: endpoint(request),
            endpoints: core.configuration.endpoints.sorted()
        )
    }

    func endpoint(_ request: Request) -> String {
        let asked = request.uri.queryParameters.get("endpoint") ?? ""
        return core.configuration.endpoints.contains(asked) ? asked : ControlPlaneConfiguration.defaultEndpoint
    }

    /// A GET page: the sign-in page for a stranger, an error page (HTML, not JSON) when reading fails.
    private func page(_ request: Request, _ render: (Visitor) async throws -> (HTML, HTTPResponse.Status)) async throws -> Response {
        guard let visitor = try await currentVisitor(request) else { return redirect("/signin") }
        do {
            let (body, status) = try await render(visitor)
            return html(body, status: status, cookie: visitor.setCookie)
        } catch let error as WebProblem {
            return html(
                WebViews.message(title: error.title, text: error.text, context: pageContext(request, visitor)),
                status: error.status,
                cookie: visitor.setCookie
            )
        } catch {
            core.logger.error("web page failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            let text = "reading the page's data failed: \(error)"
            return html(
                WebViews.message(title: "Error", text: text, context: pageContext(request, visitor)),
                status: .internalServerError,
                cookie: visitor.setCookie
            )
        }
    }

    /// A POST from one of the page's forms: same origin, the session's CSRF token, then `perform`.
    private func change(_ request: Request, _ perform: (Visitor, [String: String]) async throws -> Response) async throws -> Response {
        var request = request
        let form = try await Self.form(&request)
        guard let visitor = try await currentVisitor(request) else { return redirect("/signin") }
        guard Self.sameOrigin(request), sessions.checkCSRF(form["csrf"], for: visitor.session) else {
            let text = "this form's security token is missing or stale (or it came from another site); reload the page and try again"
            return html(WebViews.message(title: "Refused", text: text, context: nil), status: .forbidden)
        }
        do {
            return try await perform(visitor, form)
        } catch let error as WebProblem {
            return html(WebViews.message(title: error.title, text: error.text, context: pageContext(request, visitor)), status: error.status)
        }
    }

    private func signInPage(_ request: Request) async throws -> Response {
        let open = try await !core.keys.isClosed(.client)
        let existing = sessions.session(request)
        let session = existing ?? sessions.newSession(keyDigest: nil)
        return html(
            WebViews.signIn(csrf: sessions.csrfToken(for: session), error: nil, open: open),
            status: .ok,
            cookie: existing == nil ? sessions.setCookie(session) : nil
        )
    }

    private func signIn(_ request: Request) async throws -> Response {
        var request = request
        let form = try await Self.form(&request)
        let open = try await !core.keys.isClosed(.client)
        // Sign-in carries the token of the anonymous session the sign-in page set, so another site cannot sign a
        // browser in under its own key.
        guard let anonymous = sessions.session(request), Self.sameOrigin(request), sessions.checkCSRF(form["csrf"], for: anonymous) else {
            let session = sessions.newSession(keyDigest: nil)
            return html(
                WebViews.signIn(csrf: sessions.csrfToken(for: session), error: "The sign-in form was stale; try again.", open: open),
                status: .forbidden,
                cookie: sessions.setCookie(session)
            )
        }
        let key = (form["key"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        let digest = KeyRing.digest(key)
        guard !key.isEmpty, try await core.keys.scope(ofKeyDigest: digest) == .client else {
            core.logger.notice("web sign-in refused: key not recognised")
            return html(
                WebViews.signIn(
                    csrf: sessions.csrfToken(for: anonymous),
                    error: "That key is not a client key of this server (or it was revoked).",
                    open: open
                ),
                status: .unauthorized
            )
        }
        sessions.signOut(anonymous)
        let session = sessions.newSession(keyDigest: digest.hexString)
        return redirect("/", cookie: sessions.setCookie(session))
    }

    private func signOut(_ visitor: Visitor) -> Response {
        sessions.signOut(visitor.session)
        return redirect("/signin", cookie: sessions.clearCookie)
    }

    // MARK: Views

    private func overview(_ request: Request, _ visitor: Visitor) async throws -> (HTML, HTTPResponse.Status) {
        let endpoint = self.endpoint(request)
        let now = Date()
        let counts = try await store.counts(endpoint: endpoint)
        let horizon = now.addingTimeInterval(-core.configuration.leaseTimeout.seconds)
        let workers = try await store.workers(endpoint: nil).filter { $0.lastSeen >= horizon }
        let stages = Dictionary(grouping: workers) { $0.report?.stageName ?? "no stage reported" }
            .map { (stage: $0.key, count: $0.value.count) }.sorted { $0.stage < $1.stage }
        // Newest first: stop at the first page that reaches past the hour.
        var completed = 0
        var cursor: String?
        scan: for _ in 0..<5 {
            let page = try await store.listJobs(endpoint: endpoint, status: .completed, limit: 200, cursor: cursor)
            for job in page.jobs {
                if job.createdAt < now.addingTimeInterval(-86_400) { break scan }
                if let finished = job.finishedAt, finished >= now.addingTimeInterval(-3600) { completed += 1 }
            }
            guard let next = page.nextCursor else { break }
            cursor = next
        }
        var today: DayCost?
        var problem: String?
        do {
            let day = Self.utcCalendar.startOfDay(for: now)
            today = try await costs.costReport(endpoint: endpoint, from: day, to: day, group: .day, now: now).days.last
        } catch {
            problem = "\(error)"
        }
        let data = WebViews.Overview(
            counts: counts,
            workersByStage: stages,
            completedLastHour: completed,
            today: today,
            costProblem: problem
        )
        return (WebViews.overview(data, context: pageContext(request, visitor)), .ok)
    }

    private func jobs(_ request: Request, _ visitor: Visitor) async throws -> (HTML, HTTPResponse.Status) {
        let endpoint = self.endpoint(request)
        let query = request.uri.queryParameters
        var filter = WebViews.JobFilter(status: nil, provider: nil, since: 86_400)
        if let text = query.get("status"), !text.isEmpty {
            guard let status = JobStatus(rawValue: text.uppercased()) else {
                throw WebProblem(.badRequest, "Bad filter", "'\(text)' is not a job status")
            }
            filter.status = status
        }
        if let text = query.get("provider"), !text.isEmpty { filter.provider = text }
        if let text = query.get("since") { filter.since = text.isEmpty ? nil : Int(text).map { max(60, $0) } }
        let now = Date()
        let oldest = filter.since.map { now.addingTimeInterval(-TimeInterval($0)) }
        var providers: [String: String] = [:]
        var note: String?
        do {
            let from = Self.utcCalendar.startOfDay(for: oldest ?? now.addingTimeInterval(-core.configuration.retention.seconds))
            let report = try await costs.costReport(
                endpoint: endpoint,
                from: from,
                to: Self.utcCalendar.startOfDay(for: now),
                group: .job,
                now: now
            )
            for row in report.jobs { providers[row.jobID] = row.provider }
        } catch {
            note = "Providers not shown: costs not available: \(error)"
        }
        // Newest first, at most 100 shown and 1,000 read: a page of a large store stays quick.
        var shown: [JobRecord] = []
        var cursor: String?
        scan: for _ in 0..<5 {
            let page = try await store.listJobs(endpoint: endpoint, status: filter.status, limit: 200, cursor: cursor)
            for job in page.jobs {
                if let oldest, job.createdAt < oldest { break scan }
                if let provider = filter.provider, providers[job.id] != provider { continue }
                shown.append(job)
                if shown.count == 100 { break scan }
            }
            guard let next = page.nextCursor else { break }
            cursor = next
        }
        let html = WebViews.jobs(
            shown,
            providers: providers,
            filter: filter,
            note: note,
            context: pageContext(request, visitor)
        )
        return (html, .ok)
    }

    private func job(_ request: Request, _ context: ControlPlaneRequestContext, _ visitor: Visitor) async throws -> (HTML, HTTPResponse.Status) {
        let id = try context.parameters.require("id")
        guard let job = try await store.job(id: id) else {
            throw WebProblem(.notFound, "No such job", "no job '\(id)' (never submitted, or removed after the retention period)")
        }
        var cost: JobCost?
        var problem: String?
        do {
            let now = Date()
            let report = try await costs.costReport(
                endpoint: job.endpoint,
                from: Self.utcCalendar.startOfDay(for: job.createdAt),
                to: Self.utcCalendar.startOfDay(for: job.finishedAt ?? now),
                group: .job,
                now: now
            )
            cost = report.jobs.first { $0.jobID == job.id }
        } catch {
            problem = "costs not available: \(error)"
        }
        var log: [String] = []
        if let worker = job.workerID {
            log = try await store.workers(endpoint: job.endpoint).first { $0.id == worker }?.report?.logTail ?? []
        }
        let detail = WebViews.JobDetail(job: job, cost: cost, costProblem: problem, workerLog: log)
        return (WebViews.job(detail, context: pageContext(request, visitor)), .ok)
    }

    private func fleet(_ request: Request, _ visitor: Visitor) async throws -> (HTML, HTTPResponse.Status) {
        let now = Date()
        var data = WebViews.FleetView(
            instances: [],
            workers: [],
            desiredSize: nil,
            creationHold: nil,
            spentToday: nil,
            fleetRunning: vast != nil,
            notice: request.uri.queryParameters.get("done")
        )
        let fleet = DatabaseFleetStore(store: store)
        let listed = await vastListing()
        data.instances = try await fleet.records().map { FleetInstanceStatus(record: $0, vast: listed?[$0.id], vastAsked: listed != nil) }
        data.desiredSize = try await fleet.desiredSize()
        data.creationHold = try await fleet.creationHold()
        data.spentToday = try await fleet.spentToday(now: now)
        let horizon = now.addingTimeInterval(-core.configuration.leaseTimeout.seconds)
        data.workers = try await store.workers(endpoint: nil).filter { $0.lastSeen >= horizon }.sorted { $0.id < $1.id }
        return (WebViews.fleet(data, now: now, context: pageContext(request, visitor)), .ok)
    }

    /// vast.ai's view of the instances (GPU, status), when this serve runs the fleet; nil when vast does not answer
    /// within 3 s, so that a slow vast.ai never holds the page.
    private func vastListing() async -> [Int: Instance]? {
        guard let vast else { return nil }
        return await withTaskGroup(of: [Int: Instance]?.self) { group in
            group.addTask { try? Dictionary(await vast.instances().map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first }) }
            group.addTask {
                try? await Task.sleep(for: .seconds(3))
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    private func confirm(_ request: Request, _ visitor: Visitor) throws -> (HTML, HTTPResponse.Status) {
        let query = request.uri.queryParameters
        let (action, count, id) = try Self.fleetRequest(action: query.get("action"), count: query.get("count"), id: query.get("id"))
        return (WebViews.confirm(action, count: count, id: id, context: pageContext(request, visitor)), .ok)
    }

    /// Up and down do what `swarmctl instance up|down` do to the wanted size (a running serve follows within a round);
    /// replace destroys the instance as the fleet's own replace does, and serve rents another in its place.
    private func fleetAction(_ form: [String: String], _ visitor: Visitor) async throws -> Response {
        let (action, count, id) = try Self.fleetRequest(action: form["action"], count: form["count"], id: form["id"])
        let fleet = DatabaseFleetStore(store: store)
        let done: String
        switch action {
        case .up:
            try await fleet.setDesiredSize(count)
            try await fleet.setCreationHold(nil)
            done = count.map { "Fleet size set to \($0)." } ?? "Fleet size handed back to serve's --fleet-size."
        case .down:
            try await fleet.setDesiredSize(0)
            done = "Fleet size set to 0: serve destroys the instances within a round."
        case .replace:
            guard let vast else {
                throw WebProblem(.conflict, "No fleet", "this serve runs no vast.ai fleet (VAST_API_KEY unset): nothing can replace the instance")
            }
            guard let id, var member = try await fleet.members().first(where: { $0.id == id }) else {
                throw WebProblem(.notFound, "No such instance", "no instance \(id.map(String.init) ?? "") in the fleet")
            }
            do {
                try await vast.destroyInstance(id: id)
            } catch {
                throw WebProblem(.badGateway, "vast.ai refused", "vast.ai did not destroy instance \(id): \(error)")
            }
            member.destroyRequestedAt = Date()
            try await fleet.update(member)
            done = "Destroy of instance \(id) sent: serve rents its replacement once vast.ai shows it gone."
        }
        core.logger.notice(
            "web fleet action",
            metadata: ["action": "\(action.rawValue)", "count": "\(count.map(String.init) ?? "-")", "id": "\(id.map(String.init) ?? "-")"]
        )
        return redirect("/fleet?done=\(done.percentEncodedForQuery)", cookie: visitor.setCookie)
    }

    static func fleetRequest(action: String?, count: String?, id: String?) throws -> (WebViews.FleetAction, Int?, Int?) {
        guard let action = action.flatMap(WebViews.FleetAction.init(rawValue:)) else {
            throw WebProblem(.badRequest, "Unknown action", "action must be up, down or replace")
        }
        var wanted: Int?
        if let count, !count.isEmpty {
            guard let value = Int(count), (0...100).contains(value) else {
                throw WebProblem(.badRequest, "Bad count", "'\(count)' is not a whole number from 0 to 100")
            }
            wanted = value
        }
        var instance: Int?
        if action == .replace {
            guard let id, let value = Int(id) else { throw WebProblem(.badRequest, "Bad instance", "replace needs the instance's id") }
            instance = value
        }
        return (action, action == .up ? wanted : nil, instance)
    }

    private func costsPage(_ request: Request, _ visitor: Visitor) async throws -> (HTML, HTTPResponse.Status) {
        let now = Date()
        let query = request.uri.queryParameters
        let today = Self.utcCalendar.startOfDay(for: now)
        let from = try Self.day(query.get("from"), field: "from") ?? today.addingTimeInterval(-13 * 86_400)
        let to = try Self.day(query.get("to"), field: "to") ?? today
        guard from <= to else { throw WebProblem(.badRequest, "Bad range", "'from' is after 'to'") }
        guard to.timeIntervalSince(from) <= 366 * 86_400 else { throw WebProblem(.badRequest, "Bad range", "show at most 366 days at once") }
        var report: CostReport?
        var problem: String?
        do {
            report = try await costs.costReport(endpoint: endpoint(request), from: from, to: to, group: .day, now: now)
        } catch {
            problem = "\(error)"
        }
        let html = WebViews.costs(
            report,
            problem: problem,
            from: WebFormat.day(from),
            to: WebFormat.day(to),
            context: pageContext(request, visitor)
        )
        return (html, .ok)
    }

    static func day(_ text: String?, field: String) throws -> Date? {
        guard let text, !text.isEmpty else { return nil }
        guard let date = try? Date(text + "T00:00:00Z", strategy: .iso8601) else {
            throw WebProblem(.badRequest, "Bad date", "\(field): '\(text)' is not a day such as 2026-12-01")
        }
        return date
    }

    static let utcCalendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    // MARK: Responses

    /// The Content-Security-Policy: this server's scripts, styles, images and media only (plus the S3 bucket's for
    /// outputs kept there), no inline script, no framing, forms posting back here only.
    static func contentSecurityPolicy(outputs: OutputStorageSettings?) -> String {
        var media = "'self' data:"
        if case .s3(let s3)? = outputs?.configuration.backend {
            media += " \(s3.endpoint) \(s3.endpoint.scheme)://*.\(s3.endpoint.authority)"
        }
        return "default-src 'none'; script-src 'self'; style-src 'self'; img-src \(media); media-src \(media); connect-src 'self'; "
            + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    }

    func securityHeaders() -> HTTPFields {
        [
            HTTPField.Name("Content-Security-Policy")!: csp, HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            HTTPField.Name("X-Frame-Options")!: "DENY", HTTPField.Name("Referrer-Policy")!: "same-origin",
            .cacheControl: "no-store",
        ]
    }

    func html(_ html: HTML, status: HTTPResponse.Status, cookie: String? = nil) -> Response {
        var headers = securityHeaders()
        headers[.contentType] = "text/html; charset=utf-8"
        if let cookie { headers[.setCookie] = cookie }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html.text)))
    }

    func redirect(_ location: String, cookie: String? = nil) -> Response {
        var headers = securityHeaders()
        headers[.location] = location
        if let cookie { headers[.setCookie] = cookie }
        return Response(status: .seeOther, headers: headers)
    }

    func asset(_ text: String, type: String) -> Response {
        var headers = securityHeaders()
        headers[.contentType] = type
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// A POST that names another origin is refused; one without `Origin` (an older browser) still needs the token.
    static func sameOrigin(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin] else { return true }
        guard let authority = request.head.authority else { return false }
        return origin == "http://\(authority)" || origin == "https://\(authority)"
    }

    /// An `application/x-www-form-urlencoded` body, at most 16 KiB.
    static func form(_ request: inout Request) async throws -> [String: String] {
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: 16 << 10)
        } catch {
            throw APIError(.contentTooLarge, "form: larger than 16 KiB")
        }
        var fields: [String: String] = [:]
        for pair in String(buffer: buffer).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (text: Substring) in String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? "" }
            fields[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }
}

/// A page that cannot be shown, as the operator reads it.
struct WebProblem: Error {
    var status: HTTPResponse.Status
    var title: String
    var text: String
    init(_ status: HTTPResponse.Status, _ title: String, _ text: String) {
        self.status = status
        self.title = title
        self.text = text
    }
}
