import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import SwarmCore
import Testing
import VastAI
import VastAIEmulator
import VastAITestSupport

/// Polls until `condition` holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(25))
    }
    return try await condition()
}

@discardableResult
func expectVastError(_ sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async -> VastAIError? {
    do {
        try await body()
        Issue.record("expected a VastAIError", sourceLocation: sourceLocation)
    } catch let error as VastAIError {
        return error
    } catch {
        Issue.record("expected a VastAIError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

@Suite struct ClientTests {
    @Test func searchSendsTheQueryWithABearerKeyOnly() async throws {
        try await withVast { running, client in
            let filter = OfferFilter(gpuNames: ["RTX 5090"], minInetDownMbps: 100)
            let offers = try await client.searchOffers(query: filter.searchQuery)
            // 1003 has cuda_max_good 12.4, 1005 is an RTX 4090; the rest come cheapest first.
            #expect(offers.map(\.id) == [1002, 1001, 1004])
            let request = try #require(await running.emulator.requests.last)
            #expect(request.method == "POST")
            #expect(request.uri == "/api/v0/bundles/")
            #expect(request.authorization == "Bearer \(running.emulator.configuration.apiKey)")
            // As it travels: 100.0 and 100 are the same JSON number.
            #expect(request.body == JSONValue.parse(Data(filter.searchQuery.jsonString().utf8)))
            #expect(!request.uri.contains("api_key"))
        }
    }

    @Test func createFollowsCreatedLoadingRunning() async throws {
        // Phases long enough that a loaded machine still sees each one.
        try await withVast(.init(nullAfterCreate: .seconds(1), createdTime: .milliseconds(500), loadingTime: .seconds(1))) { running, client in
            let created = try await client.createInstance(
                offerID: 1001,
                CreateInstanceRequest(
                    source: .image("ghcr.io/o/swarm-worker:stable"),
                    diskGB: 100,
                    label: "swarm-t1",
                    env: ["-p 7865:7865": "1", "A": "b"]
                )
            )
            #expect(created.id > 0)
            #expect(created.instanceAPIKey != nil)
            // vast shows a brand-new instance as null for a while.
            #expect(try await client.instance(id: created.id) == nil)

            var seen: [String] = []
            let ready = try await eventually(timeout: .seconds(10)) {
                guard let status = try await client.instance(id: created.id)?.actualStatus else { return false }
                if seen.last != status.description { seen.append(status.description) }
                return status == .running
            }
            #expect(ready)
            #expect(seen.first == "created" || seen.first == "loading")
            #expect(seen.last == "running")

            let instance = try #require(try await client.instance(id: created.id))
            #expect(instance.label == "swarm-t1")
            #expect(instance.machineID == 41_872)
            #expect(instance.hostPort(forContainerPort: 7865) != nil)
            #expect(instance.directURL(containerPort: 7865)?.hasPrefix("http://127.0.0.1:") == true)
            #expect(instance.extraEnv.contains { $0.0 == "A" && $0.1 == "b" })
            #expect(try await client.instances().map(\.id) == [created.id])

            // The offer is rented now: gone from the search, and a second create on it fails.
            #expect(try await !client.searchOffers(query: OfferFilter(minInetDownMbps: 0).searchQuery).contains { $0.id == 1001 })
            let taken = await expectVastError {
                _ = try await client.createInstance(offerID: 1001, CreateInstanceRequest(source: .image("x"), diskGB: 20))
            }
            #expect(taken?.code == .offerUnavailable)
            #expect(taken?.status == 404)
            #expect(taken?.description.contains("search again") == true)
        }
    }

    @Test func showAsOneElementList() async throws {
        try await withVast(.init(nullAfterCreate: .zero, showAsList: true, templates: [["hash_id": "abc", "image": "x"]])) { _, client in
            let created = try await client.createInstance(offerID: 1004, CreateInstanceRequest(source: .template(hashID: "abc"), diskGB: 50))
            let instance = try await client.instance(id: created.id)
            #expect(instance?.id == created.id)
        }
    }

    @Test func portsFallBackToTheList() async throws {
        try await withVast(.init(nullAfterCreate: .zero, createdTime: .zero, loadingTime: .zero, portsOnlyInList: true)) { _, client in
            let created = try await client.createInstance(
                offerID: 1001,
                CreateInstanceRequest(source: .image("x"), diskGB: 20, env: ["-p 7865:7865": "1"])
            )
            #expect(try await client.instance(id: created.id)?.ports.isEmpty == true)
            let withPorts = try await client.instanceWithPorts(id: created.id)
            #expect(withPorts?.hostPort(forContainerPort: 7865) != nil)
            #expect(withPorts?.hostPort(forContainerPort: 22) != nil)
        }
    }

    @Test func labelDestroyAndConfirm() async throws {
        try await withVast(.init(nullAfterCreate: .zero)) { running, client in
            let created = try await client.createInstance(offerID: 1002, CreateInstanceRequest(source: .image("x"), diskGB: 20, label: "swarm-a"))
            try await client.setLabel(id: created.id, label: "swarm-b")
            #expect(try await client.instance(id: created.id)?.label == "swarm-b")
            try await client.destroyInstance(id: created.id)
            #expect(try await client.confirmGone(id: created.id, timeout: .seconds(2), pollInterval: .milliseconds(50)))
            #expect(await running.emulator.liveInstances.isEmpty)
            // Destroying what is gone is not an error: the goal (no billing) holds.
            try await client.destroyInstance(id: created.id)
            let rebootGone = await expectVastError { try await client.rebootInstance(id: created.id) }
            #expect(rebootGone?.code == .notFound)
            let requests = await running.emulator.requests
            #expect(requests.contains { $0.method == "DELETE" && $0.uri == "/api/v0/instances/\(created.id)/" })
        }
    }

    @Test func rebootBringsAnExitedInstanceBack() async throws {
        try await withVast(.init(nullAfterCreate: .zero, createdTime: .zero, loadingTime: .zero, rebootTime: .seconds(1))) { running, client in
            let created = try await client.createInstance(offerID: 1001, CreateInstanceRequest(source: .image("x"), diskGB: 20))
            await running.emulator.inject(.exited, instance: created.id)
            let dead = try await client.instance(id: created.id)
            #expect(dead?.actualStatus == .exited)
            #expect(dead?.actualStatus?.isDead == true)
            try await client.rebootInstance(id: created.id)
            #expect(try await client.instance(id: created.id)?.actualStatus == .rebooting)
            #expect(try await eventually { try await client.instance(id: created.id)?.actualStatus == .running })
            #expect(await running.emulator.instanceState(id: created.id)?.reboots == 1)
        }
    }

    @Test func cudaMismatchShowsInStatusMessage() async throws {
        try await withVast(.init(nullAfterCreate: .zero)) { running, client in
            let created = try await client.createInstance(offerID: 1001, CreateInstanceRequest(source: .image("x"), diskGB: 20))
            await running.emulator.inject(.cudaMismatch, instance: created.id)
            let instance = try #require(try await client.instance(id: created.id))
            #expect(instance.actualStatus == .created)
            #expect(instance.statusMessage?.contains("unsatisfied condition: cuda>=12.8") == true)
        }
    }

    @Test func logsArriveThroughResultURL() async throws {
        try await withVast(.init(nullAfterCreate: .zero, createdTime: .zero, loadingTime: .zero, logUploadDelay: .milliseconds(300))) {
            running,
            client in
            let created = try await client.createInstance(offerID: 1001, CreateInstanceRequest(source: .image("x"), diskGB: 20))
            await running.emulator.appendContainerLog(instance: created.id, ["line one", "line two"])
            let url = try await client.requestLogs(id: created.id, tail: 2)
            #expect(url.hasPrefix(running.baseURL + "/logs/"))
            let text = try await client.fetchLogText(resultURL: url)
            #expect(text == "line one\nline two\n")
            let daemon = try await client.logs(id: created.id, daemonLogs: true)
            #expect(daemon.contains("Pull complete"))
            let requests = await running.emulator.requests
            #expect(requests.contains { $0.uri == "/api/v0/instances/request_logs/\(created.id)/" && $0.body == ["tail": "2"] })
        }
    }

    @Test func logsThatNeverAppearSayso() async throws {
        try await withVast(.init(nullAfterCreate: .zero, logUploadDelay: .seconds(3600))) { _, client in
            let created = try await client.createInstance(offerID: 1001, CreateInstanceRequest(source: .image("x"), diskGB: 20))
            let url = try await client.requestLogs(id: created.id)
            let error = await expectVastError { _ = try await client.fetchLogText(resultURL: url) }
            #expect(error?.code == .logsNotReady)
            #expect(error?.status == 404)
        }
    }

    @Test func rateLimitIsRetriedHonoringRetryAfter() async throws {
        try await withVast { running, client in
            await running.emulator.rateLimitNext(2, retryAfter: "1")
            let start = ContinuousClock.now
            let offers = try await client.searchOffers(query: OfferFilter(minInetDownMbps: 0).searchQuery)
            let elapsed = ContinuousClock.now - start
            #expect(!offers.isEmpty)
            // Two 1-second waits, not the 20 ms backoff.
            #expect(elapsed >= .milliseconds(1900))
            #expect(await running.emulator.requests.count == 3)
        }
    }

    @Test func rateLimitWithoutRetryAfterUsesBackoffThenGivesUp() async throws {
        try await withVast(maxAttempts: 3) { running, client in
            await running.emulator.rateLimitNext(1)
            let account = try await client.account()
            #expect(account.credit == 25.5)
            await running.emulator.clearRequests()
            await running.emulator.rateLimitNext(3)
            let error = await expectVastError { _ = try await client.instances() }
            #expect(error?.code == .rateLimited)
            #expect(error?.status == 429)
            #expect(error?.message.contains("too frequent") == true)
            #expect(await running.emulator.requests.count == 3)
        }
    }

    @Test func searchQuotaIsNotRetried() async throws {
        try await withVast { running, client in
            await running.emulator.exhaustSearchQuota()
            let error = await expectVastError { _ = try await client.searchOffers(query: OfferFilter().searchQuery) }
            guard case .searchQuotaExceeded(let reset)? = error?.code else {
                Issue.record("expected searchQuotaExceeded, got \(String(describing: error))")
                return
            }
            #expect(reset.map { $0 > Date() } == true)
            #expect(await running.emulator.requests.count == 1)
        }
    }

    @Test func wrongKeyReadsWellAndNeverShowsTheKey() async throws {
        try await withVast(apiKey: "wrong-key-0123456789") { _, client in
            let error = await expectVastError { _ = try await client.instances() }
            #expect(error?.code == .unauthorized)
            let text = error.map(String.init(describing:)) ?? ""
            #expect(text.contains("VAST_API_KEY"))
            #expect(text.contains("Invalid user key"))
            #expect(!text.contains("wrong-key-0123456789"))
        }
    }

    /// The routes a harness uses to steer the emulator when it runs as its own process.
    @Test func controlRoutesSteerTheEmulator() async throws {
        try await withVast(.init(nullAfterCreate: .zero, createdTime: .zero, loadingTime: .zero)) { running, client in
            func post(_ path: String, _ body: JSONValue) async throws -> UInt {
                var request = HTTPClientRequest(url: running.baseURL + path)
                request.method = .POST
                request.body = .bytes(ByteBuffer(string: body.jsonString()))
                return try await HTTPClient.shared.execute(request, timeout: .seconds(5)).status.code
            }
            let created = try await client.createInstance(offerID: 1001, CreateInstanceRequest(source: .image("x"), diskGB: 20, label: "swarm-c"))
            #expect(try await post("/emulator/fault", ["instance": .int(created.id), "fault": "offline"]) == 200)
            #expect(try await client.instance(id: created.id)?.actualStatus == .offline)
            #expect(try await post("/emulator/fault", ["instance": .int(created.id), "fault": "melted"]) == 400)
            #expect(try await post("/emulator/fault", ["instance": .int(created.id), "fault": nil]) == 200)
            #expect(try await client.instance(id: created.id)?.actualStatus == .running)
            #expect(try await post("/emulator/log", ["instance": .int(created.id), "lines": ["hello"]]) == 200)
            #expect(try await client.logs(id: created.id).hasSuffix("hello\n"))
            #expect(try await post("/emulator/take-offer", ["id": 1004]) == 200)
            #expect(try await !client.searchOffers(query: OfferFilter(minInetDownMbps: 0).searchQuery).contains { $0.id == 1004 })
            #expect(try await post("/emulator/rate-limit", ["count": 1, "retry_after": "0"]) == 200)
            _ = try await client.instances()

            let state = try await HTTPClient.shared.execute(HTTPClientRequest(url: running.baseURL + "/emulator/state"), timeout: .seconds(5))
            let json = JSONValue.parse(Data((try await state.body.collect(upTo: 1 << 20)).readableBytesView))
            #expect(json?["instances"]?.arrayValue?.first?["label"] == "swarm-c")
        }
    }

    @Test func unreachableServerIsATransportError() async throws {
        let client = VastAIClient(
            // AHC keeps retrying a refused connection until the request's deadline, so keep that short.
            configuration: .init(
                apiKey: Secret("k"),
                baseURL: "http://127.0.0.1:1",
                maxAttempts: 2,
                backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(10)),
                requestTimeout: .seconds(1)
            ),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let error = await expectVastError { _ = try await client.instances() }
        #expect(error?.code == .transport)
        #expect(error?.hint?.contains("VAST_API_URL") == true)
    }
}
