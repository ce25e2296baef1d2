@testable import ControlPlane
import Fleet
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JobProtocol
@testable import JobStore
import NIOCore
import SwarmCore
import Testing
import VastAI

/// Fixed numbers in place of the cost accounting, so that the views' rendering of a report is checked on its own.
struct FixedCosts: CostReporting {
    static let days = [
        DayCost(
            day: "2026-12-01",
            jobsCompleted: 3,
            spendUSD: 1.25,
            spendByState: SpendByState(idle: 0.25, busy: 1),
            spendByProvider: ["vastai": 1.25],
            spendByInstance: ["101": 1.25],
            falEquivalentUSD: 4.8,
            savingUSD: 3.55
        ),
        DayCost(
            day: "2026-12-02",
            jobsCompleted: 5,
            spendUSD: 2.5,
            spendByState: SpendByState(busy: 2.5),
            spendByProvider: ["vastai": 2, "fal": 0.5],
            spendByInstance: ["101": 2],
            falEquivalentUSD: 9.6,
            savingUSD: 7.1
        ),
    ]

    func costReport(endpoint: String, from: Date, to: Date, group: CostReport.Grouping, now: Date) async throws -> CostReport {
        let jobs = [
            JobCost(
                jobID: "job-fal",
                day: "2026-12-02",
                provider: "fal",
                status: "COMPLETED",
                instanceID: nil,
                gpu: nil,
                dollarsPerHour: nil,
                executionSeconds: 40,
                directCostUSD: 0.5,
                loadedCostUSD: 0.5,
                videoSeconds: 5.0625,
                resolution: "720p",
                falEquivalentUSD: 0.405
            )
        ]
        return CostReport(
            from: "2026-12-01",
            to: "2026-12-02",
            group: group,
            days: group == .day ? Self.days : [],
            jobs: group == .job ? jobs : [],
            totals: CostTotals(jobsCompleted: 8, spendUSD: 3.75, falEquivalentUSD: 14.4, savingUSD: 10.65)
        )
    }
}

/// A browser's view of the server: the session cookie it was given and the pages it got.
struct Browser: Sendable {
    let client: any TestClientProtocol
    var cookie: String?

