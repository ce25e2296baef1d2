import Fleet
import Foundation
import SwarmCore
import Testing
import VastAI
import VastAIEmulator

/// Filters as search query and as client-side check; the 10-minute cost score and the ranking it gives.
@Suite struct OfferChoiceTests {
    static func offer(
        id: Int,
        machineID: Int = 1,
        gpuName: String = "RTX 5090",
        cuda: Double = 12.9,
        dph: Double = 0.6,
        inetDown: Double = 800,
        inetDownCost: Double = 0,
        reliability: Double = 0.99,
        verification: String = "verified"
    ) -> Offer {
        Offer(
            json: VastAIEmulator.sampleOffer(
                id: id,
                machineID: machineID,
                gpuName: gpuName,
                cudaMaxGood: cuda,
                dphTotal: dph,
                inetDownMbps: inetDown,
                inetDownCostPerGB: inetDownCost,
                reliability: reliability,
                verification: verification
            )
        )!
    }

    @Test func searchQueryMatchesTheContractExample() {
        let filter = OfferFilter(
            gpuNames: ["RTX_5090"],
            numGPUs: 1,
            minCUDA: 12.8,
            diskGB: 100,
            minReliability: 0.95,
            minInetDownMbps: 500,
            minDirectPorts: 8,
            maxDPH: 1.2,
            minDurationHours: 720,
            excludedMachineIDs: [9, 3],
            searchLimit: 50
        )
        let query = filter.searchQuery
        #expect(query["verified"] == ["eq": true])
        #expect(query["external"] == ["eq": false])
        #expect(query["rentable"] == ["eq": true])
        #expect(query["rented"] == ["eq": false])
        #expect(query["gpu_name"] == ["eq": "RTX 5090"])
        #expect(query["num_gpus"] == ["eq": 1])
        #expect(query["cuda_max_good"]?["gte"]?.doubleValue == 12.8)
        #expect(query["disk_space"]?["gte"]?.doubleValue == 100)
        #expect(query["reliability2"]?["gte"]?.doubleValue == 0.95)
        #expect(query["direct_port_count"] == ["gte": 8])
        #expect(query["inet_down"]?["gte"]?.doubleValue == 500)
        #expect(query["duration"]?["gte"]?.doubleValue == 2_592_000)
        #expect(query["dph_total"]?["lte"]?.doubleValue == 1.2)
        #expect(query["machine_id"] == ["notin": [3, 9]])
        #expect(query["order"] == [["dph_total", "asc"]])
        #expect(query["type"] == "on-demand")
        #expect(query["limit"] == 50)
        #expect(query["allocated_storage"]?.doubleValue == 100)

        let several = OfferFilter(gpuNames: ["RTX 5090", "RTX 4090"], numGPUs: nil, minGPURAMGB: 24, verifiedOnly: false, minDurationHours: nil)
        #expect(several.searchQuery["gpu_name"] == ["in": ["RTX 5090", "RTX 4090"]])
        #expect(several.searchQuery["gpu_ram"]?["gte"]?.doubleValue == 24_000)
        for absent in ["num_gpus", "verified", "duration", "dph_total", "machine_id"] {
            #expect(several.searchQuery.objectValue?.keys.contains(absent) == false, "\(absent)")
        }
    }

    @Test func filterRejectsOldCUDAExcludedMachinesAndMissingFields() throws {
        let filter = OfferFilter(gpuNames: ["rtx 5090"], maxDPH: 1.0, excludedMachineIDs: [77])
        #expect(filter.rejections(of: Self.offer(id: 1)).isEmpty)
        #expect(filter.rejections(of: Self.offer(id: 2, cuda: 12.4)).map(\.filter) == ["cuda_max_good"])
        #expect(filter.rejections(of: Self.offer(id: 2, cuda: 12.4)).first?.description == "cuda_max_good 12.4 < 12.8")
        #expect(filter.rejections(of: Self.offer(id: 3, machineID: 77)).map(\.filter) == ["machine_id"])
        #expect(filter.rejections(of: Self.offer(id: 4, gpuName: "RTX 4090")).map(\.filter) == ["gpu_name"])
        #expect(filter.rejections(of: Self.offer(id: 5, dph: 1.5)).map(\.filter) == ["dph_total"])
        #expect(filter.rejections(of: Self.offer(id: 6, inetDown: 50, reliability: 0.5)).map(\.filter) == ["reliability", "inet_down"])
        #expect(filter.rejections(of: Self.offer(id: 7, verification: "deverified")).map(\.description) == ["host deverified"])
        // A field the offer leaves out fails its filter.
        let bare = try #require(Offer(json: ["id": 8, "gpu_name": "RTX 5090", "num_gpus": 1, "dph_total": 0.5]))
        #expect(Set(filter.rejections(of: bare).map(\.filter)).isSuperset(of: ["cuda_max_good", "disk_space", "inet_down", "verified"]))
    }

