import Foundation
import JobProtocol
import JobStore
import Logging
import ServiceLifecycle
import SwarmCore
import Synchronization

/// When a job with provider `auto` goes to fal.ai instead of waiting for the fleet. Pure: table-tested.
public enum SpillDecision: Sendable, Equatable {
    /// Leave it to the fleet.
    case wait
    /// Forward it to fal.ai now.
    case forward
    /// It would spill, but today's budget cannot pay for it: it waits for the fleet.
    case budgetExhausted(spent: Double, budget: Double, price: Double)

    public struct Inputs: Sendable {
        /// How long the job has waited.
        public var age: Duration
        /// A READY worker with no job, which will take it at once.
        public var idleReadyWorker: Bool
        /// Jobs ahead of it in the queue.
        public var queuePosition: Int
        /// How long until a READY worker takes it, when known (busy workers' remaining time); nil when no READY worker.
        public var estimatedWait: Duration?
        public var spentToday: Double
        public var budgetPerDay: Double
        /// fal.ai's price of this job; nil when it cannot be forwarded.
        public var price: Double?
        public var spillAfter: Duration

        public init(
            age: Duration,
            idleReadyWorker: Bool,
            queuePosition: Int,
            estimatedWait: Duration?,
            spentToday: Double,
            budgetPerDay: Double,
            price: Double?,
            spillAfter: Duration
        ) {
            self.age = age
            self.idleReadyWorker = idleReadyWorker
            self.queuePosition = queuePosition
            self.estimatedWait = estimatedWait
            self.spentToday = spentToday
            self.budgetPerDay = budgetPerDay
            self.price = price
            self.spillAfter = spillAfter
        }
    }

    /// Spill when the job's wait for a READY worker (waited so far, plus the estimate when there is one) exceeds
    /// `spillAfter`; with no estimate (no READY worker) it spills once it has waited `spillAfter`. An idle READY
    /// worker at the head of the queue takes it: never spill then.
    public static func decide(_ inputs: Inputs) -> SpillDecision {
        guard let price = inputs.price else { return .wait }
        if inputs.idleReadyWorker, inputs.queuePosition == 0 { return .wait }
        let projected = inputs.age + (inputs.estimatedWait ?? .zero)
        guard projected > inputs.spillAfter || (inputs.estimatedWait == nil && inputs.age >= inputs.spillAfter) else { return .wait }
        guard inputs.spentToday + price <= inputs.budgetPerDay + 1e-9 else {
            return .budgetExhausted(spent: inputs.spentToday, budget: inputs.budgetPerDay, price: price)
        }
        return .forward
    }

    /// The UTC day a spend counts against, "yyyy-MM-dd".
    public static func day(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
    }
}

/// `--spill-after` and `--spill-budget-per-day`.
public struct SpillSettings: Sendable {
    public var after: Duration
    public var budgetPerDay: Double
    public init(after: Duration, budgetPerDay: Double) {
        self.after = after
        self.budgetPerDay = budgetPerDay
    }
}

/// Looks at the queued `auto` jobs every second and forwards those `SpillDecision` says to, paying from the day's
/// budget first (atomically in the store, so replicas share it).
final class SpillOverService: Service, Sendable {
    let core: ControlPlaneCore
    let forwarder: FalForwarder
    let settings: SpillSettings
    /// The oldest queued jobs looked at per round: past them, jobs are younger and wait their turn.
    static let candidates = 200

    init(core: ControlPlaneCore, forwarder: FalForwarder, settings: SpillSettings) {
        self.core = core
        self.forwarder = forwarder
        self.settings = settings
    }

    func run() async throws {
        await core.migrated.wait()
        core.logger.info("spill-over to fal.ai after \(settings.after) of waiting, up to $\(settings.budgetPerDay) per UTC day")
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            for endpoint in core.configuration.endpoints.sorted() {
                do { try await round(endpoint: endpoint) } catch { core.logger.warning("spill-over round failed: \(error)") }
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// One read of the oldest queued jobs and of the day's spend per round; the spend is kept current as this round
    /// reserves from it (the reservation itself is atomic in the store).
    private func round(endpoint: String) async throws {
        let queued = try await core.store.oldestQueuedJobs(endpoint: endpoint, limit: Self.candidates)
        guard !queued.isEmpty else { return }
        let workers = try await core.store.workers(endpoint: endpoint)
        let fresh = workers.filter { Date().timeIntervalSince($0.lastSeen) < core.configuration.leaseTimeout.seconds }
        let idleReady = fresh.contains { $0.report?.stage == .ready && $0.jobIDs.isEmpty }
        let now = Date()
        let day = SpillDecision.day(now)
        var spent = try await core.store.falSpend(day: day)
        var waiting: Set<String> = []
        defer { core.spillWaits.keep(only: waiting, endpoint: endpoint) }
        for (position, job) in queued.enumerated() {
            let provider = job.input["provider"]?.stringValue ?? "auto"
            guard provider == "auto" else { continue }
            let request = try? FalForwardMapping.request(for: job.input)
            let price = request.flatMap { FalPriceList.price(frames: $0.frames, resolution: $0.resolution) }
            let decision = SpillDecision.decide(
                .init(
                    age: .milliseconds(Int64(now.timeIntervalSince(job.createdAt) * 1000)),
                    idleReadyWorker: idleReady,
                    queuePosition: position,
                    estimatedWait: nil,
                    spentToday: spent,
                    budgetPerDay: settings.budgetPerDay,
                    price: price,
                    spillAfter: settings.after
                )
            )
            switch decision {
            case .wait: continue
            case .budgetExhausted(let spent, let budget, let price):
                let reason =
                    "waits for the fleet: the spill-over budget of $\(budget) for \(day) has $\(String(format: "%.2f", spent)) spent, and fal.ai would charge $\(String(format: "%.2f", price))"
                waiting.insert(job.id)
                if core.spillWaits.record(id: job.id, endpoint: endpoint, reason: reason) {
                    core.logger.notice("job \(job.id) \(reason)")
                }
            case .forward:
                guard let price, try await core.store.reserveFalSpend(day: day, dollars: price, budget: settings.budgetPerDay) else { continue }
                if try await forwarder.claim(id: job.id) == nil {
                    _ = try await core.store.reserveFalSpend(day: day, dollars: -price, budget: 0)  // a worker took it meanwhile
                } else {
                    spent += price
                    core.logger.info(
                        "job \(job.id) spilled over to fal.ai after waiting \(Int(now.timeIntervalSince(job.createdAt))) s ($\(String(format: "%.2f", price)))"
                    )
                }
            }
        }
    }
}
