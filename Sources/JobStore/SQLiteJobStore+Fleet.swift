import Foundation
import GRDB

extension SQLiteJobStore: FleetTables {
    // SQLite reads `?1` as the first parameter, which is what `$1` means to PostgreSQL.
    func fleetExecute(_ operation: String, _ sql: String, _ values: [ColumnValue]) async throws(JobStoreError) {
        let arguments = StatementArguments(values)
        try await write(operation) { db in try db.execute(sql: sql.replacingOccurrences(of: "$", with: "?"), arguments: arguments) }
    }

    func fleetQuery(
        _ operation: String,
        _ sql: String,
        _ values: [ColumnValue],
        columns: [ColumnValue.Kind]
    ) async throws(JobStoreError) -> [[ColumnValue]] {
        let arguments = StatementArguments(values)
        return try await read(operation) { db in
            try Row.fetchAll(db, sql: sql.replacingOccurrences(of: "$", with: "?"), arguments: arguments).map { row in
                columns.indices.map { index in ColumnValue(row[index] as DatabaseValue, as: columns[index]) }
            }
        }
    }
}

extension ColumnValue {
    /// SQLite keeps whichever storage class a value came in with, so numbers are converted to the column's kind.
    fileprivate init(_ value: DatabaseValue, as kind: Kind) {
        switch (value.storage, kind) {
        case (.int64(let number), .integer): self = .integer(number)
        case (.int64(let number), .real): self = .real(Double(number))
        case (.double(let number), .real): self = .real(number)
        case (.double(let number), .integer): self = .integer(Int64(number))
        case (.string(let text), .text): self = .text(text)
        case (_, .integer): self = .integer(nil)
        case (_, .real): self = .real(nil)
        case (_, .text): self = .text(nil)
        }
    }
}
