import Foundation
import SwarmCore

/// Jobs for `swarmctl submit --batch FILE`: JSON lines or CSV, each record one job, turned into submit bodies.
public enum BatchFile {
    public enum Format: Sendable {
        /// One JSON object per line: a submit body (`{"input": {...}, "webhook": ...}`) or just the input object.
        case jsonLines
        /// A header row of input field names, then one job per row; numbers and true/false become JSON values.
        case csv

        /// `.csv` files are CSV; anything else is read as JSON lines.
        public init(path: String) {
            self = path.lowercased().hasSuffix(".csv") ? .csv : .jsonLines
        }
    }

    public static func jobs(from text: String, format: Format) throws(BatchFileError) -> [JSONValue] {
        switch format {
        case .jsonLines: return try jsonLines(text)
        case .csv: return try csv(text)
        }
    }

    /// A submit body for `value`: kept as is when it already has `input`, else wrapped as `{"input": value}`
    /// (the SDK's rule for `Endpoint.run`).
    public static func submitBody(_ value: JSONValue) -> JSONValue {
        if case .object(let fields) = value, let input = fields["input"], !input.isNull { return value }
        return ["input": value]
    }

    private static func jsonLines(_ text: String) throws(BatchFileError) -> [JSONValue] {
        var jobs: [JSONValue] = []
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            guard let value = JSONValue.parse(Data(trimmed.utf8)), case .object = value else {
                throw BatchFileError(line: index + 1, problem: "not a JSON object; each line must be {\"input\": {...}} or an input object")
            }
            jobs.append(submitBody(value))
        }
        return jobs
    }

    private static func csv(_ text: String) throws(BatchFileError) -> [JSONValue] {
        let rows = try parseCSV(text)
        guard let header = rows.first else { return [] }
        let names = header.map { $0.trimmingCharacters(in: .whitespaces) }
        if let blank = names.firstIndex(where: \.isEmpty) {
            throw BatchFileError(line: 1, problem: "column \(blank + 1) of the header has no name")
        }
        var jobs: [JSONValue] = []
        for (offset, row) in rows.dropFirst().enumerated() where !(row.count == 1 && row[0].isEmpty) {
            guard row.count == names.count else {
                throw BatchFileError(line: offset + 2, problem: "has \(row.count) columns, the header has \(names.count)")
            }
            var input: [String: JSONValue] = [:]
            for (name, cell) in zip(names, row) where !cell.isEmpty { input[name] = typed(cell) }
            jobs.append(["input": .object(input)])
        }
        return jobs
    }

    /// A CSV cell as the JSON a person means: `20` a number, `true` a boolean, anything else text.
    private static func typed(_ cell: String) -> JSONValue {
        if let number = Int(cell) { return .int(number) }
        if let number = Double(cell), cell.contains(".") { return .double(number) }
        if cell == "true" || cell == "false" { return .bool(cell == "true") }
        return .string(cell)
    }

    /// RFC 4180: quoted cells may hold commas, newlines and doubled quotes.
    private static func parseCSV(_ text: String) throws(BatchFileError) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var cell = ""
        var quoted = false
        var line = 1
        func finishCharacter(_ character: Character) {
            switch character {
            case ",":
                row.append(cell)
                cell = ""
            case "\n", "\r\n":
                row.append(cell)
                rows.append(row)
                row = []
                cell = ""
                line += 1
            case "\r":
                break
            case "\"" where cell.isEmpty:
                quoted = true
            default:
                cell.append(character)
            }
        }

        var iterator = text.makeIterator()
        while let character = iterator.next() {
            if quoted {
                if character == "\"" {
                    if let next = iterator.next() {
                        if next == "\"" {
                            cell.append("\"")
                        } else {
                            quoted = false
                            finishCharacter(next)
                        }
                    } else {
                        quoted = false
                    }
                } else {
                    if character == "\n" { line += 1 }
                    cell.append(character)
                }
            } else {
                finishCharacter(character)
            }
        }
        if quoted { throw BatchFileError(line: line, problem: "a quoted cell is never closed") }
        if !cell.isEmpty || !row.isEmpty {
            row.append(cell)
            rows.append(row)
        }
        return rows
    }
}

public struct BatchFileError: Error, Sendable, CustomStringConvertible {
    public var line: Int
    public var problem: String
    public var description: String { "line \(line): \(problem)" }
}
