import ArgumentParser
import Fleet
import Foundation
import Logging
import SwarmCore
import VastAI

/// `swarmctl offers`: searches vast.ai with the fleet's filters and prints the offers ranked by what their first
/// 10 minutes are expected to cost, download included, so the choice the fleet makes can be checked by hand.
struct Offers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rank vast.ai offers by the expected cost of their first 10 minutes.",
        discussion: """
            Needs VAST_API_KEY (VAST_API_URL overrides the API's address). Cost = dph_total × 10/60 + download GB × \
            inet_down_cost + the pull time at inet_down priced at dph_total. The download defaults to the image \
            estimate (15 GB) plus the models in --models; --download-gb sets it. Defaults for --gpu, --max-dph and \
            --disk come from SWARM_FLEET_GPU, SWARM_FLEET_MAX_DPH and SWARM_FLEET_DISK_GB.
            """
    )

    @Option(name: .customLong("gpu"), help: "GPU model as vast spells it, e.g. \"RTX 5090\" (repeatable).") var gpus: [String] = []
    @Option(name: .customLong("num-gpus"), help: "GPUs per instance.") var numGPUs = 1
    @Option(name: .customLong("gpu-ram"), help: "Least memory per GPU, GB.") var gpuRAM: Double?
    @Option(name: .customLong("min-cuda"), help: "Least CUDA version the host's driver must support (the image's).") var minCUDA = 12.8
    @Option(help: "Disk per instance, GB.") var disk: Double?
    @Option(help: "Least host reliability, 0 to 1.") var minReliability = 0.95
    @Option(help: "Least download speed, Mb/s.") var minInetDown = 200.0
    @Option(help: "Least number of direct ports.") var minDirectPorts = 8
    @Flag(help: "Include hosts vast has not verified.") var includeUnverified = false
    @Option(name: .customLong("max-dph"), help: "Highest price, $/h including storage.") var maxDPH: Double?
    @Option(help: "Least rental time the host allows, hours.") var minDurationHours = 24.0
    @Option(name: .customLong("exclude-machine"), help: "A machine id to leave out (repeatable).") var excludedMachines: [Int] = []
    @Option(name: .customLong("download-gb"), help: "GB each instance downloads (default: image estimate + models).") var downloadGB: Double?
    @Option(help: "Models manifest for the download estimate.") var models = "builder/models.json"
    @Option(help: "Offers to print.") var limit = 10
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Flag(help: "Also print the offers left out and why.") var showRejected = false

    func validate() throws {
        guard limit > 0 else { throw ValidationError("--limit must be at least 1") }
        if let downloadGB, downloadGB < 0 { throw ValidationError("--download-gb cannot be negative") }
    }

    func run() async throws {
        let environment = ProcessInfo.processInfo.environment
        let clientConfiguration: VastAIClient.Configuration
        do {
            clientConfiguration = try VastAIClient.Configuration(environment: environment)
        } catch {
            throw ValidationError("set VAST_API_KEY to a vast.ai API key")
        }
        let filter = try makeFilter(environment: environment)
        let download = try downloadEstimate()
        let client = VastAIClient(configuration: clientConfiguration, logger: Logger(label: "swarmctl.offers"))
        let ranking: OfferRanking
        do {
            ranking = OfferRanking(offers: try await client.searchOffers(query: filter.searchQuery), filter: filter, download: download)
        } catch let error as VastAIError {
            printError("swarmctl offers: \(error)")
            throw ExitCode.failure
        }
        let shown = Array(ranking.ranked.prefix(limit))
        if json {
            print(Self.json(shown, download: download).jsonString())
        } else {
            printError(
                "download per instance: \(Self.gigabytes(download.totalBytes)) GB (image \(Self.gigabytes(download.imageBytes)) + models \(Self.gigabytes(download.modelBytes)))"
            )
            print(Self.table(shown))
        }
        if !ranking.rejected.isEmpty {
            printError(ranking.rejectionSummary)
            if showRejected {
                for (offer, reasons) in ranking.rejected {
                    printError("  \(offer.id)  \(offer.gpuSummary)  \(reasons.map(\.description).joined(separator: "; "))")
                }
            }
        }
        if shown.isEmpty {
            printError("no offer fits; loosen the filters (see --help)")
            throw ExitCode.failure
        }
    }

    private func makeFilter(environment: [String: String]) throws -> OfferFilter {
        func number(_ name: String) throws -> Double? {
            guard let text = environment[name]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else { return nil }
            guard let value = Double(text) else { throw ValidationError("\(name) must be a number, not \(text)") }
            return value
        }
        let gpuNames = gpus.isEmpty ? (environment["SWARM_FLEET_GPU"] ?? "").split(separator: ",").map(String.init) : gpus
        return OfferFilter(
            gpuNames: gpuNames,
            numGPUs: numGPUs,
            minGPURAMGB: gpuRAM,
            minCUDA: minCUDA,
            diskGB: try disk ?? number("SWARM_FLEET_DISK_GB") ?? 100,
            minReliability: minReliability,
            minInetDownMbps: minInetDown,
            minDirectPorts: minDirectPorts,
            verifiedOnly: !includeUnverified,
            maxDPH: try maxDPH ?? number("SWARM_FLEET_MAX_DPH"),
            minDurationHours: minDurationHours,
            excludedMachineIDs: Set(excludedMachines)
        )
    }

    private func downloadEstimate() throws -> DownloadEstimate {
        if let downloadGB { return DownloadEstimate(totalGB: downloadGB) }
        guard let data = FileManager.default.contents(atPath: models) else {
            throw ValidationError("cannot read \(models); run from the repository or pass --models PATH or --download-gb N")
        }
        do {
            return try DownloadEstimate(modelsManifest: data)
        } catch {
            throw ValidationError("\(models): \(error)")
        }
    }

    static func gigabytes(_ bytes: Int64) -> String { String(format: "%.1f", Double(bytes) / 1e9) }

    static func table(_ offers: [RankedOffer]) -> String {
        let header = ["#", "OFFER", "GPU", "$/H", "DOWN Mb/s", "10-MIN COST", "= COMPUTE + DOWNLOAD + PULL (TIME)", "RELIAB", "LOCATION"]
        let rows = offers.enumerated().map { index, ranked -> [String] in
            let offer = ranked.offer
            let cost = ranked.cost
            return [
                String(index + 1), String(offer.id), offer.gpuSummary, String(format: "%.3f", offer.dphTotal ?? 0),
                String(format: "%.0f", offer.inetDownMbps ?? 0), String(format: "$%.4f", cost.total),
                String(format: "= %.4f + %.4f + %.4f ", cost.compute, cost.download, cost.pull) + "(\(duration(cost.pullSeconds)))",
                String(format: "%.3f", offer.reliability ?? 0), offer.geolocation ?? "",
            ]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        return ([header] + rows).map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func duration(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded())
        return whole >= 3600 ? "\(whole / 3600)h \(whole % 3600 / 60)m" : "\(whole / 60)m \(whole % 60)s"
    }

    static func json(_ offers: [RankedOffer], download: DownloadEstimate) -> JSONValue {
        let list = offers.enumerated().map { index, ranked -> JSONValue in
            let offer = ranked.offer
            func number(_ value: Double?) -> JSONValue { value.map(JSONValue.double) ?? nil }
            return [
                "rank": .int(index + 1), "offer_id": .int(offer.id), "machine_id": offer.machineID.map(JSONValue.int) ?? nil,
                "gpu_name": offer.gpuName.map(JSONValue.string) ?? nil, "num_gpus": offer.numGPUs.map(JSONValue.int) ?? nil,
                "dph_total": number(offer.dphTotal), "inet_down": number(offer.inetDownMbps), "inet_down_cost": number(offer.inetDownCostPerGB),
                "reliability": number(offer.reliability), "geolocation": offer.geolocation.map(JSONValue.string) ?? nil,
                "cost": [
                    "total": .double(ranked.cost.total), "compute": .double(ranked.cost.compute), "download": .double(ranked.cost.download),
                    "pull": .double(ranked.cost.pull), "pull_seconds": .double(ranked.cost.pullSeconds),
                ],
            ]
        }
        return ["download_bytes": .int(Int(download.totalBytes)), "offers": .array(list)]
    }
}
