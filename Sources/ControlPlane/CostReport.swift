import Foundation

/// What `GET /v2/{endpoint}/costs` returns (JSON, or CSV with `Accept: text/csv` or `format=csv`), what
/// `swarmctl costs` prints and what the web page's Overview and Costs views show. Dollars are US dollars; days are
/// UTC calendar days written `YYYY-MM-DD`.
public struct CostReport: Codable, Sendable, Equatable {
    public enum Grouping: String, Codable, Sendable, CaseIterable {
        case day
        case job
    }

    public var from: String
    public var to: String
    public var group: Grouping
    public var currency: String
    /// One row per day of the range (days without spend included), when `group` is `day`.
    public var days: [DayCost]
    /// One row per finished job of the range, when `group` is `job`.
    public var jobs: [JobCost]
    public var totals: CostTotals

    public init(from: String, to: String, group: Grouping, currency: String = "USD", days: [DayCost], jobs: [JobCost], totals: CostTotals) {
        self.from = from
        self.to = to
        self.group = group
        self.currency = currency
        self.days = days
        self.jobs = jobs
        self.totals = totals
    }
}

/// Where a day's instance money went, by the state the instance was in.
public struct SpendByState: Codable, Sendable, Equatable {
    public var booting: Double
    public var idle: Double
    public var busy: Double
    /// Disk kept on stopped (warm) instances.
    public var stopped: Double

    public init(booting: Double = 0, idle: Double = 0, busy: Double = 0, stopped: Double = 0) {
        self.booting = booting
        self.idle = idle
        self.busy = busy
        self.stopped = stopped
    }
}

public struct DayCost: Codable, Sendable, Equatable {
    public var day: String
    public var jobsCompleted: Int
    /// Everything paid that day: instances (any state) plus jobs forwarded to fal.ai.
    public var spendUSD: Double
    public var spendByState: SpendByState
    /// Keyed by provider: `vastai`, `fal`.
    public var spendByProvider: [String: Double]
    /// Keyed by instance id.
    public var spendByInstance: [String: Double]
    /// What fal.ai's list price would have charged for the same completed outputs.
    public var falEquivalentUSD: Double
    public var savingUSD: Double

    enum CodingKeys: String, CodingKey {
        case day
        case jobsCompleted = "jobs_completed"
        case spendUSD = "spend_usd"
        case spendByState = "spend_by_state"
        case spendByProvider = "spend_by_provider"
        case spendByInstance = "spend_by_instance"
        case falEquivalentUSD = "fal_equivalent_usd"
        case savingUSD = "saving_usd"
    }

    public init(
        day: String,
        jobsCompleted: Int,
        spendUSD: Double,
        spendByState: SpendByState,
        spendByProvider: [String: Double],
        spendByInstance: [String: Double],
        falEquivalentUSD: Double,
        savingUSD: Double
    ) {
        self.day = day
        self.jobsCompleted = jobsCompleted
        self.spendUSD = spendUSD
        self.spendByState = spendByState
        self.spendByProvider = spendByProvider
        self.spendByInstance = spendByInstance
        self.falEquivalentUSD = falEquivalentUSD
        self.savingUSD = savingUSD
    }
}

public struct JobCost: Codable, Sendable, Equatable {
    public var jobID: String
    public var day: String
    /// `vastai` or `fal`.
    public var provider: String
    public var status: String
    public var instanceID: String?
    public var gpu: String?
    public var dollarsPerHour: Double?
    public var executionSeconds: Double
    /// Execution time × $/h (or fal.ai's charge for a forwarded job).
    public var directCostUSD: Double
    /// Direct cost plus the job's share of its instance's idle and boot time in the same hour.
    public var loadedCostUSD: Double
    public var videoSeconds: Double?
    public var resolution: String?
    public var falEquivalentUSD: Double?

    enum CodingKeys: String, CodingKey {
        case jobID = "job_id"
        case day
        case provider
        case status
        case instanceID = "instance_id"
        case gpu
        case dollarsPerHour = "dollars_per_hour"
        case executionSeconds = "execution_seconds"
        case directCostUSD = "direct_cost_usd"
        case loadedCostUSD = "loaded_cost_usd"
        case videoSeconds = "video_seconds"
        case resolution
        case falEquivalentUSD = "fal_equivalent_usd"
    }

    public init(
        jobID: String,
        day: String,
        provider: String,
        status: String,
        instanceID: String?,
        gpu: String?,
        dollarsPerHour: Double?,
        executionSeconds: Double,
        directCostUSD: Double,
        loadedCostUSD: Double,
        videoSeconds: Double?,
        resolution: String?,
        falEquivalentUSD: Double?
    ) {
        self.jobID = jobID
        self.day = day
        self.provider = provider
        self.status = status
        self.instanceID = instanceID
        self.gpu = gpu
        self.dollarsPerHour = dollarsPerHour
        self.executionSeconds = executionSeconds
        self.directCostUSD = directCostUSD
        self.loadedCostUSD = loadedCostUSD
        self.videoSeconds = videoSeconds
        self.resolution = resolution
        self.falEquivalentUSD = falEquivalentUSD
    }
}

public struct CostTotals: Codable, Sendable, Equatable {
    public var jobsCompleted: Int
    public var spendUSD: Double
    public var falEquivalentUSD: Double
    public var savingUSD: Double

    enum CodingKeys: String, CodingKey {
        case jobsCompleted = "jobs_completed"
        case spendUSD = "spend_usd"
        case falEquivalentUSD = "fal_equivalent_usd"
        case savingUSD = "saving_usd"
    }

    public init(jobsCompleted: Int, spendUSD: Double, falEquivalentUSD: Double, savingUSD: Double) {
        self.jobsCompleted = jobsCompleted
        self.spendUSD = spendUSD
        self.falEquivalentUSD = falEquivalentUSD
        self.savingUSD = savingUSD
    }
}

/// The one way the API, the CLI's server side and the web page obtain a cost report.
public protocol CostReporting: Sendable {
    /// `from` and `to` are inclusive UTC days.
    func costReport(endpoint: String, from: Date, to: Date, group: CostReport.Grouping, now: Date) async throws -> CostReport
}