    struct Page: Sendable {
        var status: HTTPResponse.Status
        var headers: HTTPFields
        var body: String
        var setCookie: String? { headers[.setCookie] }
        /// The CSRF token of the page's first form.
        var csrf: String? {
            guard let range = body.range(of: #"name="csrf" value="([0-9a-f]+)""#, options: .regularExpression) else { return nil }
            return String(body[range].dropFirst(#"name="csrf" value=""#.count).dropLast())
        }
    }

    mutating func get(_ uri: String) async throws -> Page {
        try await send(.get, uri, form: nil)
    }

    mutating func post(_ uri: String, form: [(String, String)], origin: String? = nil) async throws -> Page {
        try await send(.post, uri, form: form, origin: origin)
    }

    private mutating func send(_ method: HTTPRequest.Method, _ uri: String, form: [(String, String)]?, origin: String? = nil) async throws -> Page {
        var headers: HTTPFields = [:]
        if let cookie { headers[.cookie] = cookie }
        if let origin { headers[.origin] = origin }
        var body: ByteBuffer?
        if let form {
            headers[.contentType] = "application/x-www-form-urlencoded"
            body = ByteBuffer(string: form.map { "\($0.0.percentEncodedForQuery)=\($0.1.percentEncodedForQuery)" }.joined(separator: "&"))
        }
        let response = try await client.execute(uri: uri, method: method, headers: headers, body: body)
        let page = Page(status: response.status, headers: response.headers, body: String(buffer: response.body))
        if let set = page.setCookie, let pair = set.split(separator: ";").first {
            cookie = pair.hasSuffix("=") ? nil : String(pair)
        }
        return page
    }
}

func withWebPage(
    _ configuration: ControlPlaneConfiguration = ControlPlaneConfiguration(longPollTimeout: .milliseconds(200)),
    costs: (any CostReporting)? = nil,
    _ test: @escaping @Sendable (Browser, any ControlPlaneStore) async throws -> Void
) async throws {
    let store = try SQLiteJobStore.inMemory()
    try await buildApplication(configuration: configuration, store: store, logger: quietLogger, costReporting: costs).test(.router) { client in
        try await test(Browser(client: client), store)
    }
}

@Suite struct WebPageTests {
    static let keyed = ControlPlaneConfiguration(
        longPollTimeout: .milliseconds(200),
        clientKeys: [Secret("client-key-1")],
        workerKeys: [Secret("worker-key-1")]
    )

    @Test func anOpenServerShowsThePageWithStrictHeadersAndTheStoresCosts() async throws {
        try await withWebPage { browser, _ in
            var browser = browser
            let page = try await browser.get("/")
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            let csp = try #require(page.headers[HTTPField.Name("Content-Security-Policy")!])
            #expect(csp.contains("default-src 'none'"))
            #expect(csp.contains("script-src 'self';"))
            #expect(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"))
            #expect(csp.contains("frame-ancestors 'none'"))
            #expect(page.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff")
            let cookie = try #require(page.setCookie)
            #expect(cookie.hasPrefix("swarm_session="))
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
            // The store's own cost report is wired in by default: an empty store costs nothing, it is not "missing".
            #expect(page.body.contains("Today's spend") && !page.body.contains("costs not available"))
            #expect(page.body.contains("<script src=\"/assets/app.js\" defer></script>"))
            // No inline script anywhere: the only <script> is the served file.
            #expect(page.body.components(separatedBy: "<script").count == 2)
            for path in ["/", "/jobs", "/fleet", "/costs", "/fleet/confirm?action=up&count=1"] {
                let view = try await browser.get(path)
                #expect(view.status == .ok, "\(path)")
                #expect(view.body.contains("aria-current=\"page\""), "\(path)")
                // With no user data in the store, nothing is escaped: markup meant as markup is never shown as text.
                #expect(!view.body.contains("&lt;"), "\(path)")
            }
            #expect(try await browser.get("/costs").body.contains("<svg class=\"cost-chart\""))
            let script = try await browser.get("/assets/app.js")
            #expect(script.status == .ok && script.headers[.contentType]?.hasPrefix("text/javascript") == true)
            #expect(script.body.contains("EventSource"))
        }
    }

    @Test func keysRequireSignInWithCSRFAndSignOutEndsTheSession() async throws {
        try await withWebPage(Self.keyed) { browser, _ in
            var browser = browser
            let stranger = try await browser.get("/")
            #expect(stranger.status == .seeOther)
            #expect(stranger.headers[.location] == "/signin")
            #expect(try await browser.get("/events").status == .unauthorized)

            let form = try await browser.get("/signin")
            #expect(form.status == .ok)
            let token = try #require(form.csrf)
            // A wrong key, then the right key without the form's token, then from another origin: all refused.
            #expect(try await browser.post("/signin", form: [("csrf", token), ("key", "nope")]).status == .unauthorized)
            #expect(try await browser.post("/signin", form: [("key", "client-key-1")]).status == .forbidden)
            let again = try #require(try await browser.get("/signin").csrf)
            #expect(
                try await browser.post("/signin", form: [("csrf", again), ("key", "client-key-1")], origin: "http://evil.example").status
                    == .forbidden
            )
            let fresh = try #require(try await browser.get("/signin").csrf)
            // A worker key is not a client key.
            #expect(try await browser.post("/signin", form: [("csrf", fresh), ("key", "worker-key-1")]).status == .unauthorized)
            let signedIn = try await browser.post("/signin", form: [("csrf", fresh), ("key", "client-key-1")])
            #expect(signedIn.status == .seeOther)
            #expect(signedIn.headers[.location] == "/")
            #expect(signedIn.setCookie?.contains("HttpOnly") == true)
            let sessionCookie = try #require(browser.cookie)

            let overview = try await browser.get("/")
            #expect(overview.status == .ok)
            #expect(overview.body.contains("Sign out"))
            // The session reads client routes (the CSV export link) but cannot submit jobs with it.
            let health = try await browser.client.execute(uri: "/v2/swarmui/health", method: .get, headers: [.cookie: sessionCookie], body: nil)
            #expect(health.status == .ok)
            let run = try await browser.client.execute(
                uri: "/v2/swarmui/run",
                method: .post,
                headers: [.cookie: sessionCookie, .contentType: "application/json"],
                body: ByteBuffer(string: #"{"input": {}}"#)
            )
            #expect(run.status == .unauthorized)
            // A tampered cookie is no session.
            let tampered = sessionCookie.replacingOccurrences(of: "~", with: "~1", options: [], range: sessionCookie.range(of: "~"))
            #expect(try await browser.client.execute(uri: "/", method: .get, headers: [.cookie: tampered], body: nil).status == .seeOther)

            let csrf = try #require(overview.csrf)
            #expect(try await browser.post("/signout", form: []).status == .forbidden)
            let out = try await browser.post("/signout", form: [("csrf", csrf)])
            #expect(out.status == .seeOther)
            #expect(out.setCookie?.contains("Max-Age=0") == true)
            // The old cookie, replayed, no longer works.
            #expect(try await browser.client.execute(uri: "/", method: .get, headers: [.cookie: sessionCookie], body: nil).status == .seeOther)
        }
    }

    @Test func revokingTheKeyEndsItsSessions() async throws {
        // Another client key stays, so the server stays closed (without any, it would be open, as the API is).
        try await withWebPage(Self.keyed) { browser, store in
            var browser = browser
            let key = APIKey.generate(scope: .client)
            try await store.insertKey(StoredKey(id: "operator", scope: .client, hash: APIKey.hash(key.value), label: "operator", createdAt: Date()))
            let token = try #require(try await browser.get("/signin").csrf)
            #expect(try await browser.post("/signin", form: [("csrf", token), ("key", key.value)]).status == .seeOther)
            #expect(try await browser.get("/").status == .ok)
            #expect(try await store.revokeKey(id: "operator", now: Date()))
            // Stored keys are cached for 5 s; after that the session's key no longer counts.
            try await Task.sleep(for: .milliseconds(5_300))
            #expect(try await browser.get("/").status == .seeOther)
        }
    }

    @Test func aPromptWithAScriptIsShownAsText() async throws {
        try await withWebPage { browser, store in
            var browser = browser
            let prompt = #"<script>alert("x")</script><img src=x onerror=alert(1)>"#
            let job = try #require(
                try await store.enqueue(
                    [NewJob(id: "job-x", endpoint: "swarmui", input: ["prompt": .string(prompt)])],
                    now: Date()
                ).first
            )
            _ = try await store.take(endpoint: "swarmui", workerID: "w\"1", limit: 1, leaseUntil: Date().addingTimeInterval(60), now: Date())
            _ = try await store.finish(
                id: job.id,
                workerID: "w\"1",
                result: .failed(error: "<script>boom()</script>", output: nil, retryable: false),
                maxAttempts: 1,
                now: Date()
            )
            let list = try await browser.get("/jobs")
            let detail = try await browser.get("/jobs/\(job.id)")
            #expect(detail.status == .ok)
            for page in [list, detail] {
                #expect(!page.body.contains("<script>alert"))
                #expect(!page.body.contains("<img src=x"))
                #expect(page.body.contains("&lt;script&gt;alert("))
            }
            #expect(list.body.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"))
            #expect(detail.body.contains("&lt;script&gt;boom()&lt;/script&gt;"))
            #expect(!detail.body.contains("<script>boom"))
            #expect(detail.body.contains("w&quot;1"))
            #expect(try await browser.get("/jobs/nope").status == .notFound)
        }
    }

    @Test func aJobPageShowsItsVideoAndDownloadLinksButNoOtherSchemes() async throws {
        try await withWebPage(costs: FixedCosts()) { browser, store in
            var browser = browser
            let job = try #require(
                try await store.enqueue([NewJob(id: "job-fal", endpoint: "swarmui", input: ["prompt": "a cat"])], now: Date()).first
            )
            _ = try await store.take(endpoint: "swarmui", workerID: "w1", limit: 1, leaseUntil: Date().addingTimeInterval(60), now: Date())
            let files: JSONValue = [
                "files": [
                    ["name": "clip.mp4", "content_type": "video/mp4", "bytes": 2048, "url": "/files/swarmui/job-fal/clip.mp4?sig=abc"],
                    ["name": "still.png", "content_type": "image/png", "bytes": 10, "url": "https://bucket.example/still.png"],
                    ["name": "evil.mp4", "content_type": "video/mp4", "bytes": 1, "url": "javascript:alert(1)"],
                ]
            ]
            _ = try await store.finish(id: job.id, workerID: "w1", result: .completed(output: files), maxAttempts: 3, now: Date())
            let page = try await browser.get("/jobs/job-fal")
            #expect(page.body.contains(#"<video controls preload="metadata" src="/files/swarmui/job-fal/clip.mp4?sig=abc""#))
            #expect(page.body.contains(#"<a href="/files/swarmui/job-fal/clip.mp4?sig=abc" download="clip.mp4">"#))
            #expect(page.body.contains(#"<img src="https://bucket.example/still.png" alt="still.png">"#))
            #expect(!page.body.contains("javascript:"))
            // Its cost, from the cost report's job rows.
            #expect(page.body.contains("data-job-direct>$0.5000"))
            #expect(page.body.contains("data-job-fal>$0.4050"))
            // The provider filter reads the same rows.
            let fal = try await browser.get("/jobs?provider=fal&since=")
            #expect(fal.body.contains("data-job-row=\"job-fal\""))
            #expect(!(try await browser.get("/jobs?provider=vastai&since=")).body.contains("data-job-row=\"job-fal\""))
        }
    }

