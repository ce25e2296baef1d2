import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JobStore
import NIOCore
import SwarmCore
import Synchronization
import Testing

@Suite struct KeyTests {
    static let keyed = ControlPlaneConfiguration(
        longPollTimeout: .milliseconds(200),
        clientKeys: [Secret("client-key-1")],
        workerKeys: [Secret("worker-key-1")]
    )

    @Test func keysAreScopedAndRefusalsAre401JSON() async throws {
        try await withControlPlane(Self.keyed, clientKey: "client-key-1", workerKey: "worker-key-1") { api in
            // Client key: submit and read, raw or Bearer.
            #expect(try await api.call(.post, "/v2/swarmui/run", ["input": [:]], auth: .bearer("client-key-1")).status == .ok)
            #expect(try await api.call(.get, "/v2/swarmui/health", auth: .raw("client-key-1")).status == .ok)
            // Worker key: take and report, raw (as the SDK sends it) or Bearer.
            #expect(try await api.call(.get, "/v2/swarmui/job-take/w1?x=1", auth: .raw("worker-key-1")).status == .ok)
            #expect(try await api.call(.get, "/v2/swarmui/ping/w1?x=1", auth: .bearer("worker-key-1")).status == .ok)

            let workerSubmits = try await api.call(.post, "/v2/swarmui/run", ["input": [:]], auth: .raw("worker-key-1"))
            #expect(workerSubmits.status == .unauthorized)
            #expect(workerSubmits["error"]?.stringValue?.contains("worker key") == true)
            let clientTakes = try await api.call(.get, "/v2/swarmui/job-take/w1?x=1", auth: .bearer("client-key-1"))
            #expect(clientTakes.status == .unauthorized)
            #expect(clientTakes["error"]?.stringValue?.contains("client key") == true)
            let missing = try await api.call(.get, "/v2/swarmui/health", auth: .none)
            #expect(missing.status == .unauthorized)
            #expect(missing["error"]?.stringValue?.contains("missing") == true)
            let wrong = try await api.call(.get, "/v2/swarmui/health", auth: .bearer("client-key-2"))
            #expect(wrong.status == .unauthorized)
            #expect(wrong["error"] != nil)
            #expect(try await api.call(.get, "/metrics", auth: .none).status == .unauthorized)
        }
    }

    @Test func anInProcessWorkerKeyTakesJobsWithoutClosingAnOpenServer() async throws {
        let configuration = ControlPlaneConfiguration(longPollTimeout: .milliseconds(200), inProcessWorkerKeys: [Secret("local-worker")])
        try await withControlPlane(configuration) { api async throws in
            #expect(try await api.call(.get, "/v2/swarmui/health", auth: .none).status == .ok)
            #expect(try await api.call(.get, "/v2/swarmui/job-take/local?x=1", auth: .raw("local-worker")).status == .noContent)
            #expect(try await api.call(.get, "/v2/swarmui/health", auth: .raw("local-worker")).status == .unauthorized)
        }
        let closed = ControlPlaneConfiguration(
            longPollTimeout: .milliseconds(200),
            clientKeys: [Secret("c")],
            inProcessWorkerKeys: [Secret("local-worker")]
        )
        try await withControlPlane(closed) { api async throws in
            #expect(try await api.call(.get, "/v2/swarmui/job-take/local?x=1", auth: .raw("local-worker")).status == .noContent)
            #expect(try await api.call(.get, "/v2/swarmui/job-take/local?x=1", auth: .none).status == .unauthorized)
        }
    }

    @Test func workerKeysAloneLeaveTheClientAPIOpen() async throws {
        try await withControlPlane(ControlPlaneConfiguration(longPollTimeout: .milliseconds(200))) { api in
            // What the fleet stores for each instance it rents, on a server that had no keys.
            let workerKey = APIKey.generate(scope: .worker)
            try await api.store.insertKey(
                StoredKey(
                    id: "fleet-swarm-a",
                    scope: .worker,
                    hash: APIKey.hash(workerKey.value),
                    label: "vast.ai instance swarm-a",
                    createdAt: Date()
                )
            )
            let id = try await api.submit()
            #expect(try await api.call(.get, "/v2/swarmui/health", auth: .none).status == .ok)
            // The worker routes, though, now need a worker key.
            #expect(try await api.call(.get, "/v2/swarmui/job-take/swarm-a?x=1", auth: .none).status == .unauthorized)
            let taken = try await api.call(.get, "/v2/swarmui/job-take/swarm-a?x=1", auth: .raw(workerKey.value))
            #expect(taken["id"]?.stringValue == id)
            #expect(
                try await api.call(.post, "/v2/swarmui/job-done/swarm-a/\(id)", ["output": ["ok": true]], auth: .raw(workerKey.value)).status == .ok
            )
            #expect(try await api.status(id)["status"]?.stringValue == "COMPLETED")
        }
        try await withControlPlane(ControlPlaneConfiguration(longPollTimeout: .milliseconds(200))) { api in
            // A client key closes both.
            let clientKey = APIKey.generate(scope: .client)
            try await api.store.insertKey(StoredKey(id: "c1", scope: .client, hash: APIKey.hash(clientKey.value), label: nil, createdAt: Date()))
            #expect(try await api.call(.get, "/v2/swarmui/health", auth: .none).status == .unauthorized)
            #expect(try await api.call(.get, "/v2/swarmui/health", auth: .bearer(clientKey.value)).status == .ok)
            #expect(try await api.call(.get, "/v2/swarmui/job-take/w1?x=1", auth: .none).status == .unauthorized)
        }
    }

    @Test func storedKeysWorkUntilRevoked() async throws {
        try await withControlPlane(ControlPlaneConfiguration(longPollTimeout: .milliseconds(200))) { api in
            // No key anywhere: open (serve allows that on loopback only).
            #expect(try await api.call(.get, "/v2/swarmui/health", auth: .none).status == .ok)
            let key = APIKey.generate(scope: .client)
            try await api.store.insertKey(StoredKey(id: "k1", scope: .client, hash: APIKey.hash(key.value), label: nil, createdAt: Date()))
            #expect(try await api.call(.get, "/v2/swarmui/health", auth: .bearer(key.value)).status == .ok)
            #expect(try await api.call(.get, "/v2/swarmui/job-take/w1?x=1", auth: .raw(key.value)).status == .unauthorized)
            // Another client key keeps the client API closed once k1 is gone (with no client key it would be open again).
            let other = APIKey.generate(scope: .client)
            try await api.store.insertKey(StoredKey(id: "k2", scope: .client, hash: APIKey.hash(other.value), label: nil, createdAt: Date()))
            #expect(try await api.store.revokeKey(id: "k1", now: Date()))
            try await Task.sleep(for: .seconds(6))  // the key cache's lifetime
            #expect(try await api.call(.get, "/v2/swarmui/health", auth: .bearer(key.value)).status == .unauthorized)
        }
    }
}

