import Foundation
import SwarmCore
import Testing
@testable import VastAI

/// Response shapes from vastai.md §1.4–1.6, including the loose ones: null, list or dict instances, numbers as
/// int or float or string, `HostPort` as a string.
@Suite struct DecodingTests {
    static func json(_ text: String) -> JSONValue {
        guard let value = JSONValue.parse(Data(text.utf8)) else { fatalError("bad JSON in test: \(text)") }
        return value
    }

    /// The running SwarmUI instance example of vastai.md §1.6, verbatim.
    static let runningInstance = json(
        """
        {
          "instances": {
            "id": 31234567, "machine_id": 41872, "host_id": 1234, "label": "swarmui-ctl-01",
            "actual_status": "running", "intended_status": "running", "cur_state": "running", "next_state": "running",
            "status_msg": "success, running vastai/swarmui_…/ssh",
            "image_uuid": "vastai/swarmui:0.9.8-Beta", "image_runtype": "jupyter jupyter_direc ssh_direc ssh_proxy",
            "template_hash_id": "8e5e6ab1fceb9db3f813e815907b3390", "template_name": "SwarmUI",
            "extra_env": [["OPEN_BUTTON_PORT", "1111"], ["PORTAL_CONFIG", "localhost:1111:11111:/:Instance Portal|…"]],
            "jupyter_token": "53fc448d…", "public_ipaddr": "203.0.113.42", "ssh_host": "ssh5.vast.ai", "ssh_port": 10882,
            "ports": {"1111/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40111"}],
                      "7865/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40186"}],
                      "8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40180"}],
                      "22/tcp":   [{"HostIp": "0.0.0.0", "HostPort": "40122"}]},
            "direct_port_start": -1, "direct_port_end": -1,
            "num_gpus": 1, "gpu_name": "RTX 5090", "gpu_ram": 32607, "cuda_max_good": 12.9, "driver_version": "575.64.03",
            "disk_space": 100.0, "disk_usage": 21.4, "dph_total": 0.612, "start_date": 1761008618.22, "uptime_mins": 42.0
          }
        }
        """
    )

    @Test func runningInstanceFromTheContract() throws {
        let instances = try InstancesPayload.decode(Self.runningInstance, operation: "show")
        let instance = try #require(instances.first)
        #expect(instances.count == 1)
        #expect(instance.id == 31_234_567)
        #expect(instance.machineID == 41_872)
        #expect(instance.actualStatus == .running)
        #expect(instance.label == "swarmui-ctl-01")
        #expect(instance.hostPort(forContainerPort: 7865) == 40_186)
        #expect(instance.directURL(containerPort: 7865) == "http://203.0.113.42:40186")
        #expect(instance.extraEnv.map(\.0) == ["OPEN_BUTTON_PORT", "PORTAL_CONFIG"])
        #expect(instance.extraEnv.first?.1 == "1111")
        #expect(instance.cudaMaxGood == 12.9)
        #expect(instance.diskUsageGB == 21.4)
        #expect(instance.startDate == 1_761_008_618.22)
        #expect(instance.templateHashID == "8e5e6ab1fceb9db3f813e815907b3390")
    }