    @Test func theCostsViewDrawsTheReportAsAChartAndATableWithAnExportLink() async throws {
        try await withWebPage(costs: FixedCosts()) { browser, _ in
            var browser = browser
            let page = try await browser.get("/costs?from=2026-12-01&to=2026-12-02")
            #expect(page.status == .ok)
            #expect(page.body.contains("<svg class=\"cost-chart\""))
            #expect(page.body.contains(#"class="bar-spend" data-day="2026-12-01" data-spend="1.25""#))
            #expect(page.body.contains(#"class="bar-fal" data-day="2026-12-02" data-fal="9.6""#))
            // The taller fal bar of day 2 reaches the top of the $10 axis; day 1's spend is an eighth of it.
            #expect(page.body.contains(">$10.00</text>"))
            #expect(
                page.body.contains(
                    "<th scope=\"row\">2026-12-01</th><td class=\"num\">3</td><td class=\"num\">$1.25</td><td class=\"num\">$4.80</td><td class=\"num\">$3.55</td>"
                )
            )
            #expect(page.body.contains("data-total-spend>$3.75"))
            #expect(page.body.contains("data-total-saving>$10.65"))
            #expect(page.body.contains(#"href="/v2/swarmui/costs?group=day&amp;format=csv&amp;from=2026-12-01&amp;to=2026-12-02""#))
            #expect(!page.body.contains("costs not available"))
            let overview = try await browser.get("/")
            #expect(overview.body.contains("data-today-spend>$2.50"))
            #expect(overview.body.contains("data-today-fal>$9.60"))
            #expect(overview.body.contains("data-today-saving>$7.10"))
            #expect(try await browser.get("/costs?from=2026-13-01").status == .badRequest)
            #expect(try await browser.get("/costs?from=2026-12-05&to=2026-12-01").status == .badRequest)
        }
    }