@Suite struct WebhookTests {
    /// A webhook receiver on a loopback port that fails the first delivery and records every one.
    final class Receiver: Sendable {
        struct Delivery: Sendable {
            var body: ByteBuffer
            var signature: String?
        }
        let deliveries = Mutex<[Delivery]>([])

        var application: some ApplicationProtocol {
            let router = Router()
            router.post("hook") { request, _ -> HTTPResponse.Status in
                var request = request
                let body = try await request.collectBody(upTo: 1 << 20)
                let count = self.deliveries.withLock { list in
                    list.append(.init(body: body, signature: request.headers[.init("X-Swarm-Signature")!]))
                    return list.count
                }
                return count == 1 ? .internalServerError : .ok
            }
            return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        }
    }

    @Test func webhookIsSignedRetriedAndRecorded() async throws {
        let secret = Secret("webhook-secret")
        let configuration = ControlPlaneConfiguration(
            longPollTimeout: .seconds(1),
            webhooks: .init(secret: secret, maxTries: 3, retryDelay: .milliseconds(100), timeout: .seconds(5))
        )
        try await withControlPlane(configuration) { api in
            let receiver = Receiver()
            try await receiver.application.test(.live) { hook in
                let url = "http://127.0.0.1:\(try #require(hook.port))/hook"
                let id = try await api.submit(["prompt": "x"], extra: ["webhook": .string(url)])
                _ = try await api.take()
                try await api.done(id, ["output": ["ok": true]])
                let deadline = ContinuousClock.now + .seconds(15)
                var status = try await api.status(id)
                while status["webhookDelivered"] != true, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(50))
                    status = try await api.status(id)
                }
                #expect(status["webhookDelivered"] == true)
                #expect(status["webhookAttempts"]?.arrayValue?.map { $0["status"] } == [500, 200])

                let deliveries = receiver.deliveries.withLock { $0 }
                #expect(deliveries.count == 2)
                for delivery in deliveries {
                    #expect(delivery.signature == WebhookSignature.value(body: Array(buffer: delivery.body), secret: secret))
                    let payload = JSONValue.parse(Data(delivery.body.readableBytesView))
                    #expect(payload?["id"]?.stringValue == id)
                    #expect(payload?["status"] == "COMPLETED")
                    #expect(payload?["output"] == ["ok": true])
                    #expect(payload?["input"] == ["prompt": "x"])
                    #expect(payload?["webhook"]?.stringValue == url)
                }
            }
        }
    }

    @Test func webhookGivesUpAfterThreeTries() async throws {
        let configuration = ControlPlaneConfiguration(
            longPollTimeout: .seconds(1),
            webhooks: .init(maxTries: 3, retryDelay: .milliseconds(50), timeout: .seconds(2))
        )
        try await withControlPlane(configuration) { api in
            // Port 9 (discard) on loopback: nothing listens, every try fails at once.
            let id = try await api.submit(extra: ["webhook": "http://127.0.0.1:9/hook"])
            _ = try await api.take()
            try await api.done(id, ["output": 1])
            let deadline = ContinuousClock.now + .seconds(15)
            var attempts = 0
            while attempts < 3, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                attempts = try await api.status(id)["webhookAttempts"]?.arrayValue?.count ?? 0
            }
            try await Task.sleep(for: .milliseconds(500))
            let status = try await api.status(id)
            #expect(status["webhookAttempts"]?.arrayValue?.count == 3)
            #expect(status["webhookDelivered"] == false)
            #expect(try await api.store.pendingWebhooks(limit: 10).isEmpty)
        }
    }
}
