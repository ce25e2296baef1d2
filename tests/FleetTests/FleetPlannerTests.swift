import Fleet
import Foundation
import JobProtocol
import SwarmCore
import Testing
import VastAI
import VastAIEmulator

@Suite struct KnownFailureTests {
    @Test func recognizesTheFailuresOfTheContract() throws {
        let cuda = try #require(
            KnownFailure.recognize(
                statusMessage: """
                    Error response from daemon: failed to create task for container: OCI runtime create failed: nvidia-container-cli: \
                    requirement error: unsatisfied condition: cuda>=12.8, please update your driver to a newer version
                    """
            )
        )
        #expect(cuda.kind == .cudaTooNew)
        #expect(cuda.anotherMachineMayHelp)
        #expect(cuda.advice.contains("--min-cuda"))
        #expect(KnownFailure.recognize(statusMessage: "write /var/lib/docker/x: no space left on device")?.kind == .diskFull)
        #expect(KnownFailure.recognize(statusMessage: "Error response from daemon: manifest unknown")?.kind == .imageNotPullable)
        #expect(KnownFailure.recognize(statusMessage: "pull access denied for ghcr.io/o/x, repository does not exist")?.kind == .imageNotPullable)
        #expect(KnownFailure.recognize(statusMessage: "unexpected EOF")?.kind == .pullInterrupted)
        #expect(KnownFailure.recognize(statusMessage: "OCI runtime create failed: runc create failed")?.kind == .containerNotCreated)
        #expect(KnownFailure.recognize(statusMessage: "Download complete") == nil)
        #expect(KnownFailure.recognize(statusMessage: "success, running ghcr.io/o/swarm-worker:stable/ssh") == nil)

        let kernel = try #require(
            KnownFailure.recognize(
                statusMessage: "success, running x/ssh",
                logLines: ["booting", "RuntimeError: CUDA error: no kernel image is available for execution on the device", "retrying"]
            )
        )
        #expect(kernel.kind == .noKernelImage)
        #expect(!kernel.anotherMachineMayHelp)
        #expect(
            KnownFailure.recognize(
                statusMessage: nil,
                logLines: ["NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not compatible with the current PyTorch installation."]
            )?.kind == .noKernelImage
        )
        // Pull patterns are read only in status_msg: an app's "not found" is not an image problem.
        #expect(KnownFailure.recognize(statusMessage: nil, logLines: ["model file not found, downloading", "401 Unauthorized from civitai"]) == nil)
    }
}

