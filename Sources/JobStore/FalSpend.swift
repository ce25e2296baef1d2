import Foundation
import GRDB

/// The spill-over budget's ledger in both databases, through the SQL they share (`fleetQuery`).
extension FleetTables {
    func readFalSpend(day: String) async throws(JobStoreError) -> Double {
        let rows = try await fleetQuery("read fal.ai spend", "SELECT dollars FROM fal_spend WHERE day = $1", [.text(day)], columns: [.real])
        return rows.first?.first?.double ?? 0
    }

}

/// One statement: the row's lock (PostgreSQL) or the single writer (SQLite) makes check-and-add atomic. A day's first
/// spend is checked against the budget before the insert.
let reserveFalSpendSQL = """
    INSERT INTO fal_spend (day, dollars) VALUES ($1, $2)
    ON CONFLICT (day) DO UPDATE SET dollars = fal_spend.dollars + excluded.dollars
    WHERE fal_spend.dollars + excluded.dollars <= $3 RETURNING dollars
    """

/// A refund (negative amount) always applies.
func falSpendLimit(dollars: Double, budget: Double) -> Double {
    dollars < 0 ? Double.greatestFiniteMagnitude : budget
}

extension SQLiteJobStore {
    public func falSpend(day: String) async throws(JobStoreError) -> Double { try await readFalSpend(day: day) }
    public func reserveFalSpend(day: String, dollars: Double, budget: Double) async throws(JobStoreError) -> Bool {
        let limit = falSpendLimit(dollars: dollars, budget: budget)
        guard dollars <= limit else { return false }
        return try await write("reserve fal.ai spend") { db in
            try Double.fetchOne(db, sql: reserveFalSpendSQL.replacingOccurrences(of: "$", with: "?"), arguments: [day, dollars, limit]) != nil
        }
    }
}

extension PostgresJobStore {
    public func falSpend(day: String) async throws(JobStoreError) -> Double { try await readFalSpend(day: day) }
    public func reserveFalSpend(day: String, dollars: Double, budget: Double) async throws(JobStoreError) -> Bool {
        let limit = falSpendLimit(dollars: dollars, budget: budget)
        guard dollars <= limit else { return false }
        let rows = try await fleetQuery("reserve fal.ai spend", reserveFalSpendSQL, [.text(day), .real(dollars), .real(limit)], columns: [.real])
        return !rows.isEmpty
    }
}
