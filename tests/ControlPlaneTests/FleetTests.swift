import ArgumentParser
import ControlPlane
import Fleet
import Foundation
import JobProtocol
import JobStore
import SwarmCore
import Testing
import VastAI

/// The fleet's settings and its memory on the job store.
@Suite struct FleetTests {
    static let vastOn = ["VAST_API_KEY": "k", "SWARM_PUBLIC_URL": "https://queue.example.com/"]

    /// serve's fleet as `ServeConfiguration` reads it from these flags (and `--image image`) and `environment`.
    static func fleet(image: String? = "ghcr.io/o/w:1", _ arguments: [String] = [], environment: [String: String]) throws -> FleetSettings? {
        let flags = try ServeFlags.parse((image.map { ["--image", $0] } ?? []) + arguments)
        // A storage secret of its own, so that reading the configuration writes none into the data directory.
        return try ServeConfiguration(flags: flags, environment: environment.merging(["SWARM_STORAGE_SECRET": "s"]) { old, _ in old }).fleet
    }

    @Test func theFleetIsOffWithoutAVastKey() throws {
        #expect(try Self.fleet(environment: [:]) == nil)
        #expect(try ServeConfiguration(flags: ServeFlags.parse([]), environment: [:]).fleet == nil)
    }

    @Test func readsFlagsThenEnvironment() throws {
        let environment = Self.vastOn.merging([
            "SWARM_FLEET_SIZE": "3", "SWARM_FLEET_GPU": "RTX 5090, RTX_4090", "VAST_API_URL": "http://127.0.0.1:9",
        ]) { $1 }
        let settings = try #require(try Self.fleet(environment: environment))
        #expect(settings.policy.desiredSize == 3 && settings.policy.labelPrefix == "swarm")
        #expect(settings.filter.gpuNames == ["RTX 5090", "RTX 4090"])
        #expect(settings.queueURL == "https://queue.example.com/v2/swarmui")
        #expect(settings.vast.baseURL == "http://127.0.0.1:9")

        #expect(try Self.fleet(["--fleet-size", "2"], environment: environment)?.policy.desiredSize == 2)
    }