@Suite struct FleetPlannerTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    static func minutes(_ value: Double) -> Date { start.addingTimeInterval(value * 60) }

    static func ranked(_ id: Int, machine: Int, dph: Double = 0.6) -> RankedOffer {
        let offer = Offer(json: VastAIEmulator.sampleOffer(id: id, machineID: machine, dphTotal: dph, inetDownMbps: 1000, inetDownCostPerGB: 0))!
        return RankedOffer(offer: offer, cost: CostEstimate(offer: offer, bytes: 45_000_000_000)!)
    }

    static func vast(_ id: Int, _ status: String?, machine: Int = 7, message: String? = nil, label: String? = nil) -> Instance {
        var record: [String: JSONValue] = ["id": .int(id), "machine_id": .int(machine)]
        if let status { record["actual_status"] = .string(status) }
        if let message { record["status_msg"] = .string(message) }
        if let label { record["label"] = .string(label) }
        return Instance(json: .object(record))!
    }

    static func member(
        _ id: Int = 1,
        createdMinutesAgo: Double = 5,
        at now: Double = 0,
        vast status: String? = "running",
        message: String? = nil,
        stage: WorkerStage? = nil,
        pingMinutesAgo: Double? = nil,
        reboots: Int = 0,
        rebootedMinutesAgo: Double? = nil
    ) -> FleetMember {
        FleetMember(
            id: id,
            label: "swarm-\(id)",
            machineID: 7,
            createdAt: minutes(now - createdMinutesAgo),
            vast: status == "null" ? nil : vast(id, status, message: message),
            stage: stage,
            lastPing: pingMinutesAgo.map { minutes(now - $0) },
            reboots: reboots,
            lastRebootAt: rebootedMinutesAgo.map { minutes(now - $0) }
        )
    }

    static func planner(_ policy: FleetPolicy = FleetPolicy()) -> FleetPlanner {
        FleetPlanner(policy: policy, makeUnique: { "u1" })
    }

    static let offers = [ranked(1001, machine: 7), ranked(1002, machine: 8), ranked(1003, machine: 9)]

    @Test func createsFromTheBestOfferOnAnUnusedMachine() {
        let empty = Self.planner().plan(FleetObservation(now: Self.start, members: [], offers: Self.offers))
        #expect(empty == [.create(offer: Self.offers[0], label: "swarm-u1")])
        // Machine 8 failed before and machine 7 is in use: the third offer is the one.
        let actions = Self.planner(FleetPolicy(desiredSize: 2)).plan(
            FleetObservation(
                now: Self.start,
                members: [Self.member(stage: .ready, pingMinutesAgo: 0.2)],
                offers: Self.offers,
                failedMachineIDs: [8]
            )
        )
        #expect(actions == [.create(offer: Self.offers[2], label: "swarm-u1")])
        let none = Self.planner().plan(FleetObservation(now: Self.start, members: [], offers: [], failedMachineIDs: []))
        #expect(none.count == 1)
        guard case .warn(nil, let message)? = none.first else { Issue.record("expected a warning, got \(none)"); return }
        #expect(message.contains("no offer fits"))
    }

    @Test func aHealthyFleetNeedsNothing() {
        var serving = Self.member(stage: .ready, pingMinutesAgo: 1)
        // An old line in a serving worker's log is not a diagnosis.
        serving.logTail = ["saving output failed: no space left on device"]
        let actions = Self.planner().plan(FleetObservation(now: Self.start, members: [serving], offers: Self.offers))
        #expect(actions.isEmpty)
    }

    @Test func aNullRecordIsWaitedForThenForgotten() {
        let fresh = Self.planner().plan(
            FleetObservation(now: Self.start, members: [Self.member(createdMinutesAgo: 1, vast: "null")], offers: Self.offers)
        )
        #expect(fresh.count == 1)
        guard case .report(1, let line)? = fresh.first else { Issue.record("expected a status line, got \(fresh)"); return }
        #expect(line.contains("waiting for vast"))
        let gone = Self.planner().plan(
            FleetObservation(now: Self.start, members: [Self.member(createdMinutesAgo: 10, vast: "null")], offers: Self.offers)
        )
        #expect(gone == [.forget(id: 1, reason: "vast no longer knows the instance"), .create(offer: Self.offers[0], label: "swarm-u1")])
    }

    @Test func aDeadInstanceIsRebootedThenReplacedOnAnotherMachine() {
        let planner = Self.planner()
        let exited = planner.plan(FleetObservation(now: Self.start, members: [Self.member(vast: "exited")], offers: Self.offers))
        #expect(exited == [.reboot(id: 1, reason: "vast reports it exited")])

        let waiting = planner.plan(
            FleetObservation(
                now: Self.start,
                members: [Self.member(vast: "exited", reboots: 1, rebootedMinutesAgo: 1)],
                offers: Self.offers
            )
        )
        #expect(waiting.count == 1)
        guard case .report? = waiting.first else { Issue.record("expected a status line, got \(waiting)"); return }

        let replaced = planner.plan(
            FleetObservation(
                now: Self.start,
                members: [Self.member(vast: "offline", reboots: 1, rebootedMinutesAgo: 6)],
                offers: Self.offers
            )
        )
        // No create in the same round: the replacement waits for the destroy, so two are never paid for.
        #expect(replaced == [.replace(id: 1, machineID: 7, reason: "vast reports it offline; 1 reboot did not help")])

        var leaving = Self.member(vast: "null")
        leaving.destroyRequestedAt = Self.minutes(-0.5)
        let next = planner.plan(FleetObservation(now: Self.start, members: [leaving], offers: Self.offers, failedMachineIDs: [7]))
        #expect(next == [.forget(id: 1, reason: "destroy confirmed"), .create(offer: Self.offers[1], label: "swarm-u1")])
    }

    @Test func aSilentWorkerIsDead() {
        let actions = Self.planner().plan(
            FleetObservation(
                now: Self.start,
                members: [Self.member(createdMinutesAgo: 60, stage: .ready, pingMinutesAgo: 6)],
                offers: Self.offers
            )
        )
        #expect(actions == [.reboot(id: 1, reason: "no worker ping for 6 min 0 s")])
        // After a reboot, silence counts from the reboot.
        let rebooted = Self.planner().plan(
            FleetObservation(
                now: Self.start,
                members: [Self.member(createdMinutesAgo: 60, stage: .ready, pingMinutesAgo: 10, reboots: 1, rebootedMinutesAgo: 2)],
                offers: Self.offers
            )
        )
        #expect(rebooted.allSatisfy { if case .report = $0 { true } else { false } })
    }

    @Test func knownFailuresReplaceOrHold() {
        let cuda = Self.planner().plan(
            FleetObservation(
                now: Self.start,
                members: [Self.member(vast: "created", message: VastAIEmulatorMessages.cudaMismatch)],
                offers: Self.offers
            )
        )
        #expect(cuda.count == 1)
        guard case .replace(1, 7, let reason)? = cuda.first else { Issue.record("expected a replace, got \(cuda)"); return }
        #expect(reason.hasPrefix("cudaTooNew"))

        let pull = Self.planner().plan(
            FleetObservation(
                now: Self.start,
                members: [Self.member(vast: "loading", message: "Error response from daemon: manifest unknown")],
                offers: Self.offers
            )
        )
        // The instance still holds its slot until its destroy is confirmed, so no warning about creation yet.
        #expect(pull.count == 2)
        guard case .destroy(1, _)? = pull.first, case .hold(let hold)? = pull.last else {
            Issue.record("expected destroy, hold; got \(pull)")
            return
        }
        #expect(hold.hasPrefix("imageNotPullable"))

        // A hold from an earlier round keeps creation off.
        let held = Self.planner().plan(FleetObservation(now: Self.start, members: [], offers: Self.offers, creationHold: "imageNotPullable"))
        #expect(held.count == 1)
        guard case .warn(nil, _)? = held.first else { Issue.record("expected a warning, got \(held)"); return }

        var kernel = Self.member(vast: "running", stage: .startingApp, pingMinutesAgo: 0.1)
        kernel.logTail = ["RuntimeError: CUDA error: no kernel image is available for execution on the device"]
        let kernelActions = Self.planner().plan(FleetObservation(now: Self.start, members: [kernel], offers: Self.offers))
        guard case .destroy(1, let why)? = kernelActions.first else { Issue.record("expected a destroy, got \(kernelActions)"); return }
        #expect(why.contains("--gpu"))
    }

    static let tokenMissing = WorkerFailure(
        reason:
            "models need download tokens that are not set: 'wan' needs CIVITAI_API_TOKEN (set the variable in the instance's environment and restart)",
        kind: .permanent
    )

    /// Round by round, as the reconciler would feed them: the instance's ERROR, its destroy, vast's confirmation.
    @Test(arguments: [
        // A permanent ERROR: destroyed once, creation held with what to set.
        (WorkerFailure.Kind.permanent, "destroy+hold", "none", "warn"),
        // A transient one: replaced on another machine, which is then rented.
        (.transient, "replace", "none", "create"),
    ])
    func aWorkerErrorIsActedOnByItsKind(kind: WorkerFailure.Kind, first: String, second: String, third: String) {
        let failure = WorkerFailure(reason: Self.tokenMissing.reason, kind: kind)
        let errored = Self.member(createdMinutesAgo: 4, vast: "running", stage: .error(failure), pingMinutesAgo: 0.1)
        let round1 = Self.planner().plan(FleetObservation(now: Self.start, members: [errored], offers: Self.offers))
        #expect(Self.shape(round1) == first)
        if kind == .permanent {
            #expect(round1.first == .destroy(id: 1, reason: "its worker cannot start: \(failure.reason)"))
            guard case .hold(let hold)? = round1.last else { Issue.record("expected a hold, got \(round1)"); return }
            #expect(hold.contains("CIVITAI_API_TOKEN") && hold.contains("--instance-env"))
        } else {
            #expect(round1 == [.replace(id: 1, machineID: 7, reason: "its worker failed: \(failure.reason)")])
        }
        let hold: String? = round1.lazy.compactMap { if case .hold(let reason) = $0 { reason } else { nil } }.first

        // Destroy sent, not yet confirmed, the ERROR ping still the last: nothing more (no second destroy, no create).
        var leaving = errored
        leaving.destroyRequestedAt = Self.minutes(-0.2)
        let round2 = Self.planner().plan(
            FleetObservation(
                now: Self.start,
                members: [leaving],
                offers: Self.offers,
                failedMachineIDs: kind == .transient ? [7] : [],
                creationHold: hold
            )
        )
        #expect(Self.shape(round2) == second)

        // vast confirms: forgotten; then a create only for a transient failure, on another machine.
        leaving.vast = nil
        let round3 = Self.planner().plan(
            FleetObservation(
                now: Self.start,
                members: [leaving],
                offers: Self.offers,
                failedMachineIDs: kind == .transient ? [7] : [],
                creationHold: hold
            )
        )
        #expect(round3.first == .forget(id: 1, reason: "destroy confirmed"))
        #expect(Self.shape(Array(round3.dropFirst())) == third)
        if kind == .transient { #expect(round3.last == .create(offer: Self.offers[1], label: "swarm-u1")) }

        // Later rounds with the hold: never a create, however many rounds pass.
        for minute in 1...5 where kind == .permanent {
            let later = Self.planner().plan(FleetObservation(now: Self.minutes(Double(minute)), members: [], offers: Self.offers, creationHold: hold))
            #expect(!later.contains { if case .create = $0 { true } else { false } })
        }
    }

    /// The kinds of actions in order, e.g. "destroy+hold"; "none" when empty.
    static func shape(_ actions: [FleetAction]) -> String {
        actions.isEmpty
            ? "none"
            : actions.map { action in
                switch action {
                case .create: "create"
                case .reboot: "reboot"
                case .replace: "replace"
                case .destroy: "destroy"
                case .forget: "forget"
                case .hold: "hold"
                case .warn: "warn"
                case .report: "report"
                }
            }.joined(separator: "+")
    }

    @Test func aSlowStartIsReportedWarnedAndOptionallyReplaced() {
        let early = Self.planner().plan(
            FleetObservation(
                now: Self.start,
                members: [Self.member(createdMinutesAgo: 3, vast: "loading", message: "Download complete")],
                offers: Self.offers
            )
        )
        #expect(early.count == 1)
        guard case .report(1, let line)? = early.first else { Issue.record("expected a status line, got \(early)"); return }
        #expect(line == "swarm-1 (1): starting for 3 min 0 s: vast loading \"Download complete\", worker not heard from")

        var reported = Self.member(createdMinutesAgo: 3.5, vast: "loading")
        reported.lastStatusAt = Self.minutes(-0.5)
        #expect(Self.planner().plan(FleetObservation(now: Self.start, members: [reported], offers: Self.offers)).isEmpty)

        let slow = Self.planner().plan(
            FleetObservation(
                now: Self.start,
                members: [Self.member(createdMinutesAgo: 21, vast: "loading", message: "Download complete")],
                offers: Self.offers
            )
        )
        guard case .warn(1, let warning)? = slow.first else { Issue.record("expected a warning, got \(slow)"); return }
        #expect(warning.contains("still starting after 21 min"))
        #expect(warning.contains("--min-inet-down"))

        let downloading = Self.member(
            createdMinutesAgo: 40,
            vast: "running",
            stage: .downloading(DownloadProgress(doneBytes: 1, totalBytes: 2)),
            pingMinutesAgo: 0.1
        )
        let replaced = Self.planner(FleetPolicy(startReplaceAfter: .seconds(1800))).plan(
            FleetObservation(now: Self.start, members: [downloading], offers: Self.offers)
        )
        #expect(replaced == [.replace(id: 1, machineID: 7, reason: "not ready after 40 min 0 s")])
    }

    @Test func theBudgetCapHolds() {
        let cost = Self.offers[0].cost.total
        let policy = FleetPolicy(desiredSize: 2, budgetPerDay: 10)
        let fits = Self.planner(policy).plan(FleetObservation(now: Self.start, members: [], offers: Self.offers, spentToday: 10 - 2 * cost - 0.01))
        #expect(fits.count == 2)
        let one = Self.planner(policy).plan(FleetObservation(now: Self.start, members: [], offers: Self.offers, spentToday: 10 - cost - 0.01))
        #expect(one.count == 2)
        guard case .create? = one.first, case .warn(nil, let message)? = one.last else {
            Issue.record("expected create then warn, got \(one)"); return
        }
        #expect(message.contains("daily budget of $10.00 would be exceeded"))
    }

    @Test func orphansAreDestroyedAndOthersLeftAlone() {
        let account = [
            Self.vast(1, "running", label: "swarm-1"), Self.vast(50, "running", label: "swarm-9f3a"),
            Self.vast(51, "running", label: "swarmy-1"), Self.vast(52, "running", label: "my-notebook"), Self.vast(53, "running"),
        ]
        let actions = Self.planner().plan(
            FleetObservation(
                now: Self.start,
                members: [Self.member(stage: .ready, pingMinutesAgo: 0.5)],
                accountInstances: account,
                offers: Self.offers
            )
        )
        #expect(actions == [.destroy(id: 50, reason: "orphan: labeled swarm-9f3a but not in the fleet's database")])
    }

    @Test func scalingDownPrefersInstancesNotServing() {
        let ready = Self.member(1, createdMinutesAgo: 60, stage: .ready, pingMinutesAgo: 0.5)
        let starting = Self.member(2, createdMinutesAgo: 2, vast: "loading")
        let toOne = Self.planner(FleetPolicy(desiredSize: 1)).plan(
            FleetObservation(now: Self.start, members: [ready, starting], offers: Self.offers)
        )
        #expect(toOne.contains(.destroy(id: 2, reason: "the fleet size is 1")))
        #expect(!toOne.contains { if case .destroy(1, _) = $0 { true } else { false } })
        let toZero = Self.planner(FleetPolicy(desiredSize: 0)).plan(
            FleetObservation(now: Self.start, members: [ready, starting], offers: Self.offers)
        )
        #expect(toZero.filter { if case .destroy = $0 { true } else { false } }.count == 2)
        #expect(!toZero.contains { if case .create = $0 { true } else { false } })
    }

    @Test func actionsReadWellInALog() {
        let create = FleetAction.create(offer: Self.offers[0], label: "swarm-u1")
        #expect(
            create.description == "create swarm-u1 on offer 1001 (1x RTX 5090, $0.600/h, 1000 Mb/s, machine 7): about $0.1600 in its first 10 minutes"
        )
        #expect(
            FleetAction.replace(id: 3, machineID: 7, reason: "vast reports it exited").description
                == "replace instance 3 (machine 7) on another machine: vast reports it exited"
        )
        #expect(FleetAction.warn(id: nil, message: "no offer fits").description == "no offer fits")
    }

    @Test func anUnconfirmedDestroyIsSentAgain() {
        var leaving = Self.member(vast: "running")
        leaving.destroyRequestedAt = Self.minutes(-3)
        let actions = Self.planner().plan(FleetObservation(now: Self.start, members: [leaving], offers: Self.offers))
        #expect(actions == [.destroy(id: 1, reason: "still listed 3 min 0 s after the destroy; asking again")])
        leaving.destroyRequestedAt = Self.minutes(-1)
        #expect(Self.planner().plan(FleetObservation(now: Self.start, members: [leaving], offers: Self.offers)).isEmpty)
    }
}

/// The emulator's CUDA message, as vast shows it in `status_msg`.
enum VastAIEmulatorMessages {
    static let cudaMismatch =
        "Error response from daemon: OCI runtime create failed: nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.8, please update your driver to a newer version"
}
