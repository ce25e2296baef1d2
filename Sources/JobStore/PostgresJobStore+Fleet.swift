import PostgresNIO

extension PostgresJobStore: FleetTables {
    func fleetExecute(_ operation: String, _ sql: String, _ values: [FleetValue]) async throws(JobStoreError) {
        let query = PostgresQuery(unsafeSQL: sql, binds: Self.fleetBindings(values))
        _ = try await timed(operation) { try await self.client.query(query, logger: self.logger).collect().count }
    }

    func fleetQuery(
        _ operation: String,
        _ sql: String,
        _ values: [FleetValue],
        columns: [FleetValue.Kind]
    ) async throws(JobStoreError) -> [[FleetValue]] {
        let query = PostgresQuery(unsafeSQL: sql, binds: Self.fleetBindings(values))
        return try await timed(operation) {
            var rows: [[FleetValue]] = []
            for try await row in try await self.client.query(query, logger: self.logger) {
                let cells = row.makeRandomAccess()
                rows.append(
                    try columns.indices.map { index in
                        switch columns[index] {
                        case .integer: FleetValue(try cells[index].decode(Int64?.self).map(Int.init))
                        case .real: FleetValue(try cells[index].decode(Double?.self))
                        case .text: FleetValue(try cells[index].decode(String?.self))
                        }
                    }
                )
            }
            return rows
        }
    }

    private static func fleetBindings(_ values: [FleetValue]) -> PostgresBindings {
        var binds = PostgresBindings()
        for value in values {
            switch value {
            case .integer(let number): binds.append(number)
            case .real(let number): binds.append(number)
            case .text(let text): binds.append(text)
            case .null: binds.appendNull()
            }
        }
        return binds
    }
}
