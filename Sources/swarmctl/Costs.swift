import ArgumentParser
import ControlPlane
import Foundation
import SwarmCore

struct Costs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What the jobs cost, against fal.ai's list price for the same videos.",
        discussion: "Reads GET /v2/{endpoint}/costs. Spend is instances (booting, idle, busy) plus jobs forwarded to fal.ai; UTC days."
    )
    @OptionGroup var target: ClientOptions
    @Option(help: "How far back: 7d (days) or 48h (hours), counted in whole UTC days up to today.") var since = "7d"
    @Option(help: "One row per day or per job (day, job).") var by = "day"
    @Flag(help: "Print the report as JSON.") var json = false

    func validate() throws {
        guard CostReport.Grouping(rawValue: by) != nil else { throw ValidationError("--by: expected day or job, got '\(by)'") }
        guard Self.span(since) != nil else { throw ValidationError("--since: expected a number of days or hours such as 7d or 48h, got '\(since)'") }
    }

    /// `7d` or `48h` as seconds.
    static func span(_ text: String) -> TimeInterval? {
        guard let unit = text.last, let count = Double(text.dropLast()), count >= 0 else { return nil }
        switch unit {
        case "d": return count * 86_400
        case "h": return count * 3_600
        default: return nil
        }
    }

    func run() async throws {
        let now = Date()
        let from = CostArithmetic.dayName(now.addingTimeInterval(-(Self.span(since) ?? 0)))
        let answer = try await target.client().costs(from: from, to: CostArithmetic.dayName(now), group: by)
        if json {
            print(answer.jsonString())
            return
        }
        let report = try JSONDecoder().decode(CostReport.self, from: Data(answer.jsonString().utf8))
        print(Self.table(report), terminator: "")
    }

    /// A table for a terminal: one row per day or job, then the totals.
    static func table(_ report: CostReport) -> String {
        func usd(_ value: Double?) -> String { value.map { String(format: "%.4f", $0) } ?? "-" }
        var rows: [[String]]
        switch report.group {
        case .day:
            rows = [["DAY", "JOBS", "SPEND $", "BOOT $", "IDLE $", "BUSY $", "FAL.AI $", "SAVING $"]]
            rows += report.days.map {
                [
                    $0.day, String($0.jobsCompleted), usd($0.spendUSD), usd($0.spendByState.booting), usd($0.spendByState.idle),
                    usd($0.spendByState.busy),
                    usd($0.falEquivalentUSD), usd($0.savingUSD),
                ]
            }
        case .job:
            rows = [["JOB", "DAY", "PROVIDER", "STATUS", "GPU", "SECONDS", "DIRECT $", "LOADED $", "FAL.AI $"]]
            rows += report.jobs.map {
                [
                    $0.jobID, $0.day, $0.provider, $0.status, $0.gpu ?? "-", String(format: "%.1f", $0.executionSeconds), usd($0.directCostUSD),
                    usd($0.loadedCostUSD), usd($0.falEquivalentUSD),
                ]
            }
        }
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        var text = rows.map { row in
            row.indices.map { column in
                let cell = row[column]
                let pad = String(repeating: " ", count: widths[column] - cell.count)
                return column == 0 || cell.first?.isLetter == true || cell == "-" ? cell + pad : pad + cell
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
        let totals = report.totals
        text += "\n\n\(report.from) to \(report.to): \(totals.jobsCompleted) jobs completed, spent $\(usd(totals.spendUSD)); "
        text += "fal.ai would have charged $\(usd(totals.falEquivalentUSD)); saving $\(usd(totals.savingUSD))\n"
        return text
    }
}
