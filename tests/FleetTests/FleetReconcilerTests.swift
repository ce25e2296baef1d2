import Fleet
import Foundation
import JobProtocol
import Logging
import SwarmCore
import Testing
import VastAI
import VastAIEmulator
import VastAITestSupport

/// The planner's decisions carried out against the emulator, round by round.
@Suite struct FleetReconcilerTests {
    static let fastEmulator = VastAIEmulator.Configuration(
        nullAfterCreate: .zero,
        createdTime: .zero,
        loadingTime: .zero,
        rebootTime: .milliseconds(50)
    )

    static func reconciler(_ client: VastAIClient, _ store: InMemoryFleetStore, policy: FleetPolicy) -> FleetReconciler {
        FleetReconciler(
            client: client,
            store: store,
            planner: FleetPlanner(policy: policy),
            filter: OfferFilter(gpuNames: ["RTX 5090"], minInetDownMbps: 100),
            download: DownloadEstimate(totalGB: 48),
            offersMaxAge: .zero,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        ) { label in
            CreateInstanceRequest(source: .image("ghcr.io/o/swarm-worker:stable"), diskGB: 100, label: label, env: ["-p 7865:7865": "1"])
        }
    }

    static func labeled(_ emulator: VastAIEmulator) async -> [VastAIEmulator.InstanceState] {
        await emulator.liveInstances.filter { $0.label?.hasPrefix("swarm-") == true }
    }

    @Test func aKilledInstanceIsReplacedOnAnotherMachine() async throws {
        try await withVast(Self.fastEmulator) { running, client in
            let store = InMemoryFleetStore()
            let fleet = Self.reconciler(client, store, policy: FleetPolicy(rebootGrace: .milliseconds(300)))
            let first = try await fleet.reconcile()
            guard case .create(let offer, _)? = first.first else { Issue.record("expected a create, got \(first)"); return }
            #expect(offer.offer.id == 1004)  // the formula's first pick in the default market
            let original = try #require(await store.members().first)
            #expect(original.machineID == 41_875)
            await store.recordPing(id: original.id, stage: .ready)
            #expect(try await fleet.reconcile().isEmpty)

            await running.emulator.inject(.offline, instance: original.id)
            let detected = ContinuousClock.now
            #expect(try await fleet.reconcile() == [.reboot(id: original.id, reason: "vast reports it offline")])
            try await Task.sleep(for: .milliseconds(350))
            let replace = try await fleet.reconcile()
            #expect(replace == [.replace(id: original.id, machineID: 41_875, reason: "vast reports it offline; 1 reboot did not help")])
            let next = try await fleet.reconcile()
            #expect(next.first == .forget(id: original.id, reason: "destroy confirmed"))
            #expect(ContinuousClock.now - detected < .seconds(60))

            let live = await Self.labeled(running.emulator)
            #expect(live.count == 1)
            #expect(live.first?.machineID == 41_872)  // 1001, the next best, on another machine
            #expect(await store.members().map(\.id) == live.map(\.id))
            #expect(await store.failedMachineIDs() == [41_875])
        }
    }

    @Test func aPermanentWorkerErrorDestroysOnceAndCreatesNoMore() async throws {
        try await withVast(Self.fastEmulator) { running, client in
            let store = InMemoryFleetStore()
            let fleet = Self.reconciler(client, store, policy: FleetPolicy())
            try await fleet.reconcile()
            let id = try #require(await store.members().first?.id)
            let reason = "models need download tokens that are not set: 'wan' needs CIVITAI_API_TOKEN"
            await store.recordPing(id: id, stage: .error(WorkerFailure(reason: reason, kind: .permanent)))
            let actions = try await fleet.reconcile()
            #expect(actions.first == .destroy(id: id, reason: "its worker cannot start: \(reason)"))
            for _ in 0..<8 { try await fleet.reconcile() }

            let requests = await running.emulator.requests
            #expect(requests.filter { $0.method == "PUT" && $0.uri.hasPrefix("/api/v0/asks/") }.count == 1)
            #expect(requests.filter { $0.method == "DELETE" }.count == 1)
            #expect(await Self.labeled(running.emulator).isEmpty)
            #expect(await store.members().isEmpty)
            #expect(await store.creationHold()?.contains("CIVITAI_API_TOKEN") == true)
        }
    }