    /// 45 GB to download. A: $0.50/h at 100 Mb/s. B: $0.60/h at 1000 Mb/s. C: $0.55/h at 1000 Mb/s with $0.01/GB.
    @Test func slowInternetLosesToSlightlyPricierFastHost() throws {
        let bytes: Int64 = 45_000_000_000
        let a = Self.offer(id: 1, dph: 0.50, inetDown: 100)
        let b = Self.offer(id: 2, dph: 0.60, inetDown: 1000)
        let c = Self.offer(id: 3, dph: 0.55, inetDown: 1000, inetDownCost: 0.01)

        let costA = try #require(CostEstimate(offer: a, bytes: bytes))
        #expect(abs(costA.compute - 0.50 / 6) < 1e-9)  // 10 minutes of $0.50/h
        #expect(abs(costA.pullSeconds - 3600) < 1e-9)  // 45e9 B × 8 / 100e6 b/s
        #expect(abs(costA.pull - 0.50) < 1e-9)  // one hour at $0.50/h
        #expect(costA.download == 0)
        #expect(abs(costA.total - 0.583_333_333) < 1e-6)

        let costB = try #require(CostEstimate(offer: b, bytes: bytes))
        #expect(abs(costB.compute - 0.1) < 1e-9)
        #expect(abs(costB.pullSeconds - 360) < 1e-9)
        #expect(abs(costB.pull - 0.06) < 1e-9)
        #expect(abs(costB.total - 0.16) < 1e-9)

        let costC = try #require(CostEstimate(offer: c, bytes: bytes))
        #expect(abs(costC.download - 0.45) < 1e-9)  // 45 GB × $0.01
        #expect(abs(costC.total - (0.55 / 6 + 0.055 + 0.45)) < 1e-9)

        let ranking = OfferRanking(offers: [a, b, c], filter: OfferFilter(minInetDownMbps: 0), download: DownloadEstimate(totalGB: 45))
        #expect(ranking.ranked.map(\.offer.id) == [2, 1, 3])
        #expect(ranking.best?.offer.id == 2)
        #expect(ranking.rejected.isEmpty)
    }

    @Test func rankingLeavesOutFilteredOffersAndSaysWhy() {
        let offers = [Self.offer(id: 1, cuda: 12.2), Self.offer(id: 2, machineID: 5, cuda: 12.8), Self.offer(id: 3, cuda: 12.0, inetDown: 10)]
        let ranking = OfferRanking(offers: offers, filter: OfferFilter(excludedMachineIDs: [5]), download: DownloadEstimate(totalGB: 10))
        #expect(ranking.ranked.isEmpty)
        #expect(ranking.best == nil)
        #expect(ranking.rejectionSummary == "3 of 3 offers left out: 2 cuda_max_good, 1 inet_down, 1 machine_id")
    }

    @Test func downloadEstimateFromTheModelsManifest() throws {
        let manifest = Data(#"{"schema": 1, "models": [{"name": "a", "size_bytes": 9650000000}, {"name": "b", "size_bytes": 253815318.0}]}"#.utf8)
        let estimate = try DownloadEstimate(imageBytes: 15_000_000_000, modelsManifest: manifest)
        #expect(estimate.modelBytes == 9_903_815_318)
        #expect(estimate.totalBytes == 24_903_815_318)
        #expect(throws: ModelsManifestError.self) { try DownloadEstimate(modelsManifest: Data(#"{"models": [{"name": "x"}]}"#.utf8)) }
        #expect(DownloadEstimate(totalGB: 2.5).totalBytes == 2_500_000_000)

        // The repository's own manifest parses and holds tens of GB of models.
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let data = try Data(contentsOf: repository.appendingPathComponent("builder/models.json"))
        let real = try DownloadEstimate(modelsManifest: data)
        #expect(real.modelBytes > 10_000_000_000)
        #expect(real.imageBytes == DownloadEstimate.defaultImageBytes)
    }
}
