import GRDB
import GRDBSQLite

/// SQLite's C API for the statements every submit, take and result runs, on statements GRDB prepared and caches.
/// GRDB's generic path (`StatementArguments`, `Row`, per-statement observation bookkeeping) cost more on the one
/// writer than SQLite's own work for those statements; the writer is the one part of a request that cannot run in
/// parallel. These statements never begin or end a transaction, which is what GRDB's bookkeeping tracks.
extension Statement {
    /// Runs the statement to its end with `values` bound to its parameters 1...n.
    func run(_ values: [ColumnValue]) throws {
        try bind(values)
        defer { sqlite3_reset(sqliteStatement) }
        while true {
            switch sqlite3_step(sqliteStatement) {
            case SQLITE_DONE: return
            case SQLITE_ROW: continue
            case let code: throw failure(code)
            }
        }
    }

    /// Runs the statement with `values` bound and reads each row it answers with `read`.
    func rows<T>(_ values: [ColumnValue], _ read: (ColumnReader) throws -> T) throws -> [T] {
        try bind(values)
        defer { sqlite3_reset(sqliteStatement) }
        var rows: [T] = []
        while true {
            switch sqlite3_step(sqliteStatement) {
            case SQLITE_DONE: return rows
            case SQLITE_ROW: rows.append(try read(ColumnReader(statement: sqliteStatement)))
            case let code: throw failure(code)
            }
        }
    }

    private func bind(_ values: [ColumnValue]) throws {
        sqlite3_reset(sqliteStatement)
        // A parameter left unbound would keep the value of the statement's previous use.
        guard values.count == Int(sqlite3_bind_parameter_count(sqliteStatement)) else {
            throw DatabaseError(
                resultCode: .SQLITE_MISUSE,
                message: "\(values.count) values for \(sqlite3_bind_parameter_count(sqliteStatement)) parameters",
                sql: sqliteStatement.sql
            )
        }
        for (offset, value) in values.enumerated() {
            let index = CInt(offset + 1)
            let code: CInt =
                switch value {
                case .text(let text?): bindText(text, at: index)
                case .integer(let number?): sqlite3_bind_int64(sqliteStatement, index, number)
                case .boolean(let flag): sqlite3_bind_int64(sqliteStatement, index, flag ? 1 : 0)
                case .real(let number?): sqlite3_bind_double(sqliteStatement, index, number)
                case .text(nil), .integer(nil), .real(nil): sqlite3_bind_null(sqliteStatement, index)
                }
            guard code == SQLITE_OK else { throw failure(code) }
        }
    }

    /// With its length in bytes: a text may hold NUL characters (a worker's error message can), where a C string ends.
    private func bindText(_ text: String, at index: CInt) -> CInt {
        var text = text
        return text.withUTF8 { bytes in
            // An empty buffer has no address, and a null pointer would bind SQL NULL instead of ''.
            guard let start = bytes.baseAddress, !bytes.isEmpty else { return sqlite3_bind_text(sqliteStatement, index, "", 0, sqliteTransient) }
            return start.withMemoryRebound(to: CChar.self, capacity: bytes.count) { chars in
                sqlite3_bind_text(sqliteStatement, index, chars, CInt(bytes.count), sqliteTransient)
            }
        }
    }

    /// The error as GRDB reports it, so callers tell constraint and busy errors apart the same way.
    private func failure(_ code: CInt) -> DatabaseError {
        let connection = sqlite3_db_handle(sqliteStatement)
        return DatabaseError(
            resultCode: ResultCode(rawValue: sqlite3_extended_errcode(connection)),
            message: String(cString: sqlite3_errmsg(connection)),
            sql: sqliteStatement.sql
        )
    }
}

/// SQLITE_TRANSIENT: SQLite copies a bound text before the call returns, so Swift's temporary C string may go.
private let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// The current row of a stepping statement, read by column index. A value of the wrong storage class, or a null
/// where the column must hold one, throws rather than being converted, as GRDB's decoding does.
struct ColumnReader {
    let statement: SQLiteStatement

    func text(_ index: Int) throws -> String {
        try required(index, "text", optionalText)
    }

    func optionalText(_ index: Int) throws -> String? {
        try value(index, SQLITE_TEXT, "text") { column in
            sqlite3_column_text(statement, column).map { bytes in
                String(decoding: UnsafeBufferPointer(start: bytes, count: Int(sqlite3_column_bytes(statement, column))), as: UTF8.self)
            }
        }
    }

    func integer(_ index: Int) throws -> Int64 {
        try required(index, "integer", optionalInteger)
    }

    func optionalInteger(_ index: Int) throws -> Int64? {
        try value(index, SQLITE_INTEGER, "integer") { sqlite3_column_int64(statement, $0) }
    }

    /// SQLite stores a REAL that has no fraction as an integer when asked to; both read as a Double.
    func optionalReal(_ index: Int) throws -> Double? {
        if sqlite3_column_type(statement, CInt(index)) == SQLITE_INTEGER { return try optionalInteger(index).map(Double.init) }
        return try value(index, SQLITE_FLOAT, "real") { sqlite3_column_double(statement, $0) }
    }

    func boolean(_ index: Int) throws -> Bool {
        try integer(index) != 0
    }

    private func required<T>(_ index: Int, _ expected: String, _ read: (Int) throws -> T?) throws -> T {
        guard let value = try read(index) else { throw mismatch(index, expected) }
        return value
    }

    /// nil for a null; `read` for a value of `storageClass`; an error for any other storage class.
    private func value<T>(_ index: Int, _ storageClass: CInt, _ expected: String, _ read: (CInt) -> T?) throws -> T? {
        let column = CInt(index)
        switch sqlite3_column_type(statement, column) {
        case SQLITE_NULL: return nil
        case storageClass: return read(column)
        default: throw mismatch(index, expected)
        }
    }

    private func mismatch(_ index: Int, _ expected: String) -> DatabaseError {
        let name = String(cString: sqlite3_column_name(statement, CInt(index)))
        return DatabaseError(resultCode: .SQLITE_MISMATCH, message: "column \(name) does not hold \(expected)", sql: statement.sql)
    }
}

extension SQLiteStatement {
    /// The statement's text, for errors only: GRDB's `Statement.sql` trims it character by character on every call.
    fileprivate var sql: String { String(cString: sqlite3_sql(self)) }
}
