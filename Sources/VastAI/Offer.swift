import SwarmCore

/// One machine offer from `POST /api/v0/bundles/` (vastai.md §1.4): the fields offer choice reads, decoded loosely,
/// plus the whole record for anything else.
public struct Offer: Sendable, Hashable {
    /// The value for `PUT /asks/{id}/` (same as `ask_contract_id`).
    public var id: Int
    public var machineID: Int?
    public var hostID: Int?
    public var gpuName: String?
    public var numGPUs: Int?
    /// MB per GPU.
    public var gpuRAMMB: Double?
    /// Newest CUDA version the host's driver supports.
    public var cudaMaxGood: Double?
    public var driverVersion: String?
    public var computeCap: Int?
    /// GB available for the instance.
    public var diskSpaceGB: Double?
    /// 0–1; `reliability2` where present (what the search filters on), else `reliability`.
    public var reliability: Double?
    /// Mb/s.
    public var inetDownMbps: Double?
    public var inetUpMbps: Double?
    /// $ per GB downloaded.
    public var inetDownCostPerGB: Double?
    /// $ per hour including storage for the search's `allocated_storage`.
    public var dphTotal: Double?
    public var directPortCount: Int?
    /// `verified`, `unverified` or `deverified`.
    public var verification: String?
    /// The longest the host allows, seconds.
    public var durationSeconds: Double?
    /// Free text such as `"Washington, US"`.
    public var geolocation: String?
    /// The record as received.
    public var raw: [String: JSONValue]

    /// Decodes one offer record; nil when it has no usable id (such an offer cannot be rented).
    public init?(json: JSONValue) {
        guard let object = json.objectValue else { return nil }
        let fields = LooseFields(object)
        guard let id = fields.int("id") ?? fields.int("ask_contract_id") else { return nil }
        self.id = id
        machineID = fields.int("machine_id")
        hostID = fields.int("host_id")
        gpuName = fields.string("gpu_name")
        numGPUs = fields.int("num_gpus")
        gpuRAMMB = fields.double("gpu_ram")
        cudaMaxGood = fields.double("cuda_max_good")
        driverVersion = fields.string("driver_version")
        computeCap = fields.int("compute_cap")
        diskSpaceGB = fields.double("disk_space")
        reliability = fields.double("reliability2") ?? fields.double("reliability")
        inetDownMbps = fields.double("inet_down")
        inetUpMbps = fields.double("inet_up")
        inetDownCostPerGB = fields.double("inet_down_cost")
        dphTotal = fields.double("dph_total")
        directPortCount = fields.int("direct_port_count")
        verification =
            fields.string("verification")
            ?? fields.bool("verified").map { $0 ? "verified" : "unverified" }
        durationSeconds = fields.double("duration")
        geolocation = fields.string("geolocation")
        raw = object
    }

    public var isVerified: Bool { verification == "verified" }

    /// "1x RTX 5090" for tables and logs.
    public var gpuSummary: String {
        "\(numGPUs ?? 1)x \(gpuName ?? "unknown GPU")"
    }
}

/// The body of `POST /bundles/`: `{"offers": [...]}`. Records without an id are counted, not fatal.
struct OfferList {
    var offers: [Offer]
    var undecodable: Int

    init(json: JSONValue) throws(VastAIError) {
        guard let list = json["offers"] else {
            throw VastAIError(.unexpectedResponse, operation: "search offers", message: "the answer has no \"offers\" field")
        }
        let records: [JSONValue] =
            switch list {
            case .array(let items): items
            case .object: [list]
            default: []
            }
        offers = records.compactMap(Offer.init(json:))
        undecodable = records.count - offers.count
    }
}
