import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SwarmCore
import Testing
import VastAI
import VastAIEmulator

/// `swarmctl serve` as a process keeping a fleet of one on the vast.ai emulator.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct FleetServeTests {
    static let fastVast = VastAIEmulator.Configuration(
        nullAfterCreate: .zero,
        createdTime: .zero,
        loadingTime: .zero,
        rebootTime: .milliseconds(100)
    )

    static func serve(_ directory: URL, _ vast: RunningVastAIEmulator) throws -> ChildProcess {
        try ChildProcess(
            "swarmctl",
            executable: Paths.binary("swarmctl"),
            arguments: [
                "serve", "--port", "0", "--data-dir", directory.path, "--image", "ghcr.io/o/swarm-worker:test",
                "--public-url", "http://203.0.113.9:8288", "--fleet-interval", "0.2", "--reboot-grace", "1",
            ],
            environment: [
                "VAST_API_KEY": vast.emulator.configuration.apiKey, "VAST_API_URL": vast.baseURL,
                "SWARM_API_KEYS": "", "SWARM_WORKER_KEYS": "", "SWARM_FLEET_SIZE": "1", "CIVITAI_API_TOKEN": "civitai-secret-7",
            ]
        )
    }

    static func fleet(_ vast: RunningVastAIEmulator) async -> [VastAIEmulator.InstanceState] {
        await vast.emulator.liveInstances.filter { $0.label?.hasPrefix("swarm-") == true && $0.label != "swarm-x" }
    }

    static func creates(_ vast: RunningVastAIEmulator) async -> Int {
        await vast.emulator.requests.filter { $0.method == "PUT" && $0.uri.contains("/asks/") }.count
    }

    /// `swarmctl <arguments>` against the emulator's account, run to its end.
    static func swarmctl(_ arguments: [String], _ vast: RunningVastAIEmulator) async throws -> ChildProcess {
        let process = try ChildProcess(
            arguments.prefix(2).joined(separator: " "),
            executable: Paths.binary("swarmctl"),
            arguments: arguments,
            environment: ["VAST_API_KEY": vast.emulator.configuration.apiKey, "VAST_API_URL": vast.baseURL]
        )
        let status = try await process.waitForExit()
        #expect(status == 0, "swarmctl \(arguments.joined(separator: " ")): \(process.output.suffix(20).joined(separator: "\n"))")
        return process
    }

    /// `instance status --json`, parsed.
    static func status(_ directory: URL, _ vast: RunningVastAIEmulator) async throws -> JSONValue {
        let process = try await swarmctl(["instance", "status", "--json", "--data-dir", directory.path], vast)
        return try #require(process.output.lazy.compactMap { JSONValue.parse(Data($0.utf8)) }.first)
    }

    /// One HTTP call to the queue; `key` goes in `Authorization` as the RunPod worker sends it.
    static func call(
        _ method: HTTPMethod,
        _ url: String,
        _ body: JSONValue? = nil,
        key: String? = nil
    ) async throws -> (status: Int, json: JSONValue?) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let key { request.headers.add(name: "Authorization", value: key) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body.jsonString()))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let data = Data(try await response.body.collect(upTo: 1 << 20).readableBytesView)
        return (Int(response.status.code), JSONValue.parse(data))
    }

    @Test func keepsOneInstanceReplacesADeadOneAdoptsAfterRestartAndReapsOrphans() async throws {
        let directory = try Paths.temporaryDirectory("swarmctl-fleet")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await VastAIEmulator.withRunning(configuration: Self.fastVast) { vast in
            let client = VastAIClient(
                configuration: .init(apiKey: Secret(vast.emulator.configuration.apiKey), baseURL: vast.baseURL),
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            )
            // Labeled like the fleet's but unknown to its database: an orphan.
            let orphan = try await client.createInstance(
                offerID: 1001,
                CreateInstanceRequest(source: .image("ghcr.io/o/other:1"), diskGB: 100, label: "swarm-x")
            )

            var server = try Self.serve(directory, vast)
            defer { server.stop() }
            try await server.waitForLine(containing: "fleet on")
            let first = try await eventually("one instance rented") { await Self.fleet(vast).count == 1 ? await Self.fleet(vast)[0] : nil }
            #expect(first.env["SWARM_WORKER_ID"] == first.label)
            #expect(first.env["SWARM_QUEUE_URL"] == "http://203.0.113.9:8288/v2/swarmui")
            #expect(first.env["SWARM_WORKER_KEY"]?.hasPrefix("swarm_w_") == true)
            _ = try await eventually("the orphan destroyed") { await vast.emulator.instanceState(id: orphan.id)?.destroyed == true ? true : nil }
            #expect(!server.output.contains { $0.contains(first.env["SWARM_WORKER_KEY"] ?? "-") })
            // The model token serve holds reaches the instance, and only the instance.
            #expect(first.env["CIVITAI_API_TOKEN"] == "civitai-secret-7")
            #expect(!server.output.contains { $0.contains("civitai-secret-7") })
            #expect(first.runtype == "ssh_direc ssh_proxy" && first.onstart == "bash /opt/swarm/onstart.sh" && first.env["-p 18080:18080"] == "1")

            // Recorded in the database, as `swarmctl instances` shows it.
            let listing = try await Self.swarmctl(["instances", "--json", "--data-dir", directory.path], vast)
            let listed = try #require(JSONValue.parse(Data(listing.output.joined().utf8))?["instances"]?.arrayValue)
            #expect(listed.map { $0["id"]?.intValue } == [first.id])
            #expect(listed.first?["vast_status"] == "running")

            // Dead: rebooted once, dead again: replaced on another machine.
            await vast.emulator.inject(.exited, instance: first.id)
            _ = try await eventually("a reboot") { await vast.emulator.instanceState(id: first.id)?.reboots == 1 ? true : nil }
            try await Task.sleep(for: .milliseconds(500))
            await vast.emulator.inject(.exited, instance: first.id)
            let second = try await eventually("a replacement") {
                await Self.fleet(vast).first { $0.id != first.id && $0.machineID != first.machineID }
            }
            #expect(await vast.emulator.instanceState(id: first.id)?.destroyed == true)

            // Restarted, the server adopts the instance it has rather than renting another. (Wait until the database
            // has it: an instance rented in the instant of the SIGTERM is not yet recorded, and so an orphan.)
            _ = try await eventually("the replacement recorded") {
                try await Self.status(directory, vast)["instances"]?.arrayValue?.contains { $0["id"]?.intValue == second.id } == true ? true : nil
            }
            server.signal(SIGTERM)
            #expect(try await server.waitForExit(timeout: .seconds(30)) == 0)
            let createsBefore = await Self.creates(vast)
            server = try Self.serve(directory, vast)
            try await server.waitForLine(containing: "fleet on")
            try await Task.sleep(for: .seconds(2))
            #expect(await Self.creates(vast) == createsBefore)
            #expect(await Self.fleet(vast).map(\.id) == [second.id])
            server.signal(SIGTERM)
            #expect(try await server.waitForExit(timeout: .seconds(30)) == 0)
        }
    }

    @Test func downHoldsInARunningAndARestartedServeUntilUp() async throws {
        let directory = try Paths.temporaryDirectory("swarmctl-fleet-down")
        defer { try? FileManager.default.removeItem(at: directory) }
        try await VastAIEmulator.withRunning(configuration: Self.fastVast) { vast in
            var server = try Self.serve(directory, vast)
            defer { server.stop() }
            let queue = "http://127.0.0.1:\(try await server.servePort())/v2/swarmui"
            try await server.waitForLine(containing: "fleet on")
            let first = try await eventually("one instance rented") { await Self.fleet(vast).count == 1 ? await Self.fleet(vast)[0] : nil }
            let key = try #require(first.env["SWARM_WORKER_KEY"])
            #expect(try await Self.call(.GET, "\(queue)/ping/\(first.label ?? "")", key: key).status == 200)

            let down = try await Self.swarmctl(
                ["instance", "down", "--yes", "--data-dir", directory.path, "--settle", "0.5", "--confirm-timeout", "30"],
                vast
            )
            #expect(down.output.contains { $0.contains("destroyed \(first.id) \(first.label ?? ""): confirmed gone") })
            #expect(await vast.emulator.liveInstances.filter { $0.label?.hasPrefix("swarm-") == true }.isEmpty)
            #expect(!down.output.contains { $0.contains(key) })
            // Its worker key went with it. (With no key left at all this loopback server is open again, so the
            // revocation shows in the key list rather than in a refusal.)
            let keys = try await Self.swarmctl(["keys", "list", "--data-dir", directory.path], vast)
            #expect(keys.output.contains { $0.hasPrefix("fleet-\(first.label ?? "") ") && $0.contains("revoked") })

            // Many rounds of the running server, then a restarted one: nothing rented.
            let creates = await Self.creates(vast)
            try await Task.sleep(for: .seconds(2))
            #expect(await Self.creates(vast) == creates)
            server.signal(SIGTERM)
            #expect(try await server.waitForExit(timeout: .seconds(30)) == 0)
            server = try Self.serve(directory, vast)
            try await server.waitForLine(containing: "fleet on")
            try await Task.sleep(for: .seconds(2))
            #expect(await Self.creates(vast) == creates)
            #expect(await Self.fleet(vast).isEmpty)
            let status = try await Self.status(directory, vast)
            #expect(status["desired_size"] == 0 && status["instances"]?.arrayValue?.isEmpty == true)

            // `up` hands the count back to --fleet-size; the running server rents again.
            let up = try await Self.swarmctl(["instance", "up", "--data-dir", directory.path], vast)
            #expect(up.output.contains { $0.contains("--fleet-size") })
            let second = try await eventually("a new instance after up") { await Self.fleet(vast).first }
            #expect(second.id != first.id)
            #expect(try await Self.status(directory, vast)["desired_size"] == .null)
            server.signal(SIGTERM)
            #expect(try await server.waitForExit(timeout: .seconds(30)) == 0)
        }
    }

    /// A serve whose fleet rented one instance that stays loading (its image pull never ends on its own):
    /// `body` gets the data directory, the emulator, the queue's URL and the instance.
    static func withLoadingInstance(
        _ name: String,
        _ body: (URL, RunningVastAIEmulator, String, VastAIEmulator.InstanceState) async throws -> Void
    ) async throws {
        let directory = try Paths.temporaryDirectory(name)
        defer { try? FileManager.default.removeItem(at: directory) }
        var slow = Self.fastVast
        slow.loadingTime = .seconds(3600)
        try await VastAIEmulator.withRunning(configuration: slow) { vast in
            let server = try Self.serve(directory, vast)
            defer { server.stop() }
            let queue = "http://127.0.0.1:\(try await server.servePort())/v2/swarmui"
            try await server.waitForLine(containing: "fleet on")
            let instance = try await eventually("one instance rented") { await Self.fleet(vast).first }
            try await body(directory, vast, queue, instance)
        }
    }

    @Test func jobsWaitWhileTheInstanceLoadsAndRunOnceItsWorkerIsReady() async throws {
        try await Self.withLoadingInstance("swarmctl-fleet-jobs") { directory, vast, queue, instance in
            let worker = try #require(instance.env["SWARM_WORKER_ID"])
            let key = try #require(instance.env["SWARM_WORKER_KEY"])

            // The fleet minted a worker key; clients of this keyless server still need none.
            let submitted = try await Self.call(.POST, "\(queue)/run", ["input": ["prompt": "a lighthouse"]])
            #expect(submitted.status == 200)
            let job = try #require(submitted.json?["id"]?.stringValue)
            // Rounds go by while vast loads the image: the job waits, untouched.
            try await Task.sleep(for: .seconds(2))
            #expect(try await Self.call(.GET, "\(queue)/status/\(job)").json?["status"] == "IN_QUEUE")
            let loading = try #require(try await Self.status(directory, vast)["instances"]?.arrayValue?.first)
            #expect(loading["vast_status"] == "loading" && loading["stage"] == nil)
            // Only the instance's own key takes jobs now.
            #expect(try await Self.call(.GET, "\(queue)/job-take/\(worker)").status == 401)

            // The pull ends; the instance's worker boots, pings READY and takes the job with its key.
            await vast.emulator.finishLoading(instance: instance.id)
            _ = try await eventually("vast shows it running") {
                try await Self.status(directory, vast)["instances"]?.arrayValue?.first?["vast_status"] == "running" ? true : nil
            }
            let ping: JSONValue = ["stage": "READY", "log_tail": ["swarm-worker: READY"]]
            #expect(try await Self.call(.POST, "\(queue)/ping/\(worker)", ping, key: key).status == 200)
            let taken = try await Self.call(.GET, "\(queue)/job-take/\(worker)?gpu=RTX_5090&job_in_progress=0", key: key)
            #expect(taken.status == 200 && taken.json?["id"]?.stringValue == job)
            let done = try await Self.call(.POST, "\(queue)/job-done/\(worker)/\(job)", ["output": ["images": []]], key: key)
            #expect(done.status == 200)
            #expect(try await Self.call(.GET, "\(queue)/status/\(job)").json?["status"] == "COMPLETED")

            let ready = try #require(try await Self.status(directory, vast)["instances"]?.arrayValue?.first)
            #expect(ready["stage"] == "READY" && ready["id"]?.intValue == instance.id)
            // Its log: the worker's tail from the ping, and the container's through request_logs.
            let pings = try await Self.swarmctl(["instance", "logs", "--pings", "--data-dir", directory.path], vast)
            #expect(pings.output.contains("swarm-worker: READY"))
            let logs = try await Self.swarmctl(["instance", "logs", String(instance.id), "--data-dir", directory.path], vast)
            #expect(logs.output.contains("swarm-worker: stage INITIALIZING"))
            #expect(await Self.fleet(vast).map(\.id) == [instance.id])
        }
    }

    /// A template under which nothing would start the worker is refused when serve starts, before anything is rented.
    @Test func aTemplateThatWouldNotStartTheWorkerIsRefusedAtStart() async throws {
        let directory = try Paths.temporaryDirectory("swarmctl-template")
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = Self.fastVast
        configuration.templates = [
            ["hash_id": "no-onstart", "image": "ghcr.io/o/swarm-worker", "tag": "test", "runtype": "ssh"],
            ["hash_id": "starts-it", "image": "ghcr.io/o/swarm-worker", "tag": "test", "runtype": "ssh", "onstart": "bash /opt/swarm/onstart.sh"],
        ]
        try await VastAIEmulator.withRunning(configuration: configuration) { vast in
            func serve(template: String) throws -> ChildProcess {
                try ChildProcess(
                    "swarmctl",
                    executable: Paths.binary("swarmctl"),
                    arguments: [
                        "serve", "--port", "0", "--data-dir", directory.path, "--template", template,
                        "--public-url", "http://203.0.113.9:8288", "--fleet-interval", "0.2",
                    ],
                    environment: [
                        "VAST_API_KEY": vast.emulator.configuration.apiKey, "VAST_API_URL": vast.baseURL,
                        "SWARM_API_KEYS": "", "SWARM_WORKER_KEYS": "", "SWARM_FLEET_SIZE": "1",
                    ]
                )
            }
            let refused = try serve(template: "no-onstart")
            defer { refused.stop() }
            #expect(try await refused.waitForExit() != 0)
            #expect(refused.output.contains { $0.contains("template no-onstart has run type 'ssh' and no on-start script") })
            let unknown = try serve(template: "gone")
            defer { unknown.stop() }
            #expect(try await unknown.waitForExit() != 0)
            #expect(unknown.output.contains { $0.contains("vast.ai has no template with that hash") })
            #expect(await Self.creates(vast) == 0)

            let accepted = try serve(template: "starts-it")
            defer { accepted.stop() }
            let instance = try await eventually("one instance rented from the template") { await Self.fleet(vast).first }
            #expect(instance.templateHashID == "starts-it" && instance.onstart == "bash /opt/swarm/onstart.sh")
        }
    }

    @Test func workerKeysAloneDoNotLetServeListenBeyondLoopback() async throws {
        let directory = try Paths.temporaryDirectory("swarmctl-keys")
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = try ChildProcess(
            "swarmctl",
            executable: Paths.binary("swarmctl"),
            arguments: ["serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", directory.path],
            environment: ["SWARM_API_KEYS": "", "SWARM_WORKER_KEYS": "swarm_w_only", "VAST_API_KEY": ""]
        )
        defer { server.stop() }
        #expect(try await server.waitForExit() != 0)
        #expect(server.output.contains { $0.contains("without client API keys") })
    }

    @Test func theInstancesRealWorkerTakesTheQueuedJobOnceItBoots() async throws {
        try await Self.withLoadingInstance("swarmctl-fleet-worker") { directory, vast, queue, instance in
            let submitted = try await Self.call(.POST, "\(queue)/run", ["input": WorkerRig.textToImage()])
            let job = try #require(submitted.json?["id"]?.stringValue)
            try await Task.sleep(for: .seconds(1))
            #expect(try await Self.call(.GET, "\(queue)/status/\(job)").json?["status"] == "IN_QUEUE")

            // The pull ends and the image's swarm-worker starts with the environment the fleet gave the instance
            // (its public queue URL swapped for this server's loopback address).
            await vast.emulator.finishLoading(instance: instance.id)
            var environment = instance.env.filter { $0.key.hasPrefix("SWARM_") }
            environment["SWARM_QUEUE_URL"] = queue
            let rig = try await WorkerRig.start(environment: environment)
            defer { rig.stop() }
            let finished = try await eventually("the job done by the instance's worker", timeout: .seconds(120)) {
                let answer = try await Self.call(.GET, "\(queue)/status/\(job)").json
                return answer?["status"] == "COMPLETED" || answer?["status"] == "FAILED" ? answer : nil
            }
            #expect(finished["status"] == "COMPLETED", "\(finished)")
            #expect(finished["output"]?["files"]?.arrayValue?.count == 1)
            // Its real pings show in status under the instance.
            let shown = try await eventually("status shows the worker READY") {
                try await Self.status(directory, vast)["instances"]?.arrayValue?.first { $0["stage"] == "READY" }
            }
            #expect(shown["id"]?.intValue == instance.id && shown["vast_status"] == "running")
            try await Self.expectCosts(queue: queue, job: job, instance: instance.id)
        }
    }
}
