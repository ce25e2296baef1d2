import ArgumentParser
import ControlPlane
import Foundation
import JobStore
import SwarmCore
import VastAI

/// The vast.ai fleet as `serve` recorded it. Reads the database directly, like `keys`.
struct Instances: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the fleet's vast.ai instances: state, worker stage, download, uptime, price, last ping.",
        subcommands: [List.self, Down.self], defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the instances the database knows.")
        @OptionGroup var storage: Keys.StoreOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let records = try await storage.withStore { store in try await fleetRecords(store).fleetInstances() }
            let now = Date()
            if json {
                print(JSONValue.array(records.map { Self.json($0, now: now) }).jsonString())
                return
            }
            guard !records.isEmpty else {
                print("no instances recorded")
                return
            }
            for record in records {
                let columns = [
                    "\(record.id)", record.label, record.state.rawValue, record.report?.stage ?? "no ping",
                    Self.downloadPercent(record).map { String(format: "download %.0f%%", $0) } ?? "-",
                    "up \(Self.minutes(now.timeIntervalSince(record.createdAt)))",
                    record.dphTotal.map { String(format: "$%.3f/h", $0) } ?? "$?/h",
                    record.lastPing.map { "ping \(Self.minutes(now.timeIntervalSince($0))) ago" } ?? "never pinged",
                ]
                print(columns.joined(separator: "  "))
            }
        }

        static func downloadPercent(_ record: FleetInstanceRecord) -> Double? {
            guard let download = record.report?.detail?["download"], let done = download["done_bytes"]?.doubleValue,
                let total = download["total_bytes"]?.doubleValue, total > 0
            else { return nil }
            return done / total * 100
        }

        static func minutes(_ seconds: TimeInterval) -> String {
            let minutes = Int(max(0, seconds) / 60)
            return minutes < 60 ? "\(minutes)m" : "\(minutes / 60)h\(String(format: "%02d", minutes % 60))m"
        }

        static func json(_ record: FleetInstanceRecord, now: Date) -> JSONValue {
            var fields: [String: JSONValue] = [
                "id": .int(record.id), "label": .string(record.label), "state": .string(record.state.rawValue),
                "created_at": .string(record.createdAt.formatted(.iso8601)), "uptime_s": .int(Int(now.timeIntervalSince(record.createdAt))),
                "reboots": .int(record.reboots),
            ]
            if let stage = record.report?.stage { fields["stage"] = .string(stage) }
            if let percent = downloadPercent(record) { fields["download_percent"] = .double(percent) }
            if let dph = record.dphTotal { fields["dph_total"] = .double(dph) }
            if let ping = record.lastPing { fields["last_ping"] = .string(ping.formatted(.iso8601)) }
            if let machine = record.machineID { fields["machine_id"] = .int(machine) }
            if let offer = record.offerID { fields["offer_id"] = .int(offer) }
            return .object(fields)
        }
    }

    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destroy every vast.ai instance labeled <fleet-label>-…, asking for each (needs VAST_API_KEY).",
            discussion: "A running 'serve' rents new ones unless its --fleet-size is 0 or it is stopped first."
        )
        @OptionGroup var storage: Keys.StoreOptions
        @Option(help: "Label prefix of the fleet's instances.") var fleetLabel = "swarm"
        @Flag(help: "Destroy without asking.") var yes = false

        func run() async throws {
            let client: VastAIClient
            do {
                client = VastAIClient(configuration: try VastAIClient.Configuration(environment: ProcessInfo.processInfo.environment))
            } catch {
                throw ValidationError("\(error)")
            }
            let stem = fleetLabel + "-"
            let labeled = try await client.instances().filter { $0.label?.hasPrefix(stem) == true }
            guard !labeled.isEmpty else {
                print("no instance labeled \(stem)…")
                return
            }
            let yes = yes
            try await storage.withStore { store in
                let fleet = DatabaseFleetStore(store: store)
                for instance in labeled {
                    let summary = "\(instance.id) \(instance.label ?? "") \(instance.gpuName ?? "") \(instance.actualStatus.map { "\($0)" } ?? "")"
                    if !yes {
                        FileHandle.standardOutput.write(Data("destroy \(summary)? [y/N] ".utf8))
                        guard readLine()?.lowercased().hasPrefix("y") == true else { continue }
                    }
                    try await client.destroyInstance(id: instance.id)
                    // Forgetting it also revokes its worker key.
                    try await fleet?.remove(id: instance.id)
                    print("destroyed \(summary)")
                }
            }
        }
    }
}

func fleetRecords(_ store: any JobStore) throws -> any FleetRecordStore {
    guard let records = store as? any FleetRecordStore else { throw ValidationError("this database keeps no fleet records") }
    return records
}
