import Foundation
import SwarmCore

/// vast's offer query (vastai.md §1.3) applied to emulated offers: `field → {op: value}` with `eq`, `neq`, `gt`,
/// `gte`, `lt`, `lte`, `in`, `notin`/`nin`. A filter on a field the offer record lacks excludes the offer.
enum OfferQuery {
    /// Top-level keys that are not filters.
    static let controlKeys: Set<String> = ["order", "type", "limit", "allocated_storage", "disable_bundling"]

    static func matches(_ offer: JSONValue, _ query: [String: JSONValue]) -> Bool {
        for (field, condition) in query where !controlKeys.contains(field) {
            guard let operations = condition.objectValue else { continue }
            let value = offer[field] ?? nil
            for (operation, operand) in operations where !holds(value, operation, operand) {
                return false
            }
        }
        return true
    }

    private static func holds(_ value: JSONValue, _ operation: String, _ operand: JSONValue) -> Bool {
        switch operation {
        case "eq": return equal(value, operand)
        case "neq": return !equal(value, operand)
        case "in": return operand.arrayValue?.contains { equal(value, $0) } ?? false
        case "notin", "nin": return !(operand.arrayValue?.contains { equal(value, $0) } ?? false)
        case "gt", "gte", "lt", "lte":
            guard let left = value.doubleValue, let right = operand.doubleValue else { return false }
            switch operation {
            case "gt": return left > right
            case "gte": return left >= right
            case "lt": return left < right
            default: return left <= right
            }
        default:
            return false
        }
    }

    /// Numbers compare by value (12 == 12.0); text without case, as vast's `gpu_name` matching does.
    private static func equal(_ left: JSONValue, _ right: JSONValue) -> Bool {
        if let a = left.doubleValue, let b = right.doubleValue { return a == b }
        if let a = left.stringValue, let b = right.stringValue { return a.caseInsensitiveCompare(b) == .orderedSame }
        return left == right
    }

    /// `order: [[field, "asc"|"desc"], …]`; offers without the field go last.
    static func sorted(_ offers: [JSONValue], order: JSONValue?) -> [JSONValue] {
        let keys: [(String, Bool)] = (order?.arrayValue ?? []).compactMap { entry in
            guard let pair = entry.arrayValue, let field = pair.first?.stringValue else { return nil }
            return (field, pair.count < 2 || pair[1].stringValue != "desc")
        }
        guard !keys.isEmpty else { return offers }
        return offers.sorted { a, b in
            for (field, ascending) in keys {
                let x = a[field]?.doubleValue ?? .infinity
                let y = b[field]?.doubleValue ?? .infinity
                if x != y { return ascending ? x < y : x > y }
            }
            return false
        }
    }
}

extension VastAIEmulator {
    /// An offer record shaped like vast's (§1.4): floats where vast sends floats (`cuda_max_good`, `dph_total`,
    /// `inet_down`), ints where it sends ints, a free-text location.
    public static func sampleOffer(
        id: Int,
        machineID: Int,
        gpuName: String = "RTX 5090",
        numGPUs: Int = 1,
        gpuRAMMB: Int = 32_607,
        cudaMaxGood: Double = 12.9,
        dphTotal: Double = 0.6,
        inetDownMbps: Double = 800,
        inetDownCostPerGB: Double = 0.002,
        diskSpaceGB: Double = 300,
        reliability: Double = 0.99,
        directPortCount: Int = 64,
        verification: String = "verified",
        geolocation: String = "Washington, US",
        durationDays: Double = 30
    ) -> JSONValue {
        [
            "id": .int(id), "ask_contract_id": .int(id), "bundle_id": .int(id + 7), "machine_id": .int(machineID),
            "host_id": .int(machineID / 10), "hostname": nil,
            "gpu_name": .string(gpuName), "num_gpus": .int(numGPUs), "gpu_ram": .int(gpuRAMMB), "gpu_total_ram": .int(gpuRAMMB * numGPUs),
            "gpu_arch": "nvidia", "compute_cap": 1200, "cuda_max_good": .double(cudaMaxGood), "driver_version": "575.64.03",
            "driver_vers": 575_064_003, "cpu_cores_effective": 16.0, "cpu_ram": 128_000,
            "disk_space": .double(diskSpaceGB), "disk_bw": 2800.5,
            "inet_down": .double(inetDownMbps), "inet_up": .double(inetDownMbps / 2), "inet_down_cost": .double(inetDownCostPerGB),
            "inet_up_cost": .double(inetDownCostPerGB), "direct_port_count": .int(directPortCount),
            "dph_base": .double(dphTotal * 0.9), "dph_total": .double(dphTotal), "storage_cost": 0.15, "min_bid": .double(dphTotal / 2),
            "reliability": .double(reliability), "reliability2": .double(reliability), "verification": .string(verification),
            "verified": .bool(verification == "verified"), "rentable": true, "rented": false, "external": false,
            "duration": .double(durationDays * 86_400), "geolocation": .string(geolocation), "score": 180.3,
            "public_ipaddr": "203.0.113.42", "static_ip": false,
        ]
    }

    /// A small market: two good RTX 5090 hosts, a cheap slow one, an old-driver one, an RTX 4090.
    public static let defaultOffers: [JSONValue] = [
        sampleOffer(id: 1001, machineID: 41_872, dphTotal: 0.62, inetDownMbps: 900),
        sampleOffer(id: 1002, machineID: 41_873, dphTotal: 0.58, inetDownMbps: 120, geolocation: "Ontario, CA"),
        sampleOffer(id: 1003, machineID: 41_874, cudaMaxGood: 12.4, dphTotal: 0.45, inetDownMbps: 1200),
        sampleOffer(id: 1004, machineID: 41_875, dphTotal: 0.7, inetDownMbps: 2000, geolocation: "Bavaria, DE"),
        sampleOffer(id: 1005, machineID: 41_876, gpuName: "RTX 4090", gpuRAMMB: 24_564, cudaMaxGood: 12.8, dphTotal: 0.35, inetDownMbps: 600),
    ]
}