    @Test func fleetActionsAreConfirmedAndNeedTheCSRFToken() async throws {
        try await withWebPage { browser, store in
            var browser = browser
            let fleet = DatabaseFleetStore(store: store)
            try await fleet.insert(FleetMember(id: 77, label: "swarm-abc", offerID: 1, machineID: 2, dphTotal: 0.42, createdAt: Date()))
            try await store.heartbeat(
                workerID: "swarm-abc",
                endpoint: "swarmui",
                jobIDs: [],
                leaseUntil: Date(),
                report: WorkerReport(stage: .downloading(DownloadProgress(doneBytes: 3_000, totalBytes: 12_000)), logTail: ["<b>pulling</b>"]),
                now: Date()
            )
            let page = try await browser.get("/fleet")
            #expect(page.body.contains(#"<progress max="100" value="25.0" data-progress="swarm-abc""#))
            #expect(page.body.contains("$0.420"))
            #expect(page.body.contains("&lt;b&gt;pulling&lt;/b&gt;"))
            let confirm = try await browser.get("/fleet/confirm?action=up&count=2")
            #expect(confirm.status == .ok)
            #expect(confirm.body.contains("Confirm up"))
            let token = try #require(confirm.csrf)
            #expect(try await browser.post("/fleet/action", form: [("action", "up"), ("count", "2")]).status == .forbidden)
            #expect(
                try await browser.post(
                    "/fleet/action",
                    form: [("csrf", (token.first == "0" ? "1" : "0") + token.dropFirst()), ("action", "up"), ("count", "2")]
                ).status == .forbidden
            )
            #expect(
                try await browser.post("/fleet/action", form: [("csrf", token), ("action", "up"), ("count", "2")], origin: "http://evil.example")
                    .status == .forbidden
            )
            #expect(try await fleet.desiredSize() == nil)
            let plain = try await browser.post("/fleet/action", form: [("csrf", token), ("action", "up"), ("count", "2")])
            #expect(plain.status == .seeOther)
            #expect(try await fleet.desiredSize() == 2)
            #expect(try await browser.post("/fleet/action", form: [("csrf", token), ("action", "down")]).status == .seeOther)
            #expect(try await fleet.desiredSize() == 0)
            // Replace needs the vast.ai fleet, which this server does not run.
            #expect(try await browser.post("/fleet/action", form: [("csrf", token), ("action", "replace"), ("id", "77")]).status == .conflict)
            #expect(try await browser.post("/fleet/action", form: [("csrf", token), ("action", "explode")]).status == .badRequest)
        }
    }

    @Test func eventsAreSentForWhatChanged() {
        let job = JobRecord(
            id: "j1",
            endpoint: "swarmui",
            status: .inQueue,
            input: ["prompt": "<i>x</i>"],
            webhook: nil,
            policy: JobPolicy(),
            s3Config: nil,
            output: nil,
            error: nil,
            workerID: nil,
            attempts: 0,
            createdAt: Date(),
            startedAt: nil,
            finishedAt: nil,
            leaseExpiresAt: nil,
            webhookAttempts: [],
            webhookDelivered: false
        )
        var first = WebSnapshot()
        first.jobs["j1"] = WebSnapshot.job(job, watched: false)
        first.counts = ["IN_QUEUE": 1]
        let initial = first.events(since: nil)
        #expect(initial.count == 2)
        #expect(initial[0].hasPrefix("event: job\ndata: {"))
        #expect(first.events(since: first).isEmpty)
        var second = first
        var done = job
        done.status = .completed
        second.jobs["j1"] = WebSnapshot.job(done, watched: false)
        let changes = second.events(since: first)
        #expect(changes.count == 1)
        #expect(changes[0].contains(#""status":"COMPLETED""#) && changes[0].contains(#""final":true"#))
        #expect(changes[0].hasSuffix("\n\n"))
    }

    @Test func htmlEscapesEverythingInterpolated() {
        let text = #"<a href="x" onclick='y'>&</a>"#
        let html: HTML = "<p title=\"\(text)\">\(text)</p>"
        #expect(
            html.text
                == "<p title=\"&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;\">&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;</p>"
        )
        #expect(CostChart.niceCeiling(9.6) == 10)
        #expect(CostChart.niceCeiling(0.31) == 0.5)
        #expect(CostChart.niceCeiling(0) == 1)
    }
}