    @Test func nullListAndDictInstances() throws {
        #expect(try InstancesPayload.decode(Self.json(#"{"instances": null}"#), operation: "show").isEmpty)
        #expect(try InstancesPayload.decode(Self.json(#"{"instances": []}"#), operation: "show").isEmpty)
        #expect(try InstancesPayload.decode(Self.json(#"{"success": true}"#), operation: "show").isEmpty)
        let list = try InstancesPayload.decode(Self.json(#"{"instances": [{"id": 7, "actual_status": null}]}"#), operation: "show")
        #expect(list.map(\.id) == [7])
        #expect(list.first?.actualStatus == nil)
        let dict = try InstancesPayload.decode(Self.json(#"{"instances": {"id": 8.0, "actual_status": "loading"}}"#), operation: "show")
        #expect(dict.map(\.id) == [8])
        #expect(dict.first?.actualStatus == .loading)
        let legacyList = try InstancesPayload.decode(
            Self.json(#"{"instances_found": 2, "instances": [{"id": 1}, {"id": "2"}, {"no_id": true}]}"#),
            operation: "list"
        )
        #expect(legacyList.map(\.id) == [1, 2])
        #expect(throws: VastAIError.self) { try InstancesPayload.decode(Self.json("[1]"), operation: "show") }
    }

    @Test func portsAreLoose() throws {
        let record = Self.json(
            """
            {"id": 1, "public_ipaddr": "198.51.100.7",
             "ports": {"22/tcp": null,
                       "7865/tcp": [{"HostIp": "0.0.0.0", "HostPort": "41865"}, {"HostIp": "::", "HostPort": "41865"}],
                       "1111/tcp": [{"HostIp": "0.0.0.0", "HostPort": 41111}],
                       "8080/tcp": [{"HostIp": "0.0.0.0"}]}}
            """
        )
        let instance = try #require(Instance(json: record))
        #expect(instance.hostPort(forContainerPort: 22) == nil)
        #expect(instance.ports["7865/tcp"]?.count == 2)
        #expect(instance.hostPort(forContainerPort: 7865) == 41_865)
        #expect(instance.hostPort(forContainerPort: 1111) == 41_111)
        #expect(instance.hostPort(forContainerPort: 8080) == nil)
        // The OpenAPI's int-array form carries no mapping.
        let arrayForm = try #require(Instance(json: Self.json(#"{"id": 2, "ports": [22, 7865]}"#)))
        #expect(arrayForm.ports.isEmpty)
        #expect(arrayForm.directURL(containerPort: 7865) == nil)
    }

    @Test func instanceStatusValues() throws {
        for (text, status) in [("created", Instance.Status.created), ("exited", .exited), ("offline", .offline), ("restarting", .rebooting)] {
            let instance = try #require(Instance(json: Self.json(#"{"id": 1, "actual_status": "\#(text)"}"#)))
            #expect(instance.actualStatus == status)
        }
        let odd = try #require(
            Instance(json: Self.json(#"{"id": 1, "actual_status": "scheduling", "disk_usage": -1, "extra_env": {"B": 2, "A": "x"}}"#))
        )
        #expect(odd.actualStatus == .other("scheduling"))
        #expect(odd.actualStatus?.isDead == false)
        #expect(odd.diskUsageGB == nil)
        #expect(odd.extraEnv.map(\.0) == ["A", "B"])
        #expect(odd.extraEnv.last?.1 == "2")
        #expect(Instance.Status.exited.isDead)
    }

    @Test func offerWithLooseNumbers() throws {
        let offer = try #require(
            Offer(
                json: Self.json(
                    """
                    {"id": 12345678.0, "ask_contract_id": 12345678, "machine_id": "41872", "gpu_name": "RTX 5090", "num_gpus": 1.0,
                     "gpu_ram": 32607, "cuda_max_good": 13, "dph_total": "0.612", "inet_down": 811, "inet_down_cost": null,
                     "reliability": 0.97, "reliability2": 0.991, "direct_port_count": 99, "verification": "verified",
                     "duration": 2592000.5, "geolocation": "Washington, US", "compute_cap": 1200}
                    """
                )
            )
        )
        #expect(offer.id == 12_345_678)
        #expect(offer.machineID == 41_872)
        #expect(offer.numGPUs == 1)
        #expect(offer.cudaMaxGood == 13)
        #expect(offer.dphTotal == 0.612)
        #expect(offer.inetDownMbps == 811)
        #expect(offer.inetDownCostPerGB == nil)
        #expect(offer.reliability == 0.991)
        #expect(offer.isVerified)
        #expect(offer.gpuSummary == "1x RTX 5090")
        #expect(Offer(json: Self.json(#"{"gpu_name": "RTX 5090"}"#)) == nil)
        let fromBool = try #require(Offer(json: Self.json(#"{"id": 1, "verified": false, "reliability": 0.9}"#)))
        #expect(fromBool.verification == "unverified")
        #expect(fromBool.reliability == 0.9)
    }

    @Test func offerListSkipsRecordsWithoutID() throws {
        let list = try OfferList(json: Self.json(#"{"offers": [{"id": 1}, {"id": null}, {"ask_contract_id": 3}]}"#))
        #expect(list.offers.map(\.id) == [1, 3])
        #expect(list.undecodable == 1)
        #expect(throws: VastAIError.self) { try OfferList(json: Self.json(#"{"detail": "x"}"#)) }
    }

    @Test func createBodyFollowsTheContract() {
        let request = CreateInstanceRequest(
            source: .template(hashID: "8e5e6ab1fceb9db3f813e815907b3390"),
            diskGB: 100,
            label: "swarm-a1b2",
            env: ["-p 7865:7865": "1"],
            secretEnv: ["SWARM_WORKER_KEY": Secret("sk-worker")]
        )
        let body = request.body
        #expect(body["client_id"] == "me")
        #expect(body["template_hash_id"] == "8e5e6ab1fceb9db3f813e815907b3390")
        #expect(body.objectValue?.keys.contains("image") == false)
        #expect(body["disk"]?.doubleValue == 100)
        #expect(body["cancel_unavail"] == true)
        #expect(body["env"] == ["-p 7865:7865": "1", "SWARM_WORKER_KEY": "sk-worker"])
        #expect(body.objectValue?.keys.contains("price") == false)
        #expect(body.objectValue?.keys.contains("runtype") == false)
        let image = CreateInstanceRequest(
            source: .image("ghcr.io/o/swarm-worker:stable"),
            diskGB: 80,
            onstart: "/start.sh",
            runtype: "ssh_direc ssh_proxy"
        )
        #expect(image.body["image"] == "ghcr.io/o/swarm-worker:stable")
        #expect(image.body["runtype"] == "ssh_direc ssh_proxy")
        #expect(image.body["onstart"] == "/start.sh")
    }

    @Test func retryAfterHeader() {
        #expect(VastAIClient.retryAfter("2", cap: .seconds(60)) == .seconds(2))
        #expect(VastAIClient.retryAfter("0.5", cap: .seconds(60)) == .milliseconds(500))
        #expect(VastAIClient.retryAfter("600", cap: .seconds(60)) == .seconds(60))
        #expect(VastAIClient.retryAfter(nil, cap: .seconds(60)) == nil)
        #expect(VastAIClient.retryAfter("soon", cap: .seconds(60)) == nil)
        let now = Date(timeIntervalSince1970: 1_445_412_480)  // Wed, 21 Oct 2015 07:28:00 GMT
        #expect(VastAIClient.retryAfter("Wed, 21 Oct 2015 07:28:10 GMT", cap: .seconds(60), now: now) == .seconds(10))
    }

    @Test func configurationFromEnvironment() throws {
        let configuration = try VastAIClient.Configuration(environment: ["VAST_API_KEY": "k-123", "VAST_API_URL": "https://cloud.vast.ai/api/v0/"])
        #expect(configuration.baseURL == "https://cloud.vast.ai")
        #expect(configuration.apiKey.value == "k-123")
        #expect("\(configuration.apiKey)" == "<redacted>")
        #expect(try VastAIClient.Configuration(environment: ["VAST_API_KEY": "k"]).baseURL == "https://console.vast.ai")
        #expect(throws: VastAIError.self) { try VastAIClient.Configuration(environment: ["VAST_API_KEY": " "]) }
    }
}
