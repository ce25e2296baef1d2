import Foundation
import SwarmCore
import VastAI

/// `swarmctl instance down`: sets the wanted count to 0 in the database first, so that no `serve` (running now or
/// started later) rents again, then destroys every instance the database or a `<prefix>-` label says is the fleet's,
/// confirms each is gone and forgets it (which revokes its worker key).
public struct FleetTeardown: Sendable {
    public struct Outcome: Sendable, Hashable {
        public var id: Int
        public var label: String?
        /// vast showed it gone within the confirmation time.
        public var confirmed: Bool
    }

    /// Instances still listed after every pass.
    public struct Remaining: Error, CustomStringConvertible {
        public var ids: [Int]
        public var description: String {
            "vast.ai still lists instance(s) \(ids.map(String.init).joined(separator: ", ")) after the destroys; "
                + "run 'swarmctl instance down' again, or destroy them in the vast.ai console"
        }
    }

    let client: VastAIClient
    let store: DatabaseFleetStore
    let labelStem: String
    /// How long to wait for each destroyed instance to read as gone.
    let confirmTimeout: Duration
    let pollInterval: Duration
    /// Wait before listing again: a round a running `serve` began before the count changed may still rent one.
    let settle: Duration

    public init(
        client: VastAIClient,
        store: DatabaseFleetStore,
        labelPrefix: String,
        confirmTimeout: Duration = .seconds(120),
        pollInterval: Duration = .seconds(3),
        settle: Duration = .seconds(5)
    ) {
        self.client = client
        self.store = store
        self.labelStem = labelPrefix + "-"
        self.confirmTimeout = confirmTimeout
        self.pollInterval = pollInterval
        self.settle = settle
    }

    /// What would be destroyed now: instances labeled `<prefix>-…` and those the database still keeps, by id.
    public func targets() async throws -> [(id: Int, label: String?)] {
        var found: [Int: String?] = [:]
        for instance in try await client.instances() where instance.label?.hasPrefix(labelStem) == true && !instance.isReleased {
            found[instance.id] = instance.label
        }
        // Kept even when vast does not list it: a new instance reads as null for a while, yet bills.
        for member in try await store.members() where found[member.id] == nil {
            found[member.id] = member.label
        }
        return found.keys.sorted().map { ($0, found[$0] ?? nil) }
    }

    /// Runs the teardown; `report` gets one line per instance as it is confirmed.
    /// - Throws: `Remaining` when instances are still listed after three passes.
    public func run(report: @Sendable (String) -> Void) async throws -> [Outcome] {
        try await store.setDesiredSize(0)
        var outcomes: [Outcome] = []
        for pass in 1...3 {
            let targets = try await targets()
            if targets.isEmpty { return outcomes }
            guard pass < 3 else { throw Remaining(ids: targets.map(\.id)) }
            for target in targets {
                try await client.destroyInstance(id: target.id)
                let confirmed = try await client.confirmGone(id: target.id, timeout: confirmTimeout, pollInterval: pollInterval)
                let name = "\(target.id)" + (target.label.map { " \($0)" } ?? "")
                if confirmed {
                    try await store.remove(id: target.id)
                    report("destroyed \(name): confirmed gone")
                } else {
                    report("destroy of \(name) sent, but vast.ai still shows it after \(confirmTimeout); looking again")
                }
                outcomes.append(Outcome(id: target.id, label: target.label, confirmed: confirmed))
            }
            try await Task.sleep(for: settle)
        }
        return outcomes
    }
}
