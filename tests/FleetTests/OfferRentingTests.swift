import Fleet
import Foundation
import SwarmCore
import Testing
import VastAI
import VastAIEmulator
import VastAITestSupport

@Suite struct OfferRentingTests {
    /// Default market, 48 GB to download: 1004 ($0.70/h, 2000 Mb/s) beats 1001 ($0.62/h, 900 Mb/s) and 1002
    /// ($0.58/h, 120 Mb/s); 1003 (CUDA 12.4) and 1005 (RTX 4090) are filtered out.
    @Test func theFleetRentsTheOfferTheFormulaRanksFirst() async throws {
        try await withVast(.init(nullAfterCreate: .zero)) { running, client in
            let filter = OfferFilter(gpuNames: ["RTX 5090"], minInetDownMbps: 100)
            let ranking = OfferRanking(
                offers: try await client.searchOffers(query: filter.searchQuery),
                filter: filter,
                download: DownloadEstimate(totalGB: 48)
            )
            #expect(ranking.ranked.map(\.offer.id) == [1004, 1001, 1002])
            let best = try #require(ranking.best)
            // 0.70 × 10/60 + 48 × 0.002 + (48e9 × 8 / 2000e6 s = 192 s) × 0.70 / 3600
            #expect(abs(best.cost.total - (0.7 / 6 + 0.096 + 192 * 0.7 / 3600)) < 1e-9)

            let actions = FleetPlanner(policy: FleetPolicy(labelPrefix: "swarm"), makeUnique: { "t1" })
                .plan(FleetObservation(now: Date(), members: [], offers: ranking.ranked))
            #expect(actions == [.create(offer: best, label: "swarm-t1")])
            let created = try await client.createInstance(
                offerID: best.offer.id,
                CreateInstanceRequest(source: .image("x"), diskGB: 100, label: "swarm-t1")
            )
            #expect(await running.emulator.instanceState(id: created.id)?.machineID == 41_875)
        }
    }
}
