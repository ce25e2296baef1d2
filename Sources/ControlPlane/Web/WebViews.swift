import Fleet
import Foundation
import JobProtocol
import JobStore
import SwarmCore
import VastAI

/// The web page's views as pure functions of what the routes read: every value from a job, a worker or a key holder
/// goes through `HTML` interpolation, which escapes it.
enum WebViews {
    enum View: String, CaseIterable {
        case overview = "Overview"
        case jobs = "Jobs"
        case fleet = "Fleet"
        case costs = "Costs"

        var path: String {
            switch self {
            case .overview: "/"
            case .jobs: "/jobs"
            case .fleet: "/fleet"
            case .costs: "/costs"
            }
        }
    }

    /// What every signed-in page needs besides its own data.
    struct PageContext: Sendable {
        var csrf: String
        /// Signed in with a key (a sign-out button); false on an open server.
        var signedIn: Bool
        var endpoint: String
        var endpoints: [String]
    }

    // MARK: Layout

    static func document(title: String, body: HTML, live: Bool = false, endpoint: String = "") -> HTML {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(title) · swarmctl</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/assets/app.css">
        <script src="/assets/app.js" defer></script></head>
        <body\(live ? " data-live" : "") data-endpoint="\(endpoint)"><a class="skip" href="#main">Skip to content</a>
        \(body)
        </body></html>
        """
    }

    static func page(_ view: View?, title: String, context: PageContext, live: Bool = true, _ content: HTML) -> HTML {
        let links = View.allCases.map { item -> HTML in
            let href = item.path + (context.endpoints.count > 1 ? "?endpoint=\(context.endpoint.percentEncodedForQuery)" : "")
            return item == view ? "<a href=\"\(href)\" aria-current=\"page\">\(item.rawValue)</a>" : "<a href=\"\(href)\">\(item.rawValue)</a>"
        }
        let signOut: HTML =
            context.signedIn
            ? """
            <form method="post" action="/signout" class="signout"><input type="hidden" name="csrf" value="\(context.csrf)">\
            <button type="submit">Sign out</button></form>
            """ : #"<span class="open-note">open: no client keys</span>"#
        let endpointPicker: HTML =
            context.endpoints.count > 1
            ? """
            <form method="get" class="endpoint"><label for="endpoint">Endpoint</label> <select id="endpoint" name="endpoint">\
            \(context.endpoints.map { name -> HTML in "<option\(name == context.endpoint ? " selected" : "")>\(name)</option>" })\
            </select> <button type="submit">Show</button></form>
            """ : ""
        let body: HTML = """
            <header><span class="brand">swarmctl</span><nav aria-label="Views">\(links)</nav>\(endpointPicker)\(signOut)</header>
            <p id="live" class="live" role="status" aria-live="polite"></p>
            <main id="main" tabindex="-1"><h1>\(title)</h1>
            \(content)
            </main>
            """
        return document(title: title, body: body, live: live, endpoint: context.endpoint)
    }

    static func signIn(csrf: String, error: String?, open: Bool) -> HTML {
        let message: HTML = error.map { "<p class=\"error\" role=\"alert\">\($0)</p>" } ?? ""
        let openNote: HTML =
            open
            ? #"<p class="note">This server has no client keys yet: the page is open on this machine. <a href="/">Go to the overview</a>.</p>"# : ""
        return document(
            title: "Sign in",
            body: """
                <main id="main" class="signin" tabindex="-1"><h1>swarmctl: sign in</h1>\(openNote)\(message)
                <form method="post" action="/signin"><input type="hidden" name="csrf" value="\(csrf)">
                <label for="key">Client API key</label>
                <input id="key" name="key" type="password" autocomplete="current-password" required spellcheck="false">
                <p class="hint">A client key, as the API takes ('swarmctl keys create --scope client' makes one). It is checked, then \
                forgotten: the browser keeps only a session cookie.</p>
                <button type="submit">Sign in</button></form></main>
                """
        )
    }

    static func message(title: String, text: String, context: PageContext?) -> HTML {
        let content: HTML = "<p class=\"error\" role=\"alert\">\(text)</p><p><a href=\"/\">Back to the overview</a></p>"
        guard let context else { return document(title: title, body: "<main id=\"main\" tabindex=\"-1\"><h1>\(title)</h1>\(content)</main>") }
        return page(nil, title: title, context: context, live: false, content)
    }

    // MARK: Overview

    struct Overview: Sendable {
        var counts: [JobStatus: Int]
        var workersByStage: [(stage: String, count: Int)]
        var completedLastHour: Int
        var today: DayCost?
        /// Why today's costs are missing, when they are.
        var costProblem: String?
    }

    static func overview(_ data: Overview, context: PageContext) -> HTML {
        let count = { (status: JobStatus) -> HTML in
            "<span data-count=\"\(status.rawValue)\">\(data.counts[status] ?? 0)</span>"
        }
        let stages: HTML =
            data.workersByStage.isEmpty
            ? "<p>No worker has pinged within the lease time.</p>"
            : """
            <table><caption>Workers by stage</caption><thead><tr><th scope="col">Stage</th><th scope="col">Workers</th></tr></thead><tbody>\
            \(data.workersByStage.map { row -> HTML in "<tr><td>\(row.stage)</td><td class=\"num\">\(row.count)</td></tr>" })</tbody></table>
            """
        let money: HTML
        if let today = data.today {
            money = """
                <div class="card"><h2>Today's spend</h2><p class="big" data-today-spend>\(WebFormat.dollarsShort(today.spendUSD))</p></div>
                <div class="card"><h2>fal.ai equivalent</h2><p class="big" data-today-fal>\(WebFormat.dollarsShort(today.falEquivalentUSD))</p></div>
                <div class="card"><h2>Saving</h2><p class="big" data-today-saving>\(WebFormat.dollarsShort(today.savingUSD))</p></div>
                """
        } else {
            money =
                "<div class=\"card wide\"><h2>Today's spend</h2><p class=\"note\" data-costs-unavailable>costs not available: \(data.costProblem ?? "no report")</p></div>"
        }
        return page(
            .overview,
            title: "Overview",
            context: context,
            """
            <section class="cards" aria-label="Queue and money">
            <div class="card"><h2>Queue depth</h2><p class="big">\(count(.inQueue))</p></div>
            <div class="card"><h2>In progress</h2><p class="big">\(count(.inProgress))</p></div>
            <div class="card"><h2>Jobs in the last hour</h2><p class="big" data-jobs-per-hour>\(data.completedLastHour)</p></div>
            \(money)
            </section>
            <section aria-label="Jobs by status"><table><caption>Jobs by status</caption><thead><tr><th scope="col">Status</th><th scope="col">Jobs</th></tr></thead><tbody>\
            \(JobStatus.allCases.map { status -> HTML in "<tr><td>\(status.rawValue)</td><td class=\"num\">\(count(status))</td></tr>" })</tbody></table></section>
            <section aria-label="Workers">\(stages)</section>
            """
        )
    }

    // MARK: Jobs

    struct JobFilter: Sendable, Equatable {
        var status: JobStatus?
        var provider: String?
        /// Seconds back from now; nil: all kept jobs.
        var since: Int?

        static let sinceChoices: [(label: String, seconds: Int?)] = [
            ("last hour", 3600), ("last 24 hours", 86_400), ("last 7 days", 7 * 86_400), ("all kept", nil),
        ]
    }

    static func prompt(of job: JobRecord) -> String {
        let text = job.input["prompt"]?.stringValue ?? job.input["text"]?.stringValue ?? ""
        return text.count > 90 ? String(text.prefix(90)) + "…" : text
    }

    static func statusCell(_ job: JobRecord) -> HTML {
        "<span class=\"status status-\(job.status.rawValue.lowercased())\" data-job-status=\"\(job.id)\">\(job.status.rawValue)</span>"
    }

    static func jobs(
        _ jobs: [JobRecord],
        providers: [String: String],
        filter: JobFilter,
        note: String?,
        context: PageContext
    ) -> HTML {
        let statusOptions =
            [HTML("<option value=\"\">any</option>")]
            + JobStatus.allCases.map { status -> HTML in
                "<option value=\"\(status.rawValue)\"\(filter.status == status ? " selected" : "")>\(status.rawValue)</option>"
            }
        let providerOptions = ["", "vastai", "fal"].map { name -> HTML in
            "<option value=\"\(name)\"\((filter.provider ?? "") == name ? " selected" : "")>\(name.isEmpty ? "any" : name)</option>"
        }
        let sinceOptions = JobFilter.sinceChoices.map { choice -> HTML in
            let value = choice.seconds.map(String.init) ?? ""
            return "<option value=\"\(value)\"\(filter.since == choice.seconds ? " selected" : "")>\(choice.label)</option>"
        }
        let rows = jobs.map { job -> HTML in
            """
            <tr data-job-row="\(job.id)"><td><a href="/jobs/\(job.id.percentEncodedForQuery)">\(job.id)</a></td><td>\(statusCell(job))</td>\
            <td>\(providers[job.id] ?? "—")</td><td>\(WebFormat.time(job.createdAt))</td><td>\(WebFormat.milliseconds(job.executionTimeMs))</td>\
            <td class="prompt">\(prompt(of: job))</td></tr>
            """
        }
        let noteHTML: HTML = note.map { "<p class=\"note\">\($0)</p>" } ?? ""
        let live = filter == JobFilter(status: nil, provider: nil, since: filter.since)
        return page(
            .jobs,
            title: "Jobs",
            context: context,
            """
            <form method="get" action="/jobs" class="filters" aria-label="Filter jobs">
            <input type="hidden" name="endpoint" value="\(context.endpoint)">
            <label for="f-status">Status</label> <select id="f-status" name="status">\(statusOptions)</select>
            <label for="f-provider">Provider</label> <select id="f-provider" name="provider">\(providerOptions)</select>
            <label for="f-since">Time</label> <select id="f-since" name="since">\(sinceOptions)</select>
            <button type="submit">Filter</button></form>
            \(noteHTML)
            <div class="table-wrap" role="region" aria-label="Jobs" tabindex="0"><table><caption>\(jobs.count) job(s), newest first</caption>
            <thead><tr><th scope="col">Job</th><th scope="col">Status</th><th scope="col">Provider</th><th scope="col">Created</th>\
            <th scope="col">Execution</th><th scope="col">Prompt</th></tr></thead>
            <tbody\(live ? " data-live-jobs" : "")>\(rows)</tbody></table></div>
            """
        )
    }

    struct JobDetail: Sendable {
        var job: JobRecord
        var cost: JobCost?
        var costProblem: String?
        var workerLog: [String]
    }

    /// Links only to the page's own server, storage links over http(s), and inline images or videos: never
    /// `javascript:` or other schemes a worker's output could carry.
    static func safeURL(_ url: String) -> Bool {
        let lower = url.lowercased()
        return lower.hasPrefix("https://") || lower.hasPrefix("http://") || (lower.hasPrefix("/") && !lower.hasPrefix("//"))
            || lower.hasPrefix("data:image/") || lower.hasPrefix("data:video/")
    }

    static func outputs(of job: JobRecord) -> [OutputFile] {
        (job.output?["files"]?.arrayValue ?? []).compactMap(OutputFile.init(json:)).filter { safeURL($0.url) }
    }

    static func prettyJSON(_ value: JSONValue?, limit: Int = 20_000) -> String {
        guard let value else { return "—" }
        let compact = value.jsonString()
        var text = compact
        if let object = try? JSONSerialization.jsonObject(with: Data(compact.utf8), options: [.fragmentsAllowed]),
            let data = try? JSONSerialization.data(
                withJSONObject: object,
                options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]
            )
        {
            text = String(decoding: data, as: UTF8.self)
        }
        return text.count > limit ? String(text.prefix(limit)) + "\n… (\(text.count - limit) more characters)" : text
    }

    static func job(_ detail: JobDetail, context: PageContext) -> HTML {
        let job = detail.job
        let files = outputs(of: job)
        let media = files.map { file -> HTML in
            let name = file.name.isEmpty ? "output" : file.name
            let player: HTML =
                if file.contentType.hasPrefix("video/") {
                    "<video controls preload=\"metadata\" src=\"\(file.url)\" aria-label=\"\(name)\"></video>"
                } else if file.contentType.hasPrefix("image/") {
                    "<img src=\"\(file.url)\" alt=\"\(name)\">"
                } else { "" }
            return """
                <figure>\(player)<figcaption><a href="\(file.url)" download="\(name)">Download \(name)</a> \
                (\(file.contentType), \(formatBytes(file.bytes)))</figcaption></figure>
                """
        }
        let outputsHTML: HTML =
            files.isEmpty
            ? (job.status == .completed ? "<pre>\(prettyJSON(job.output))</pre>" : "<p>No outputs yet.</p>")
            : HTML.join(media)
        let costHTML: HTML
        if let cost = detail.cost {
            let fal: HTML = cost.falEquivalentUSD.map { "<dt>fal.ai equivalent</dt><dd data-job-fal>\(WebFormat.dollars($0))</dd>" } ?? ""
            costHTML = """
                <dl class="facts"><dt>Provider</dt><dd>\(cost.provider)</dd><dt>Instance</dt><dd>\(cost.instanceID ?? "—")</dd>\
                <dt>GPU</dt><dd>\(cost.gpu ?? "—")</dd><dt>$/h</dt><dd>\(cost.dollarsPerHour.map { String(format: "$%.3f", $0) } ?? "—")</dd>\
                <dt>Direct cost</dt><dd data-job-direct>\(WebFormat.dollars(cost.directCostUSD))</dd>\
                <dt>Loaded cost</dt><dd data-job-loaded>\(WebFormat.dollars(cost.loadedCostUSD))</dd>\(fal)</dl>
                """
        } else {
            costHTML = "<p class=\"note\">\(detail.costProblem ?? "No cost recorded for this job yet.")</p>"
        }
        let error: HTML = job.error.map { "<section><h2>Error</h2><pre class=\"error\">\($0)</pre></section>" } ?? ""
        let log: HTML =
            detail.workerLog.isEmpty
            ? "<p>No log lines from its worker.</p>"
            : "<pre class=\"log\">\(detail.workerLog.joined(separator: "\n"))</pre>"
        return page(
            .jobs,
            title: "Job \(job.id)",
            context: context,
            """
            <div id="job-detail" data-job-page="\(job.id)">
            <dl class="facts"><dt>Status</dt><dd>\(statusCell(job))</dd><dt>Endpoint</dt><dd>\(job.endpoint)</dd>\
            <dt>Worker</dt><dd>\(job.workerID ?? "—")</dd><dt>Attempts</dt><dd>\(job.attempts)</dd>\
            <dt>Created</dt><dd>\(WebFormat.time(job.createdAt))</dd><dt>Started</dt><dd>\(WebFormat.time(job.startedAt))</dd>\
            <dt>Finished</dt><dd>\(WebFormat.time(job.finishedAt))</dd><dt>Queue wait</dt><dd>\(WebFormat.milliseconds(job.delayTimeMs))</dd>\
            <dt>Execution</dt><dd>\(WebFormat.milliseconds(job.executionTimeMs))</dd></dl>
            <section><h2>Outputs</h2>\(outputsHTML)</section>
            \(error)
            <section><h2>Cost</h2>\(costHTML)</section>
            <section><h2>Input</h2><pre class="input">\(prettyJSON(job.input))</pre></section>
            <section><h2>Worker log</h2><p class="hint">The last lines its worker sent with a ping.</p>\(log)</section>
            </div>
            """
        )
    }

    // MARK: Fleet

    struct FleetView: Sendable {
        var instances: [FleetInstanceStatus]
        var workers: [WorkerRecord]
        var desiredSize: Int?
        var creationHold: String?
        var spentToday: Double?
        /// Whether this serve runs the vast.ai fleet (replace needs it).
        var fleetRunning: Bool
        var notice: String?
    }

    static func progress(id: String, _ download: DownloadProgress?) -> HTML {
        let percent = download?.percent ?? 0
        let value = String(format: "%.1f", percent)
        return """
            <progress max="100" value="\(value)" data-progress="\(id)" aria-label="Download of \(id)"></progress> \
            <span data-percent="\(id)">\(download == nil ? "—" : value + "%")</span>
            """
    }

    static func download(of report: WorkerReport?) -> DownloadProgress? {
        if case .downloading(let progress)? = report?.stage, progress.totalBytes > 0 { progress } else { nil }
    }

    static func fleet(_ data: FleetView, now: Date, context: PageContext) -> HTML {
        let rows = data.instances.map { instance -> HTML in
            let record = instance.record
            let gpu = record.report?.extra["gpu"]?.stringValue ?? instance.vast?.gpuName ?? "—"
            let log: HTML =
                record.logTail.isEmpty
                ? "—"
                : "<details><summary>\(record.logTail.count) line(s)</summary><pre class=\"log\">\(record.logTail.suffix(20).joined(separator: "\n"))</pre></details>"
            return """
                <tr><th scope="row">\(record.label) <span class="muted">(\(record.id))</span></th>\
                <td><span data-stage="\(record.label)">\(record.report?.stageName ?? "not heard from")</span>\(record.state == .active ? "" : " [\(record.state.rawValue)]")\
                \(instance.vastAsked ? "<br><span class=\"muted\">\(instance.vastText)</span>" as HTML : "")</td>\
                <td>\(progress(id: record.label, instance.download))</td><td>\(gpu)</td>\
                <td>\(record.dphTotal.map { String(format: "$%.3f", $0) } ?? "—")</td><td>\(FleetInstanceStatus.span(instance.uptime(now: now)))</td>\
                <td>\(log)</td><td><form method="get" action="/fleet/confirm"><input type="hidden" name="action" value="replace">\
                <input type="hidden" name="id" value="\(record.id)"><button type="submit" aria-label="Replace \(record.label)">Replace…</button></form></td></tr>
                """
        }
        let workerRows = data.workers.map { worker -> HTML in
            """
            <tr><th scope="row">\(worker.id)</th><td>\(worker.endpoint)</td><td><span data-stage="\(worker.id)">\(worker.report?.stageName ?? "—")</span></td>\
            <td>\(progress(id: worker.id, download(of: worker.report)))</td><td>\(worker.jobIDs.joined(separator: ", "))</td>\
            <td>\(FleetInstanceStatus.span(now.timeIntervalSince(worker.lastSeen))) ago</td></tr>
            """
        }
        let notice: HTML = data.notice.map { "<p class=\"notice\" role=\"status\">\($0)</p>" } ?? ""
        let hold: HTML = data.creationHold.map { "<p class=\"error\">Creation on hold: \($0) ('Up' clears it).</p>" } ?? ""
        let spent: HTML = data.spentToday.map { " Spent today on instances: \(WebFormat.dollarsShort($0))." } ?? ""
        return page(
            .fleet,
            title: "Fleet",
            context: context,
            """
            \(notice)<p>Wanted: \(data.desiredSize.map { "\($0) instance(s)" } ?? "serve's --fleet-size").\(spent)\
            \(data.fleetRunning ? "" : " This serve does not run the vast.ai fleet (VAST_API_KEY unset): the records below are what the database keeps.")</p>\(hold)
            <div class="actions">
            <form method="get" action="/fleet/confirm"><input type="hidden" name="action" value="up">
            <label for="up-count">Instances</label> <input id="up-count" name="count" type="number" min="0" max="100" inputmode="numeric" placeholder="default">
            <button type="submit">Up…</button></form>
            <form method="get" action="/fleet/confirm"><input type="hidden" name="action" value="down"><button type="submit">Down…</button></form>
            </div>
            <div class="table-wrap" role="region" aria-label="Instances" tabindex="0"><table><caption>vast.ai instances</caption>
            <thead><tr><th scope="col">Instance</th><th scope="col">Stage</th><th scope="col">Download</th><th scope="col">GPU</th>\
            <th scope="col">$/h</th><th scope="col">Uptime</th><th scope="col">Last log lines</th><th scope="col">Action</th></tr></thead>
            <tbody>\(rows.isEmpty ? "<tr><td colspan=\"8\">No instances recorded.</td></tr>" : HTML.join(rows))</tbody></table></div>
            <div class="table-wrap" role="region" aria-label="Workers" tabindex="0"><table><caption>Workers heard from within the lease time</caption>
            <thead><tr><th scope="col">Worker</th><th scope="col">Endpoint</th><th scope="col">Stage</th><th scope="col">Download</th>\
            <th scope="col">Jobs</th><th scope="col">Last ping</th></tr></thead>
            <tbody>\(workerRows.isEmpty ? "<tr><td colspan=\"6\">No worker is pinging.</td></tr>" : HTML.join(workerRows))</tbody></table></div>
            """
        )
    }

    enum FleetAction: String, Sendable {
        case up, down, replace

        func question(count: Int?, id: Int?) -> String {
            switch self {
            case .up: "Let the fleet run \(count.map { "\($0) instance(s)" } ?? "at serve's --fleet-size") and clear any creation hold?"
            case .down: "Set the fleet to 0 instances? The running serve destroys every instance within a round."
            case .replace: "Destroy instance \(id.map(String.init) ?? "?") and rent another in its place?"
            }
        }
    }

    static func confirm(_ action: FleetAction, count: Int?, id: Int?, context: PageContext) -> HTML {
        var fields: [HTML] = []
        if let count { fields.append("<input type=\"hidden\" name=\"count\" value=\"\(count)\">") }
        if let id { fields.append("<input type=\"hidden\" name=\"id\" value=\"\(id)\">") }
        return page(
            .fleet,
            title: "Confirm: \(action.rawValue)",
            context: context,
            live: false,
            """
            <p>\(action.question(count: count, id: id))</p>
            <form method="post" action="/fleet/action"><input type="hidden" name="csrf" value="\(context.csrf)">\
            <input type="hidden" name="action" value="\(action.rawValue)">\(fields)
            <button type="submit" class="danger" autofocus>Confirm \(action.rawValue)</button> <a href="/fleet">Cancel</a></form>
            """
        )
    }

    // MARK: Costs

    static func costs(_ report: CostReport?, problem: String?, from: String, to: String, context: PageContext) -> HTML {
        let range: HTML = """
            <form method="get" action="/costs" class="filters" aria-label="Date range">
            <input type="hidden" name="endpoint" value="\(context.endpoint)">
            <label for="c-from">From</label> <input id="c-from" name="from" type="date" value="\(from)">
            <label for="c-to">To</label> <input id="c-to" name="to" type="date" value="\(to)">
            <button type="submit">Show</button></form>
            """
        guard let report else {
            let note: HTML = "<p class=\"note\" data-costs-unavailable>costs not available: \(problem ?? "no report")</p>"
            return page(.costs, title: "Costs", context: context, live: false, "\(range)\(note)")
        }
        let export =
            "/v2/\(context.endpoint.percentEncodedForQuery)/costs?group=day&format=csv&from=\(from.percentEncodedForQuery)&to=\(to.percentEncodedForQuery)"
        let rows = report.days.map { day -> HTML in
            """
            <tr><th scope="row">\(day.day)</th><td class="num">\(day.jobsCompleted)</td><td class="num">\(WebFormat.dollarsShort(day.spendUSD))</td>\
            <td class="num">\(WebFormat.dollarsShort(day.falEquivalentUSD))</td><td class="num">\(WebFormat.dollarsShort(day.savingUSD))</td></tr>
            """
        }
        let totals = report.totals
        return page(
            .costs,
            title: "Costs",
            context: context,
            live: false,
            """
            \(range)
            <div class="costs">
            <figure class="chart">\(CostChart.svg(days: report.days))<figcaption>Spend against the fal.ai equivalent per day (UTC), \(report.currency)</figcaption></figure>
            <div class="table-wrap" role="region" aria-label="Costs per day" tabindex="0"><table data-costs-table><caption>Per day</caption>
            <thead><tr><th scope="col">Day</th><th scope="col">Jobs</th><th scope="col">Spend</th><th scope="col">fal.ai equivalent</th><th scope="col">Saving</th></tr></thead>
            <tbody>\(rows)</tbody>
            <tfoot><tr><th scope="row">Total</th><td class="num">\(totals.jobsCompleted)</td><td class="num" data-total-spend>\(WebFormat.dollarsShort(totals.spendUSD))</td>\
            <td class="num" data-total-fal>\(WebFormat.dollarsShort(totals.falEquivalentUSD))</td><td class="num" data-total-saving>\(WebFormat.dollarsShort(totals.savingUSD))</td></tr></tfoot>
            </table></div></div>
            <p><a href="\(export)" download data-export>Export CSV</a></p>
            """
        )
    }
}
