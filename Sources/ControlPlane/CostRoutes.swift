import Foundation
import Hummingbird
import JobStore
import SwarmCore

/// `GET /v2/{endpoint}/costs?from=YYYY-MM-DD&to=YYYY-MM-DD&group=day|job`: the `CostReport` as JSON, or as CSV with
/// `Accept: text/csv` or `format=csv`. Without `to`, today (UTC); without `from`, the 6 days before `to`.
struct CostRoutes {
    let core: ControlPlaneCore
    let costs: any CostReporting
    /// A longer range is refused rather than computed hour by hour for years.
    static let maximumDays = 366

    func register(on group: RouterGroup<ControlPlaneRequestContext>) {
        group.get("costs") { request, context in try await report(request, context) }
    }

    private func report(_ request: Request, _ context: ControlPlaneRequestContext) async throws -> Response {
        let endpoint = try context.endpoint(in: core.configuration)
        let query = request.uri.queryParameters
        let now = Date()
        let parsed = try Self.parse(from: query.get("from"), to: query.get("to"), group: query.get("group"), format: query.get("format"), now: now)
        let report = try await costs.costReport(endpoint: endpoint, from: parsed.from, to: parsed.to, group: parsed.group, now: now)
        let wantsCSV = parsed.csv ?? (request.headers[.accept]?.lowercased().contains("text/csv") ?? false)
        guard wantsCSV else { return try .json(encoding: report) }
        var headers = HTTPFields()
        headers[.contentType] = "text/csv; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"costs-\(endpoint)-\(report.from)-\(report.to)-\(report.group.rawValue).csv\""
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: CostCSV.text(report))))
    }

    struct Query: Equatable {
        var from: Date
        var to: Date
        var group: CostReport.Grouping
        /// nil: decided by the Accept header.
        var csv: Bool?
    }

    static func parse(from: String?, to: String?, group: String?, format: String?, now: Date) throws -> Query {
        func day(_ name: String, _ value: String?) throws -> Date? {
            guard let value else { return nil }
            guard let date = CostArithmetic.dayStart(value) else {
                throw APIError.badRequest(field: name, "expected a UTC day written YYYY-MM-DD, such as 2026-12-01; got '\(value)'")
            }
            return date
        }
        let last = try day("to", to) ?? CostArithmetic.floorDay(now)
        let first = try day("from", from) ?? last.addingTimeInterval(-6 * CostArithmetic.day)
        guard first <= last else { throw APIError.badRequest(field: "from", "must be on or before to (\(CostArithmetic.dayName(last)))") }
        let days = Int((last.timeIntervalSince(first) / CostArithmetic.day).rounded()) + 1
        guard days <= maximumDays else {
            throw APIError.badRequest(field: "from", "the range is \(days) days; ask for at most \(maximumDays) days at a time")
        }
        var grouping = CostReport.Grouping.day
        if let group {
            guard let value = CostReport.Grouping(rawValue: group) else {
                throw APIError.badRequest(field: "group", "expected day or job; got '\(group)'")
            }
            grouping = value
        }
        var csv: Bool?
        switch format {
        case nil: csv = nil
        case "csv"?: csv = true
        case "json"?: csv = false
        case let other?: throw APIError.badRequest(field: "format", "expected csv or json; got '\(other)'")
        }
        return Query(from: first, to: last, group: grouping, csv: csv)
    }
}

/// The report as CSV: a header row, then one row per day or per job; the rows add up to the JSON totals.
enum CostCSV {
    static func text(_ report: CostReport) -> String {
        var lines: [String] = []
        switch report.group {
        case .day:
            lines.append("day,jobs_completed,spend_usd,booting_usd,idle_usd,busy_usd,stopped_usd,vastai_usd,fal_usd,fal_equivalent_usd,saving_usd")
            for day in report.days {
                let state = day.spendByState
                lines.append(
                    [day.day, String(day.jobsCompleted)].joined(separator: ",") + ","
                        + [
                            day.spendUSD, state.booting, state.idle, state.busy, state.stopped, day.spendByProvider["vastai"] ?? 0,
                            day.spendByProvider["fal"] ?? 0, day.falEquivalentUSD, day.savingUSD,
                        ].map(money).joined(separator: ",")
                )
            }
        case .job:
            lines.append(
                "job_id,day,provider,status,instance_id,gpu,dollars_per_hour,execution_seconds,direct_cost_usd,loaded_cost_usd,video_seconds,resolution,fal_equivalent_usd"
            )
            for job in report.jobs {
                lines.append(
                    [
                        field(job.jobID), job.day, field(job.provider), field(job.status), field(job.instanceID ?? ""), field(job.gpu ?? ""),
                        job.dollarsPerHour.map(money) ?? "", String(format: "%.3f", job.executionSeconds), money(job.directCostUSD),
                        money(job.loadedCostUSD), job.videoSeconds.map { String(format: "%.4f", $0) } ?? "", field(job.resolution ?? ""),
                        job.falEquivalentUSD.map(money) ?? "",
                    ].joined(separator: ",")
                )
            }
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// Six decimals: the rows of a month still add up to the totals to the cent.
    static func money(_ value: Double) -> String { String(format: "%.6f", value) }

    /// RFC 4180 quoting; a leading =, +, - or @ is prefixed with ' so that a spreadsheet does not run it as a formula.
    static func field(_ text: String) -> String {
        var value = text
        if let first = value.first, "=+-@".contains(first) { value = "'" + value }
        guard value.contains(where: { ",\"\r\n".contains($0) }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
