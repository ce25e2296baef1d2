import ControlPlane
import Foundation
import Testing

@Suite struct SpillDecisionTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var name: String
        var age: Int
        var idle = false
        var position = 0
        var estimate: Int? = nil
        var spent = 0.0
        var budget = 20.0
        var price: Double? = 0.41
        var expected: SpillDecision
        var testDescription: String { name }
    }

    static let rows: [Row] = [
        Row(name: "young job, no worker", age: 30, expected: .wait),
        Row(name: "waited spill-after, no worker", age: 120, expected: .forward),
        Row(name: "waited longer, no worker", age: 600, expected: .forward),
        Row(name: "idle READY worker takes the head of the queue", age: 600, idle: true, expected: .wait),
        Row(name: "idle worker busy with the head; this one is behind", age: 600, idle: true, position: 3, expected: .forward),
        Row(name: "estimate says the fleet comes in time", age: 30, estimate: 60, expected: .wait),
        Row(name: "estimate says it would wait too long", age: 30, estimate: 100, expected: .forward),
        Row(name: "budget has room for exactly this job", age: 120, spent: 19.59, expected: .forward),
        Row(name: "budget exhausted", age: 120, spent: 19.8, expected: .budgetExhausted(spent: 19.8, budget: 20, price: 0.41)),
        Row(name: "zero budget", age: 120, budget: 0, expected: .budgetExhausted(spent: 0, budget: 0, price: 0.41)),
        Row(name: "cannot be forwarded (no fal price)", age: 600, price: nil, expected: .wait),
    ]

    @Test(arguments: rows) func decides(_ row: Row) {
        let decision = SpillDecision.decide(
            .init(
                age: .seconds(row.age),
                idleReadyWorker: row.idle,
                queuePosition: row.position,
                estimatedWait: row.estimate.map { .seconds($0) },
                spentToday: row.spent,
                budgetPerDay: row.budget,
                price: row.price,
                spillAfter: .seconds(120)
            )
        )
        #expect(decision == row.expected)
    }

    @Test func daysAreUTC() {
        #expect(SpillDecision.day(Date(timeIntervalSince1970: 1_796_601_599)) == "2026-12-06")
        #expect(SpillDecision.day(Date(timeIntervalSince1970: 1_796_601_600)) == "2026-12-07")
    }
}
