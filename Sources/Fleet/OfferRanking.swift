import Foundation
import SwarmCore
import VastAI

/// The bytes a new instance downloads before it can work: the image plus the models.
public struct DownloadEstimate: Sendable, Hashable {
    public var imageBytes: Int64
    public var modelBytes: Int64
    public var totalBytes: Int64 { imageBytes + modelBytes }

    /// builder/README.md expects the worker image at roughly 15 GB.
    public static let defaultImageBytes: Int64 = 15_000_000_000

    public init(imageBytes: Int64 = DownloadEstimate.defaultImageBytes, modelBytes: Int64) {
        self.imageBytes = imageBytes
        self.modelBytes = modelBytes
    }

    /// `--download-gb N`: the whole download, decimal GB.
    public init(totalGB: Double) {
        self.init(imageBytes: Int64(totalGB * 1e9), modelBytes: 0)
    }

    /// The image estimate plus the sum of `size_bytes` in `builder/models.json`.
    public init(imageBytes: Int64 = DownloadEstimate.defaultImageBytes, modelsManifest data: Data) throws(ModelsManifestError) {
        guard let models = JSONValue.parse(data)?["models"]?.arrayValue else {
            throw ModelsManifestError(message: "not a models manifest: no \"models\" list")
        }
        var sum: Int64 = 0
        for (index, model) in models.enumerated() {
            guard let size = model["size_bytes"]?.doubleValue, size >= 0 else {
                throw ModelsManifestError(message: "model \(index) (\(model["name"]?.stringValue ?? "unnamed")) has no size_bytes")
            }
            sum += Int64(size)
        }
        self.init(imageBytes: imageBytes, modelBytes: sum)
    }
}

public struct ModelsManifestError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { "models manifest: \(message)" }
}

/// The expected cost of an offer's first minutes (the window), which is what choosing badly costs:
/// compute for the window, plus the download billed per GB, plus the time the pull takes billed at the hourly price.
public struct CostEstimate: Sendable, Hashable, Codable {
    /// `dph_total` × window.
    public var compute: Double
    /// Download GB × `inet_down_cost`.
    public var download: Double
    /// Seconds the download takes at `inet_down`.
    public var pullSeconds: Double
    /// `pullSeconds` priced at `dph_total`.
    public var pull: Double

    public var total: Double { compute + download + pull }

    /// - Parameters:
    ///   - bytes: what the instance downloads.
    ///   - window: the compute period counted (10 minutes).
    /// - Returns: nil when the offer lacks a price or a download speed, since it cannot be compared.
    public init?(offer: Offer, bytes: Int64, window: Duration = .seconds(600)) {
        guard let dph = offer.dphTotal, let mbps = offer.inetDownMbps, mbps > 0 else { return nil }
        let gigabytes = Double(bytes) / 1e9
        compute = dph * window.seconds / 3600
        // A missing inet_down_cost is taken as free: hosts that charge for bandwidth report it.
        download = gigabytes * (offer.inetDownCostPerGB ?? 0)
        pullSeconds = Double(bytes) * 8 / (mbps * 1e6)
        pull = dph * pullSeconds / 3600
    }
}

/// An offer that passed the filter, with its estimate.
public struct RankedOffer: Sendable, Hashable {
    public var offer: Offer
    public var cost: CostEstimate

    public init(offer: Offer, cost: CostEstimate) {
        self.offer = offer
        self.cost = cost
    }
}

/// Offers ranked by `CostEstimate.total`, cheapest first, and the ones left out with why.
public struct OfferRanking: Sendable {
    public var ranked: [RankedOffer]
    public var rejected: [(offer: Offer, reasons: [OfferRejection])]

    public init(offers: [Offer], filter: OfferFilter, download: DownloadEstimate, window: Duration = .seconds(600)) {
        var ranked: [RankedOffer] = []
        var rejected: [(offer: Offer, reasons: [OfferRejection])] = []
        for offer in offers {
            var reasons = filter.rejections(of: offer)
            let cost = CostEstimate(offer: offer, bytes: download.totalBytes, window: window)
            if cost == nil { reasons.append(OfferRejection(filter: "dph_total", description: "no price or download speed")) }
            if let cost, reasons.isEmpty {
                ranked.append(RankedOffer(offer: offer, cost: cost))
            } else {
                rejected.append((offer, reasons))
            }
        }
        // Ties go to the lower hourly price (it matters after the first minutes), then to the older offer id.
        self.ranked = ranked.sorted {
            ($0.cost.total, $0.offer.dphTotal ?? 0, $0.offer.id) < ($1.cost.total, $1.offer.dphTotal ?? 0, $1.offer.id)
        }
        self.rejected = rejected
    }

    public var best: RankedOffer? { ranked.first }

    /// "12 of 12 offers left out: 7 cuda_max_good, 5 inet_down": the most common reasons, for an operator
    /// wondering why nothing was rented.
    public var rejectionSummary: String {
        var counts: [String: Int] = [:]
        for (_, reasons) in rejected {
            for reason in Set(reasons.map(\.filter)) { counts[reason, default: 0] += 1 }
        }
        let parts = counts.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { "\($0.value) \($0.key)" }
        return "\(rejected.count) of \(ranked.count + rejected.count) offers left out" + (parts.isEmpty ? "" : ": " + parts.joined(separator: ", "))
    }
}
