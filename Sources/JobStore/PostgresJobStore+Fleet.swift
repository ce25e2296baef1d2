import PostgresNIO

extension PostgresJobStore: FleetTables {
    func fleetExecute(_ operation: String, _ sql: String, _ values: [ColumnValue]) async throws(JobStoreError) {
        let query = PostgresQuery(unsafeSQL: sql, binds: Self.bindings(values))
        _ = try await timed(operation) { try await self.client.query(query, logger: self.logger).collect().count }
    }

    func fleetQuery(
        _ operation: String,
        _ sql: String,
        _ values: [ColumnValue],
        columns: [ColumnValue.Kind]
    ) async throws(JobStoreError) -> [[ColumnValue]] {
        let query = PostgresQuery(unsafeSQL: sql, binds: Self.bindings(values))
        return try await timed(operation) {
            var rows: [[ColumnValue]] = []
            for try await row in try await self.client.query(query, logger: self.logger) {
                let cells = row.makeRandomAccess()
                rows.append(
                    try columns.indices.map { index in
                        switch columns[index] {
                        case .integer: .integer(try cells[index].decode(Int64?.self))
                        case .real: .real(try cells[index].decode(Double?.self))
                        case .text: .text(try cells[index].decode(String?.self))
                        }
                    }
                )
            }
            return rows
        }
    }

    private static func bindings(_ values: [ColumnValue]) -> PostgresBindings {
        var binds = PostgresBindings()
        append(values, to: &binds)
        return binds
    }
}