    @Test func aTransientWorkerErrorIsReplacedOnAnotherMachine() async throws {
        try await withVast(Self.fastEmulator) { running, client in
            let store = InMemoryFleetStore()
            let fleet = Self.reconciler(client, store, policy: FleetPolicy())
            try await fleet.reconcile()
            let first = try #require(await store.members().first)
            await store.recordPing(id: first.id, stage: .error(WorkerFailure(reason: "downloading 'wan': connection reset", kind: .transient)))
            #expect(
                try await fleet.reconcile().first
                    == .replace(id: first.id, machineID: first.machineID, reason: "its worker failed: downloading 'wan': connection reset")
            )
            try await fleet.reconcile()
            let live = await Self.labeled(running.emulator)
            #expect(live.count == 1 && live.first?.id != first.id && live.first?.machineID != first.machineID)
            #expect(await store.creationHold() == nil)
        }
    }

    @Test func aStuckLoadIsDiagnosedInStatusAndWarning() async throws {
        var emulator = Self.fastEmulator
        emulator.loadingTime = .seconds(3600)
        try await withVast(emulator) { running, client in
            let store = InMemoryFleetStore()
            // Long enough that the status round (right after the first) is never late for it on a loaded machine.
            let fleet = Self.reconciler(client, store, policy: FleetPolicy(startWarning: .milliseconds(1500)))
            try await fleet.reconcile()
            let id = try #require(await store.members().first?.id)
            await running.emulator.inject(.stuckLoading, instance: id)
            let status = try await fleet.reconcile()
            guard case .report(id, let line)? = status.first else { Issue.record("expected a status line, got \(status)"); return }
            #expect(line.contains("vast loading \"Download complete\""))
            try await Task.sleep(for: .milliseconds(1600))
            let warned = try await fleet.reconcile()
            guard case .warn(id, let warning)? = warned.first else { Issue.record("expected a warning, got \(warned)"); return }
            #expect(warning.contains("pull is slow or stuck"))
            // Warned once.
            #expect(try await !fleet.reconcile().contains { if case .warn = $0 { true } else { false } })
            #expect(await store.members().first?.warnedSlowStart == true)
        }
    }

    @Test func aRestartAdoptsTheInstanceAndDownLeavesNone() async throws {
        try await withVast(Self.fastEmulator) { running, client in
            let store = InMemoryFleetStore()
            try await Self.reconciler(client, store, policy: FleetPolicy()).reconcile()
            #expect(await Self.labeled(running.emulator).count == 1)

            // A new process with the same database creates nothing.
            let restarted = Self.reconciler(client, store, policy: FleetPolicy())
            let adopted = try await restarted.reconcile()
            #expect(!adopted.contains { if case .create = $0 { true } else { false } })
            #expect(await Self.labeled(running.emulator).count == 1)

            // `swarmctl instance down`: the count is the store's, so it holds in this process and the next.
            await store.setDesiredSize(0)
            try await restarted.reconcile()
            try await restarted.reconcile()
            #expect(await Self.labeled(running.emulator).isEmpty)
            #expect(await store.members().isEmpty)
            let again = Self.reconciler(client, store, policy: FleetPolicy())
            try await again.reconcile()
            try await again.reconcile()
            #expect(await Self.labeled(running.emulator).isEmpty)

            // `swarmctl instance up`: back to the configured size.
            await store.setDesiredSize(nil)
            try await again.reconcile()
            #expect(await Self.labeled(running.emulator).count == 1)
        }
    }

    @Test func anOrphanIsReapedAndOthersAreLeftAlone() async throws {
        try await withVast(Self.fastEmulator) { running, client in
            let stray = try await client.createInstance(offerID: 1001, CreateInstanceRequest(source: .image("x"), diskGB: 20, label: "swarm-stray"))
            let mine = try await client.createInstance(offerID: 1002, CreateInstanceRequest(source: .image("x"), diskGB: 20, label: "notebook"))
            let fleet = Self.reconciler(client, InMemoryFleetStore(), policy: FleetPolicy(desiredSize: 0))
            let actions = try await fleet.reconcile()
            #expect(actions == [.destroy(id: stray.id, reason: "orphan: labeled swarm-stray but not in the fleet's database")])
            #expect(await running.emulator.liveInstances.map(\.id) == [mine.id])
        }
    }

    @Test func aFailedActionDoesNotStopTheOthers() async throws {
        try await withVast(.init(nullAfterCreate: .zero, createdTime: .zero, loadingTime: .zero), maxAttempts: 1) { running, client in
            _ = try await client.createInstance(offerID: 1001, CreateInstanceRequest(source: .image("x"), diskGB: 20, label: "swarm-a"))
            _ = try await client.createInstance(offerID: 1002, CreateInstanceRequest(source: .image("x"), diskGB: 20, label: "swarm-b"))
            let fleet = Self.reconciler(client, InMemoryFleetStore(), policy: FleetPolicy(desiredSize: 0))
            // The first orphan's destroy meets a 429 (one try only); the second is destroyed all the same.
            await running.emulator.rateLimitNext(1, method: "DELETE")
            let actions = try await fleet.reconcile()
            #expect(actions.count == 2)
            #expect(await running.emulator.liveInstances.count == 1)
        }
    }

    @Test func theBudgetCapHolds() async throws {
        try await withVast(Self.fastEmulator) { running, client in
            let fleet = Self.reconciler(client, InMemoryFleetStore(), policy: FleetPolicy(budgetPerDay: 0.10))
            let actions = try await fleet.reconcile()
            #expect(actions.count == 1)
            guard case .warn(nil, let message)? = actions.first else { Issue.record("expected a warning, got \(actions)"); return }
            #expect(message.contains("daily budget of $0.10 would be exceeded"))
            #expect(await running.emulator.liveInstances.isEmpty)
        }
    }

    @Test func aFailedSearchDoesNotStopRecovery() async throws {
        try await withVast(Self.fastEmulator) { running, client in
            let store = InMemoryFleetStore()
            let fleet = Self.reconciler(client, store, policy: FleetPolicy())
            try await fleet.reconcile()
            let id = try #require(await store.members().first?.id)
            await store.setDesiredSize(2)
            await running.emulator.inject(.exited, instance: id)
            await running.emulator.exhaustSearchQuota()
            let actions = try await fleet.reconcile()
            #expect(actions.first == .reboot(id: id, reason: "vast reports it exited"))
            guard case .warn(nil, let message)? = actions.last else { Issue.record("expected a warning, got \(actions)"); return }
            #expect(message.contains("search quota"))
            // Until the quota resets, no more searches are sent.
            await running.emulator.clearRequests()
            try await fleet.reconcile()
            #expect(await !running.emulator.requests.contains { $0.uri.hasPrefix("/api/v0/bundles") })
        }
    }

    @Test func anOfferTakenBeforeCreateIsSearchedAgain() async throws {
        try await withVast(Self.fastEmulator) { running, client in
            let store = InMemoryFleetStore()
            let fleet = FleetReconciler(
                client: client,
                store: store,
                planner: FleetPlanner(policy: FleetPolicy()),
                filter: OfferFilter(gpuNames: ["RTX 5090"], minInetDownMbps: 100),
                download: DownloadEstimate(totalGB: 48),
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            ) { label in
                // Someone else rents the best offer between the search and the create.
                await running.emulator.takeOffer(id: 1004)
                return CreateInstanceRequest(source: .image("x"), diskGB: 100, label: label)
            }
            // The next best is rented in the same round.
            try await fleet.reconcile()
            #expect(await store.members().map(\.machineID) == [41_872])
        }
    }

    /// vast's index can go on listing an offer someone else rented; the fleet must not ask for it round after round.
    @Test func aTakenOfferThatStaysListedDoesNotBlockTheFleet() async throws {
        var configuration = Self.fastEmulator
        configuration.listsTakenOffers = true
        try await withVast(configuration) { running, client in
            await running.emulator.takeOffer(id: 1004)
            let store = InMemoryFleetStore()
            let fleet = Self.reconciler(client, store, policy: FleetPolicy(desiredSize: 2))
            let creates = { await running.emulator.requests.filter { $0.method == "PUT" && $0.uri.hasPrefix("/api/v0/asks/") }.map(\.uri) }
            try await fleet.reconcile()
            #expect(await store.members().count == 2)
            #expect(!(await store.members().map(\.machineID)).contains(41_875))
            // Wanting more later, the taken offer is still left out.
            await store.setDesiredSize(3)
            try await fleet.reconcile()
            #expect(await creates().filter { $0.hasPrefix("/api/v0/asks/1004/") }.count == 1)
        }
    }
}
