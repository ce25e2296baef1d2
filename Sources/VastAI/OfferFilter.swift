import Foundation
import SwarmCore

/// What an offer must have to run a worker. It becomes the search query (vastai.md §1.3) and is checked again on
/// each offer received, because the search is not trusted to have applied every filter (and an emulator or a
/// changed API may not).
public struct OfferFilter: Sendable, Hashable {
    /// vast's spelling with spaces (`"RTX 5090"`); `_` is read as a space, like the CLI does. Empty: any GPU.
    public var gpuNames: [String]
    /// Exact GPU count; nil: any.
    public var numGPUs: Int?
    /// Per GPU, GB of 1000 MB (the CLI's conversion: vast's `gpu_ram` is MB).
    public var minGPURAMGB: Double?
    /// `cuda_max_good` floor: the image's CUDA version (12.8 for the worker image and Blackwell GPUs).
    public var minCUDA: Double
    /// The disk the instance gets; also `allocated_storage`, so `dph_total` includes that storage.
    public var diskGB: Double
    /// `reliability2` floor, 0–1.
    public var minReliability: Double
    /// `inet_down` floor, Mb/s.
    public var minInetDownMbps: Double
    /// `direct_port_count` floor: hosts with few forwardable ports are often behind a proxy and pull slowly.
    public var minDirectPorts: Int
    public var verifiedOnly: Bool
    /// `dph_total` cap, $/h; nil: none.
    public var maxDPH: Double?
    /// The shortest rental the host must allow, hours; a persistent worker should not land on an ending contract.
    public var minDurationHours: Double?
    /// Machines that failed us before.
    public var excludedMachineIDs: Set<Int>
    /// Offers asked of the search.
    public var searchLimit: Int

    public init(
        gpuNames: [String] = [],
        numGPUs: Int? = 1,
        minGPURAMGB: Double? = nil,
        minCUDA: Double = 12.8,
        diskGB: Double = 100,
        minReliability: Double = 0.95,
        minInetDownMbps: Double = 200,
        minDirectPorts: Int = 8,
        verifiedOnly: Bool = true,
        maxDPH: Double? = nil,
        minDurationHours: Double? = 24,
        excludedMachineIDs: Set<Int> = [],
        searchLimit: Int = 64
    ) {
        self.gpuNames = gpuNames.map(Self.vastSpelling).filter { !$0.isEmpty }
        self.numGPUs = numGPUs
        self.minGPURAMGB = minGPURAMGB
        self.minCUDA = minCUDA
        self.diskGB = diskGB
        self.minReliability = minReliability
        self.minInetDownMbps = minInetDownMbps
        self.minDirectPorts = minDirectPorts
        self.verifiedOnly = verifiedOnly
        self.maxDPH = maxDPH
        self.minDurationHours = minDurationHours
        self.excludedMachineIDs = excludedMachineIDs
        self.searchLimit = searchLimit
    }

    static func vastSpelling(_ name: String) -> String {
        name.replacingOccurrences(of: "_", with: " ").trimmingCharacters(in: .whitespaces)
    }

    /// The body of `POST /api/v0/bundles/`: on-demand offers, cheapest first, with the default filters the SDK adds
    /// (`rentable`, not `rented`, not `external`).
    public var searchQuery: JSONValue {
        var query: [String: JSONValue] = [
            "rentable": ["eq": true],
            "rented": ["eq": false],
            "external": ["eq": false],
            "cuda_max_good": ["gte": .double(minCUDA)],
            "disk_space": ["gte": .double(diskGB)],
            "reliability2": ["gte": .double(minReliability)],
            "inet_down": ["gte": .double(minInetDownMbps)],
            "direct_port_count": ["gte": .int(minDirectPorts)],
            "order": [["dph_total", "asc"]],
            "type": "on-demand",
            "limit": .int(searchLimit),
            "allocated_storage": .double(diskGB),
        ]
        if verifiedOnly { query["verified"] = ["eq": true] }
        switch gpuNames.count {
        case 0: break
        case 1: query["gpu_name"] = ["eq": .string(gpuNames[0])]
        default: query["gpu_name"] = ["in": .array(gpuNames.map(JSONValue.string))]
        }
        if let numGPUs { query["num_gpus"] = ["eq": .int(numGPUs)] }
        if let minGPURAMGB { query["gpu_ram"] = ["gte": .double(minGPURAMGB * 1000)] }
        if let maxDPH { query["dph_total"] = ["lte": .double(maxDPH)] }
        if let minDurationHours { query["duration"] = ["gte": .double(minDurationHours * 3600)] }
        if !excludedMachineIDs.isEmpty { query["machine_id"] = ["notin": .array(excludedMachineIDs.sorted().map(JSONValue.int))] }
        return .object(query)
    }

    /// Why this offer does not fit, one entry per failed filter; empty when it fits. A field the offer leaves
    /// out fails its filter: an unknown CUDA version is no better than an old one.
    public func rejections(of offer: Offer) -> [OfferRejection] {
        var reasons: [OfferRejection] = []
        func reject(_ filter: String, _ text: String) { reasons.append(OfferRejection(filter: filter, description: text)) }
        func atLeast(_ value: Double?, _ minimum: Double, _ name: String) {
            guard let value else { return reject(name, "no \(name)") }
            if value < minimum { reject(name, "\(name) \(Self.format(value)) < \(Self.format(minimum))") }
        }
        if !gpuNames.isEmpty, !gpuNames.contains(where: { $0.caseInsensitiveCompare(offer.gpuName ?? "") == .orderedSame }) {
            reject("gpu_name", "GPU \(offer.gpuName ?? "unknown") not in \(gpuNames.joined(separator: ", "))")
        }
        if let numGPUs, offer.numGPUs != numGPUs {
            reject("num_gpus", "\(offer.numGPUs.map(String.init) ?? "unknown") GPUs, not \(numGPUs)")
        }
        if let minGPURAMGB { atLeast(offer.gpuRAMMB, minGPURAMGB * 1000, "gpu_ram") }
        atLeast(offer.cudaMaxGood, minCUDA, "cuda_max_good")
        atLeast(offer.diskSpaceGB, diskGB, "disk_space")
        atLeast(offer.reliability, minReliability, "reliability")
        atLeast(offer.inetDownMbps, minInetDownMbps, "inet_down")
        atLeast(offer.directPortCount.map(Double.init), Double(minDirectPorts), "direct_port_count")
        if let minDurationHours { atLeast(offer.durationSeconds.map { $0 / 3600 }, minDurationHours, "duration_hours") }
        if verifiedOnly, !offer.isVerified { reject("verified", "host \(offer.verification ?? "not verified")") }
        if let maxDPH {
            if let price = offer.dphTotal {
                if price > maxDPH { reject("dph_total", "$\(Self.format(price))/h > $\(Self.format(maxDPH))/h") }
            } else {
                reject("dph_total", "no dph_total")
            }
        }
        if let machine = offer.machineID, excludedMachineIDs.contains(machine) {
            reject("machine_id", "machine \(machine) failed before")
        }
        return reasons
    }

    static func format(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e12 ? String(Int(value)) : String(format: "%.3g", value)
    }
}

/// One filter an offer failed: `filter` names it (for counting), `description` says by how much.
public struct OfferRejection: Sendable, Hashable, CustomStringConvertible {
    public var filter: String
    public var description: String

    public init(filter: String, description: String) {
        self.filter = filter
        self.description = description
    }
}