    @Test func refusesAFleetItCannotStart() {
        #expect(throws: ServeError.self) { try Self.fleet(image: nil, environment: Self.vastOn) }
        #expect(throws: ServeError.self) { try Self.fleet(environment: ["VAST_API_KEY": "k"]) }
        #expect(throws: ServeError.self) {
            try Self.fleet(environment: Self.vastOn.merging(["SWARM_FLEET_SIZE": "many"]) { $1 })
        }
    }

    /// vast replaces the image's ENTRYPOINT under ssh and jupyter run types: the request itself must start the worker.
    @Test func theCreateRequestStartsTheWorkerAndCarriesTheTokensAsSecrets() throws {
        let environment = Self.vastOn.merging(["CIVITAI_API_TOKEN": "civ-1", "HUGGINGFACE_API_TOKEN": "hf-2", "EXTRA_TOKEN": "x-3"]) { $1 }
        let settings = try #require(try Self.fleet(["--instance-env", "EXTRA_TOKEN"], environment: environment))
        let request = settings.createRequest(label: "swarm-a1", workerKey: Secret("swarm_w_k"))
        #expect(request.runtype == "ssh_direc ssh_proxy" && request.onstart == "bash /opt/swarm/onstart.sh")
        #expect(request.env == ["SWARM_WORKER_ID": "swarm-a1", "SWARM_QUEUE_URL": "https://queue.example.com/v2/swarmui", "-p 18080:18080": "1"])
        #expect(
            request.secretEnv.mapValues(\.value) == [
                "SWARM_WORKER_KEY": "swarm_w_k", "CIVITAI_API_TOKEN": "civ-1", "HUGGINGFACE_API_TOKEN": "hf-2", "EXTRA_TOKEN": "x-3",
            ]
        )
        // Printed, the request shows no secret.
        #expect(!"\(request)".contains("civ-1") && !"\(request)".contains("swarm_w_k"))

        // From a template, the template's run type and on-start script apply.
        let templated = try #require(try Self.fleet(image: nil, ["--template", "abc123"], environment: environment)).createRequest(
            label: "swarm-b",
            workerKey: Secret("k")
        )
        #expect(templated.runtype == nil && templated.onstart == nil && templated.secretEnv["CIVITAI_API_TOKEN"]?.value == "civ-1")

        #expect(throws: ServeError.self) { try Self.fleet(["--instance-env", "MISSING_ONE"], environment: environment) }
        #expect(throws: ServeError.self) { try Self.fleet(["--instance-env", "SWARM_WORKER_KEY"], environment: environment) }
    }

    @Test func aTemplateThatWouldNotStartTheWorkerIsRefused() {
        #expect(WorkerLaunch.problem(withTemplate: ["runtype": "args"], hashID: "h") == nil)
        #expect(WorkerLaunch.problem(withTemplate: ["runtype": "ssh", "onstart": "bash /opt/swarm/onstart.sh"], hashID: "h") == nil)
        let none = WorkerLaunch.problem(withTemplate: ["runtype": "jupyter", "onstart": ""], hashID: "h1")
        #expect(none?.contains("template h1 has run type 'jupyter' and no on-start script") == true)
        #expect(WorkerLaunch.problem(withTemplate: ["onstart": "echo hello"], hashID: "h")?.contains("'ssh'") == true)
    }

    @Test func bootWatchWaitsSucceedsAndFailsWithTheReason() {
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let watch = BootWatch(wanted: 1, startedAt: start, timeout: 600)
        func status(_ stage: WorkerStage?) -> FleetInstanceStatus {
            var record = FleetInstanceRecord(id: 1, label: "swarm-a", dphTotal: 0.35, createdAt: start)
            record.report = stage.map { WorkerReport(stage: $0) }
            return FleetInstanceStatus(record: record, vast: nil, vastAsked: false)
        }
        #expect(watch.verdict(instances: [], creationHold: nil, now: start) == .waiting)
        #expect(watch.statusLine(instances: [], now: start.addingTimeInterval(200)).contains("is 'swarmctl serve' running"))
        let downloading = status(.downloading(DownloadProgress(doneBytes: 12_100_000_000, totalBytes: 33_200_000_000)))
        #expect(
            watch.statusLine(instances: [downloading], now: start.addingTimeInterval(30)).contains(
                "worker DOWNLOADING 12.1 of 33.2 GB (36%); $0.350/h"
            )
        )
        #expect(watch.verdict(instances: [downloading], creationHold: nil, now: start.addingTimeInterval(30)) == .waiting)
        #expect(watch.verdict(instances: [status(.ready)], creationHold: nil, now: start) == .ready)
        #expect(
            watch.verdict(instances: [downloading], creationHold: "set CIVITAI_API_TOKEN", now: start)
                == .failed("the fleet holds creation: set CIVITAI_API_TOKEN")
        )
        guard case .failed(let reason) = watch.verdict(instances: [downloading], creationHold: nil, now: start.addingTimeInterval(601)) else {
            Issue.record("a boot past the timeout must fail")
            return
        }
        #expect(reason.contains("not READY after 10m") && reason.contains("DOWNLOADING") && reason.contains("still downloading"))

        // Running for ten minutes without a word from the worker: the missing on-start script of docs/vast-template.md.
        let silent = FleetInstanceStatus(
            record: FleetInstanceRecord(id: 2, label: "swarm-b", createdAt: start),
            vast: Instance(json: ["id": 2, "actual_status": "running"]),
            vastAsked: true
        )
        guard case .failed(let why) = watch.verdict(instances: [silent], creationHold: nil, now: start.addingTimeInterval(601)) else {
            Issue.record("a silent instance past the timeout must fail")
            return
        }
        #expect(why.contains("running, but the worker never pinged: the on-start script is missing"))
    }

    @Test func followingALogPrintsOnlyWhatIsNew() {
        #expect(LogFollow.newLines(previous: [], current: ["a", "b"]) == ["a", "b"])
        #expect(LogFollow.newLines(previous: ["a", "b", "c"], current: ["b", "c", "d", "e"]) == ["d", "e"])
        #expect(LogFollow.newLines(previous: ["a", "b"], current: ["a", "b"]).isEmpty)
        // Repeated lines: the longest overlap wins, so nothing is printed twice.
        #expect(LogFollow.newLines(previous: ["x", "x"], current: ["x", "x", "y"]) == ["y"])
        // More than a read's worth arrived in between: all of it is new.
        #expect(LogFollow.newLines(previous: ["a"], current: ["q", "r"]) == ["q", "r"])
    }

    @Test func membersCarryTheirWorkersPingsAndKeysAreRevokedWithThem() async throws {
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        let fleet = DatabaseFleetStore(store: store)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        try await fleet.insert(FleetMember(id: 7, label: "swarm-a", offerID: 1004, machineID: 3, dphTotal: 0.7, createdAt: now))
        let key = try await fleet.mintWorkerKey(label: "swarm-a", now: now)
        #expect(try await store.key(hash: APIKey.hash(key.value))?.scope == .worker)
        #expect("\(key)" == "<redacted>")

        let ping: JSONValue = [
            "stage": "DOWNLOADING", "download": ["done_bytes": 12_100_000_000, "total_bytes": 33_200_000_000], "log_tail": ["pulling"],
        ]
        try await store.heartbeat(
            workerID: "swarm-a",
            endpoint: "swarmui",
            jobIDs: [],
            leaseUntil: now,
            report: WorkerReport(json: ping),
            now: now
        )
        let member = try #require(try await fleet.members().first)
        #expect(member.stage == .downloading(DownloadProgress(doneBytes: 12_100_000_000, totalBytes: 33_200_000_000)))
        #expect(member.lastPing == now && member.logTail == ["pulling"])
        #expect(member.stage?.detail == "12.1 of 33.2 GB (36%)")
        #expect(member.offerID == 1004 && member.machineID == 3)

        // An hour at $0.70, when that hour is inside one UTC day.
        #expect(abs(try await fleet.spentToday(now: now.addingTimeInterval(3600)) - 0.7) < 1e-9)

        try await fleet.remove(id: 7)
        #expect(try await fleet.members().isEmpty)
        #expect(try await store.key(hash: APIKey.hash(key.value)) == nil)
        #expect(try await store.keys().first { $0.scope == .worker }?.revokedAt != nil)
    }

    @Test func theWantedSizeIsTheDatabasesUntilHandedBack() async throws {
        let store = try SQLiteJobStore.inMemory()
        try await store.migrate()
        let fleet = DatabaseFleetStore(store: store)
        #expect(try await fleet.desiredSize() == nil)
        try await fleet.setDesiredSize(0)
        #expect(try await fleet.desiredSize() == 0)
        try await fleet.setDesiredSize(nil)
        #expect(try await fleet.desiredSize() == nil)
    }

    @Test func statusShowsVastsStateTheBootTheCostAndTheSwarmUIURL() throws {
        let created = Date(timeIntervalSince1970: 1_800_000_000)
        let now = created.addingTimeInterval(2 * 3600 + 5 * 60)
        let ping: JSONValue = [
            "stage": "DOWNLOADING", "download": ["done_bytes": 12_100_000_000, "total_bytes": 33_200_000_000],
            "log_tail": ["fetching sd_xl_base_1.0.safetensors"],
        ]
        let record = FleetInstanceRecord(
            id: 31_234_567,
            label: "swarm-1a2b",
            machineID: 41_872,
            dphTotal: 0.6,
            createdAt: created,
            lastPing: now.addingTimeInterval(-4),
            report: WorkerReport(json: ping)
        )
        // As vast sends it: HostPort a string, an IPv6 entry beside the IPv4 one.
        let vast = try #require(
            Instance(json: [
                "id": 31_234_567, "actual_status": "running", "status_msg": "success, running ghcr.io/o/w:1/ssh", "gpu_name": "RTX 5090",
                "num_gpus": 1, "public_ipaddr": "203.0.113.42\n",
                "ports": [
                    "7865/tcp": [["HostIp": "0.0.0.0", "HostPort": "40186"], ["HostIp": "::", "HostPort": "40186"]],
                    "22/tcp": [["HostIp": "0.0.0.0", "HostPort": "40122"]],
                ],
            ])
        )
        let status = FleetInstanceStatus(record: record, vast: vast, vastAsked: true)
        #expect(status.swarmUIURL == "http://203.0.113.42:40186")
        #expect(abs((status.cost(now: now) ?? 0) - 1.25) < 1e-9)
        let lines = status.lines(now: now, barWidth: 10)
        #expect(lines[0] == "swarm-1a2b (31234567)  RTX 5090  $0.600/h  up 2h05m  $1.25 so far")
        #expect(lines[1].contains("vast running \"success, running ghcr.io/o/w:1/ssh\""))
        #expect(lines[1].contains("worker DOWNLOADING 12.1 of 33.2 GB (36%)") && lines[1].contains("last ping 4 s ago"))
        #expect(lines[2] == "  [###-------]  36%")
        #expect(lines[3] == "  SwarmUI: http://203.0.113.42:40186")
        #expect(status.json(now: now)["swarmui_url"]?.stringValue == "http://203.0.113.42:40186")

        // Still pulling: no URL, and vast's CUDA error is diagnosed.
        let pulling = FleetInstanceStatus(
            record: FleetInstanceRecord(id: 5, label: "swarm-x", createdAt: created),
            vast: Instance(json: [
                "id": 5, "actual_status": "created",
                "status_msg":
                    "OCI runtime create failed: nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.8, please update your driver",
            ]),
            vastAsked: true
        )
        #expect(pulling.swarmUIURL == nil)
        #expect(pulling.lines(now: now).contains { $0.hasPrefix("  problem: cudaTooNew") })
        #expect(pulling.lines(now: now)[1].contains("worker not heard from; no ping yet"))

        // A worker's ERROR is shown with its kind and reason, in the lines and the JSON.
        let failed = FleetInstanceStatus(
            record: FleetInstanceRecord(
                id: 6,
                label: "swarm-e",
                createdAt: created,
                lastPing: now,
                report: WorkerReport(json: ["stage": "ERROR", "error": "'wan' needs CIVITAI_API_TOKEN", "error_kind": "permanent"])
            ),
            vast: nil,
            vastAsked: false
        )
        #expect(failed.lines(now: now)[1].contains("worker ERROR (permanent): 'wan' needs CIVITAI_API_TOKEN"), "\(failed.lines(now: now))")
        #expect(failed.json(now: now)["error_kind"] == "permanent" && failed.json(now: now)["stage"] == "ERROR")
        #expect(status.json(now: now)["download_percent"]?.doubleValue == 36.4)

        // A labeled instance the database does not know is shown, not hidden.
        let stray = try #require(Instance(json: ["id": 9, "label": "swarm-x", "actual_status": "running", "dph_total": 0.35]))
        let summary = FleetSummary(desiredSize: 0, creationHold: nil, spentToday: 1.5, orphans: [stray])
        #expect(
            summary.lines == [
                "wanted: 0 instance(s), set with 'swarmctl instance up|down'; spent today: $1.50",
                "orphan swarm-x (9): vast running, $0.350/h, not in this database; a running serve destroys it, or 'swarmctl instance down'",
            ]
        )
        #expect(summary.json["orphans"]?.arrayValue?.first?["id"]?.intValue == 9)
    }
}
