import Foundation
import GRDB

extension SQLiteJobStore: FleetTables {
    // SQLite reads `?1` as the first parameter, which is what `$1` means to PostgreSQL.
    func fleetExecute(_ operation: String, _ sql: String, _ values: [FleetValue]) async throws(JobStoreError) {
        let arguments = StatementArguments(values.map(\.databaseValue))
        try await write(operation) { db in try db.execute(sql: sql.replacingOccurrences(of: "$", with: "?"), arguments: arguments) }
    }

    func fleetQuery(
        _ operation: String,
        _ sql: String,
        _ values: [FleetValue],
        columns: [FleetValue.Kind]
    ) async throws(JobStoreError) -> [[FleetValue]] {
        let arguments = StatementArguments(values.map(\.databaseValue))
        return try await read(operation) { db in
            try Row.fetchAll(db, sql: sql.replacingOccurrences(of: "$", with: "?"), arguments: arguments).map { row in
                columns.indices.map { index in FleetValue(row[index] as DatabaseValue, as: columns[index]) }
            }
        }
    }
}

extension FleetValue {
    fileprivate var databaseValue: DatabaseValue {
        switch self {
        case .integer(let value): value.databaseValue
        case .real(let value): value.databaseValue
        case .text(let value): value.databaseValue
        case .null: .null
        }
    }

    /// SQLite keeps whichever storage class a value came in with, so numbers are converted to the column's kind.
    fileprivate init(_ value: DatabaseValue, as kind: Kind) {
        switch (value.storage, kind) {
        case (.int64(let number), .integer): self = .integer(number)
        case (.int64(let number), .real): self = .real(Double(number))
        case (.double(let number), .real): self = .real(number)
        case (.double(let number), .integer): self = .integer(Int64(number))
        case (.string(let text), .text): self = .text(text)
        default: self = .null
        }
    }
}
