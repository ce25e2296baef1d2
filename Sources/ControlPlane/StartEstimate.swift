import Fleet
import Foundation
import JobStore
import VastAI

/// How long until a starting worker is READY, for a queued job's status: a rental downloads and boots, a resume only
/// boots. The rental's time is measured on the fleet's recent instances (rental to first READY, `fleet_worker_ready`)
/// once there are any, else it comes from `serve`'s `--download-gb` at 500 Mb/s plus SwarmUI's boot.
struct StartEstimate: Sendable, Hashable {
    var coldStart: ColdStart
    /// The median of the recent instances' seconds from rental to first READY; nil: none measured yet.
    var measuredRental: Double?

    /// Recent instances, newest first, whose boots are measured.
    static let measuredInstances = 5

    var rentalSeconds: Double { measuredRental ?? coldStart.downloadSeconds + coldStart.bootSeconds }
    var resumeSeconds: Double { coldStart.bootSeconds }

    /// The median rental-to-READY of the newest `measuredInstances` instances that became READY.
    static func measured(_ instances: [InstanceCostRecord]) -> Double? {
        let delays = instances.sorted { $0.createdAt > $1.createdAt }.compactMap { instance in
            instance.readyAt.map { $0.timeIntervalSince(instance.createdAt) }.flatMap { $0 >= 0 ? $0 : nil }
        }
        let recent = delays.prefix(measuredInstances).sorted()
        guard !recent.isEmpty else { return nil }
        let middle = recent.count / 2
        return recent.count % 2 == 1 ? recent[middle] : (recent[middle - 1] + recent[middle]) / 2
    }
}

extension FleetSettings {
    /// A new instance's start from the flags: the download (`--download-gb`) at 500 Mb/s, a typical host (48 GB: about
    /// 13 minutes, the "about 15"), then SwarmUI's boot.
    public var coldStart: ColdStart {
        ColdStart(downloadSeconds: Double(download.totalBytes) * 8 / 500e6, bootSeconds: 90)
    }
}
