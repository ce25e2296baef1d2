import Foundation
import SwarmCore

/// One rented instance from `GET /instances/{id}/` or the list (vastai.md §1.6), decoded loosely.
public struct Instance: Sendable, Hashable {
    public var id: Int
    public var machineID: Int?
    public var hostID: Int?
    public var label: String?
    /// The container's state (§2.1); nil while the contract is being set up.
    public var actualStatus: Status?
    /// What was asked for: `running`, `stopped` or `frozen`.
    public var intendedStatus: String?
    /// The machine contract's allocation: `running`, `stopped` or `unloaded` (after destroy).
    public var curState: String?
    /// Docker layer states while loading, or an error text; its wording is not documented.
    public var statusMessage: String?
    public var imageUUID: String?
    public var templateHashID: String?
    public var publicIPAddress: String?
    public var sshHost: String?
    public var sshPort: Int?
    /// Container port key (`"7865/tcp"`) → host bindings.
    public var ports: [String: [PortBinding]]
    /// `extra_env` as pairs, in the order received.
    public var extraEnv: [(String, String)]
    public var gpuName: String?
    public var numGPUs: Int?
    public var cudaMaxGood: Double?
    public var dphTotal: Double?
    /// Epoch seconds.
    public var startDate: Double?
    public var uptimeMinutes: Double?
    public var diskSpaceGB: Double?
    /// `-1` until running, so nil then.
    public var diskUsageGB: Double?
    public var raw: [String: JSONValue]

    /// `actual_status`, with every documented value and the raw text of any other.
    public enum Status: Sendable, Hashable, CustomStringConvertible {
        case created, loading, running, rebooting, stopped, frozen, exited, unknown, offline
        case other(String)

        public init(_ text: String) {
            switch text.lowercased() {
            case "created": self = .created
            case "loading": self = .loading
            case "running": self = .running
            case "rebooting", "restarting": self = .rebooting
            case "stopped": self = .stopped
            case "frozen": self = .frozen
            case "exited": self = .exited
            case "unknown": self = .unknown
            case "offline": self = .offline
            default: self = .other(text)
            }
        }

        public var description: String {
            switch self {
            case .created: "created"
            case .loading: "loading"
            case .running: "running"
            case .rebooting: "rebooting"
            case .stopped: "stopped"
            case .frozen: "frozen"
            case .exited: "exited"
            case .unknown: "unknown"
            case .offline: "offline"
            case .other(let text): text
            }
        }

        /// States a starting instance does not leave by itself (§2.1 "terminal for startup").
        public var isDead: Bool {
            switch self {
            case .stopped, .frozen, .exited, .unknown, .offline: true
            case .created, .loading, .running, .rebooting, .other: false
            }
        }
    }

    public struct PortBinding: Sendable, Hashable {
        public var hostIP: String?
        public var hostPort: Int
    }

    /// Decodes one instance record; nil when it is not an object with an id.
    public init?(json: JSONValue) {
        guard let object = json.objectValue else { return nil }
        let fields = LooseFields(object)
        guard let id = fields.int("id") else { return nil }
        self.id = id
        machineID = fields.int("machine_id")
        hostID = fields.int("host_id")
        label = fields.string("label")
        actualStatus = fields.string("actual_status").map(Status.init)
        intendedStatus = fields.string("intended_status")
        curState = fields.string("cur_state")
        statusMessage = fields.string("status_msg")
        imageUUID = fields.string("image_uuid")
        templateHashID = fields.string("template_hash_id")
        publicIPAddress = fields.string("public_ipaddr")?.trimmingCharacters(in: .whitespacesAndNewlines)
        sshHost = fields.string("ssh_host")
        sshPort = fields.int("ssh_port")
        ports = Self.ports(object["ports"])
        extraEnv = Self.pairs(object["extra_env"])
        gpuName = fields.string("gpu_name")
        numGPUs = fields.int("num_gpus")
        cudaMaxGood = fields.double("cuda_max_good")
        dphTotal = fields.double("dph_total")
        startDate = fields.double("start_date")
        uptimeMinutes = fields.double("uptime_mins")
        diskSpaceGB = fields.double("disk_space")
        diskUsageGB = fields.double("disk_usage").flatMap { $0 < 0 ? nil : $0 }
        raw = object
    }

    /// Destroyed: its contract is `unloaded` and bills nothing, though vast may still list it for a while.
    public var isReleased: Bool { curState == "unloaded" }

    /// The host port that container port `port` (TCP) is published on, if mapped.
    public func hostPort(forContainerPort port: Int) -> Int? {
        ports["\(port)/tcp"]?.first?.hostPort
    }

    /// `http://<public ip>:<host port>` for a container port, when both are known.
    public func directURL(containerPort: Int, scheme: String = "http") -> String? {
        guard let address = publicIPAddress, !address.isEmpty, let port = hostPort(forContainerPort: containerPort) else { return nil }
        return "\(scheme)://\(address):\(port)"
    }

    public static func == (lhs: Instance, rhs: Instance) -> Bool { lhs.raw == rhs.raw }
    public func hash(into hasher: inout Hasher) { hasher.combine(raw) }

    /// Docker-style `{"7865/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40186"}]}`; `HostPort` is a string on the
    /// real API, entries may be null, and the OpenAPI's int-array form carries no mapping, so it reads as empty.
    private static func ports(_ value: JSONValue?) -> [String: [PortBinding]] {
        guard let object = value?.objectValue else { return [:] }
        var result: [String: [PortBinding]] = [:]
        for (key, bindings) in object {
            let list = (bindings.arrayValue ?? [bindings]).compactMap { binding -> PortBinding? in
                guard let fields = binding.objectValue.map(LooseFields.init), let port = fields.int("HostPort") else { return nil }
                return PortBinding(hostIP: fields.string("HostIp"), hostPort: port)
            }
            if !list.isEmpty { result[key] = list }
        }
        return result
    }

    /// `extra_env` is a list of `[key, value]` pairs on the wire; the CLI's dict form is accepted too.
    private static func pairs(_ value: JSONValue?) -> [(String, String)] {
        switch value {
        case .array(let items)?:
            return items.compactMap { item in
                guard let pair = item.arrayValue, pair.count == 2, let key = pair[0].stringValue else { return nil }
                return (key, LooseFields(["v": pair[1]]).string("v") ?? "")
            }
        case .object(let object)?:
            return object.keys.sorted().map { ($0, LooseFields(object).string($0) ?? "") }
        default:
            return []
        }
    }
}

/// `{"instances": …}` as the by-id and list endpoints send it: a dict, a one-element (or longer) list, or null
/// after destroy and just after create (§1.6).
enum InstancesPayload {
    static func decode(_ json: JSONValue, operation: String) throws(VastAIError) -> [Instance] {
        guard let object = json.objectValue else {
            throw VastAIError(.unexpectedResponse, operation: operation, message: "the answer is not a JSON object")
        }
        switch object["instances"] {
        case nil, .null?:
            return []
        case .array(let items)?:
            return items.compactMap(Instance.init(json:))
        case let record?:
            return Instance(json: record).map { [$0] } ?? []
        }
    }
}
