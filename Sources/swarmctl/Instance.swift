import ArgumentParser
import ControlPlane
import Fleet
import Foundation
import JobProtocol
import JobStore
import Logging
import SwarmCore
import VastAI

#if canImport(Glibc)
import Glibc
#endif

/// The vast.ai fleet `serve` keeps: its wanted size, its instances' boot, their logs. Talks to the database directly,
/// like `keys`, and to vast.ai when `VAST_API_KEY` is set; a running `serve` follows what is set here.
struct InstanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instance",
        abstract: "The vast.ai fleet: up, status, logs, down.",
        discussion: """
            'down' sets the wanted count to 0 in the database (a running or restarted 'serve' keeps to it) and destroys \
            the instances; 'up' hands the count back to serve's --fleet-size, or sets it. vast.ai is asked when \
            VAST_API_KEY is set (VAST_API_URL overrides its address).
            """,
        subcommands: [Status.self, Up.self, Scale.self, Logs.self, Down.self],
        defaultSubcommand: Status.self,
        aliases: ["instances"]
    )

    /// The database and the vast.ai client, as every subcommand needs them.
    struct Context: ParsableArguments {
        @OptionGroup var storage: Keys.StoreOptions

        /// nil when `VAST_API_KEY` is unset.
        func vastClient() throws -> VastAIClient? {
            let environment = ProcessInfo.processInfo.environment
            guard environment["VAST_API_KEY"].map({ !$0.isEmpty }) == true else { return nil }
            do {
                return VastAIClient(configuration: try VastAIClient.Configuration(environment: environment), logger: vastLogger)
            } catch {
                throw ValidationError("\(error)")
            }
        }

        func requireVastClient(for what: String) throws -> VastAIClient {
            guard let client = try vastClient() else { throw ValidationError("\(what) needs VAST_API_KEY (the account the fleet rents on)") }
            return client
        }

        func withFleet<T: Sendable>(_ body: @Sendable (DatabaseFleetStore) async throws -> T) async throws -> T {
            try await storage.withStore { store in try await body(DatabaseFleetStore(store: store)) }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Each instance's vast state, boot stage, $/h, uptime, cost, last ping and SwarmUI URL.",
            aliases: ["list"]
        )
        @OptionGroup var context: Context
        @Option(help: "Label prefix of the fleet's instances, to show strays vast lists under it (or SWARM_FLEET_LABEL; default swarm).")
        var fleetLabel: String?
        @Flag(help: "Print JSON.") var json = false
        @Flag(help: "Redraw until interrupted, with the model download's progress bar.") var watch = false
        @Option(help: "Seconds between redraws with --watch (each asks vast.ai once).") var interval: Double = 5

        func run() async throws {
            guard interval >= 0.2 else { throw ValidationError("--interval: at least 0.2 seconds") }
            let client = try context.vastClient()
            let json = json
            let watching = watch
            let interval = interval
            let stem = try SharedSettings.fleetLabel(flag: fleetLabel, environment: ProcessInfo.processInfo.environment) + "-"
            try await context.withFleet { fleet in
                let redraw = watching && isatty(STDOUT_FILENO) == 1
                repeat {
                    let (summary, instances) = try await Self.read(fleet, client: client, labelStem: stem)
                    let now = Date()
                    if json {
                        var fields = summary.json
                        fields["instances"] = .array(instances.map { $0.json(now: now) })
                        Self.emit(JSONValue.object(fields).jsonString())
                    } else {
                        var lines = summary.lines
                        lines += instances.isEmpty ? ["no instances recorded"] : instances.flatMap { $0.lines(now: now) }
                        if watching { lines.append("(\(now.formatted(date: .omitted, time: .standard)); Ctrl-C to stop)") }
                        // Home and clear on a terminal; a plain separator into a pipe or file.
                        Self.emit((redraw ? "\u{1B}[H\u{1B}[2J" : watching ? "--\n" : "") + lines.joined(separator: "\n"))
                    }
                    if watching { try await Task.sleep(for: .seconds(interval)) }
                } while watching
            }
        }

        /// Unbuffered, so that each draw reaches a pipe that is being followed.
        static func emit(_ text: String) {
            FileHandle.standardOutput.write(Data((text + "\n").utf8))
        }

        static func read(_ fleet: DatabaseFleetStore, client: VastAIClient?, labelStem: String) async throws -> (FleetSummary, [FleetInstanceStatus])
        {
            let records = try await fleet.records()
            var summary = FleetSummary(
                desiredSize: try await fleet.desiredSize(),
                creationHold: try await fleet.creationHold(),
                spentToday: try await fleet.spentToday(now: Date())
            )
            summary.scalerOverride = try await fleet.scalerOverride()
            summary.scalerDecision = try await fleet.scalerDecision()
            // One listing per draw, whatever the fleet's size: it also carries the ports the by-id call may leave out.
            var listed: [Int: Instance]?
            if let client {
                do {
                    listed = Dictionary(try await client.instances().map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
                } catch {
                    summary.vastProblem = "\(error)"
                }
            }
            let instances = records.map { FleetInstanceStatus(record: $0, vast: listed?[$0.id], vastAsked: listed != nil) }
            let known = Set(records.map(\.id))
            summary.orphans = (listed.map { Array($0.values) } ?? [])
                .filter { !known.contains($0.id) && !$0.isReleased && $0.label?.hasPrefix(labelStem) == true }.sorted { $0.id < $1.id }
            return (summary, instances)
        }
    }

    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Let the fleet run again: serve's --fleet-size, or COUNT instances; clears a creation hold.",
            discussion: """
                A running 'serve' searches offers and rents within one round (15 s); a stopped one when it starts. With \
                --wait this follows the boot (a status line every --interval seconds: vast's state, the worker's stage, the \
                model download, $/h, time) and exits 0 once COUNT instances (default 1) are READY, or 1 with the diagnosis.
                """
        )
        @OptionGroup var context: Context
        @Argument(help: "Instances to keep (default: serve's --fleet-size).") var count: Int?
        @Flag(help: "Follow the boot until the instances are READY (exit 0) or fail (exit 1).") var wait = false
        @Option(help: "Seconds between status lines with --wait.") var interval: Double = 15
        @Option(help: "Minutes --wait gives the boot (image pull, model download, SwarmUI start).") var timeout: Double = 45
        @Option(help: "Label prefix of the fleet's instances (or SWARM_FLEET_LABEL; default swarm).") var fleetLabel: String?

        func run() async throws {
            if let count, count < 0 { throw ValidationError("COUNT must be 0 or more") }
            guard interval >= 0.1, timeout > 0 else { throw ValidationError("--interval must be at least 0.1 s and --timeout more than 0") }
            let count = count
            let hold = try await context.withFleet { fleet in
                let hold = try await fleet.creationHold()
                try await fleet.setDesiredSize(count)
                try await fleet.setCreationHold(nil)
                return hold
            }
            // Unbuffered, so that it comes before --wait's status lines in a pipe.
            if let hold { Status.emit("cleared the creation hold: \(hold)") }
            Status.emit(
                count.map { "fleet size set to \($0); serve keeps it until 'swarmctl instance up|down'" }
                    ?? "fleet size handed back to serve's --fleet-size"
            )
            guard wait else { return }
            let wanted = max(1, count ?? 1)
            let watch = BootWatch(wanted: wanted, startedAt: Date(), timeout: timeout * 60)
            let client = try context.vastClient()
            let interval = interval
            let stem = try SharedSettings.fleetLabel(flag: fleetLabel, environment: ProcessInfo.processInfo.environment) + "-"
            let verdict = try await context.withFleet { fleet in
                var lastLine = ContinuousClock.now - .seconds(interval)
                while true {
                    let (summary, instances) = try await Status.read(fleet, client: client, labelStem: stem)
                    let now = Date()
                    let verdict = watch.verdict(instances: instances, creationHold: summary.creationHold, now: now)
                    if verdict == .ready || (verdict == .waiting && ContinuousClock.now - lastLine >= .seconds(interval)) {
                        Status.emit(watch.statusLine(instances: instances, now: now))
                        lastLine = .now
                    }
                    switch verdict {
                    case .waiting: try await Task.sleep(for: .seconds(min(interval, 2)))
                    case .ready:
                        for instance in instances where instance.record.report?.stage == .ready {
                            if let tunnel = instance.swarmUITunnel { Status.emit("\(instance.record.label): SwarmUI over SSH: \(tunnel)") }
                        }
                        return verdict
                    case .failed: return verdict
                    }
                }
            }
            if case .failed(let reason) = verdict {
                printError("instance up --wait: \(reason)")
                throw ExitCode(1)
            }
            print("READY: \(wanted) instance(s) take jobs")
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "An instance's log: the container's through vast.ai (request_logs), or the worker's last lines from its pings.",
            discussion: "Without VAST_API_KEY, or with --pings, the lines the worker sent with its last ping."
        )
        @OptionGroup var context: Context
        @Argument(help: "Instance id or label (default: the only instance).") var instance: String?
        @Option(help: "Lines from the end.") var tail = 200
        @Flag(help: "The host daemon's log for the instance (image pull, container create) instead of the container's.") var daemon = false
        @Flag(help: "The worker's log tail from its last ping, without asking vast.ai.") var pings = false
        @Flag(name: .shortAndLong, help: "Keep printing new lines until interrupted.") var follow = false
        @Option(help: "Seconds between reads with --follow (each is one request_logs call to vast.ai).") var every: Double = 10

        func run() async throws {
            guard tail > 0 else { throw ValidationError("--tail: at least 1 line") }
            guard every >= 0.1 else { throw ValidationError("--every: at least 0.1 seconds") }
            let wanted = instance
            let record = try await context.withFleet { fleet in try Self.pick(wanted, from: try await fleet.records()) }
            let client = pings ? nil : try context.vastClient()
            let (tail, daemon, every, follow) = (tail, daemon, every, follow)
            if let client {
                printError("\(record.label) (\(record.id)): \(daemon ? "host daemon" : "container") log from vast.ai")
            } else {
                printError("\(record.label) (\(record.id)): the worker's last lines from its pings")
            }
            var shown: [String] = []
            repeat {
                let lines: [String]
                if let client {
                    let text = try await client.logs(id: record.id, tail: tail, daemonLogs: daemon)
                    lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).dropLast(text.hasSuffix("\n") ? 1 : 0)
                } else {
                    let current = try await context.withFleet { fleet in try await fleet.records().first { $0.id == record.id } }
                    lines = Array((current?.logTail ?? []).suffix(tail))
                }
                let fresh = LogFollow.newLines(previous: shown, current: lines)
                if !fresh.isEmpty { Status.emit(fresh.joined(separator: "\n")) }
                if !follow, lines.isEmpty { print(client == nil ? "(the worker has sent no log lines yet)" : "(empty)") }
                if !lines.isEmpty { shown = lines }
                if follow { try await Task.sleep(for: .seconds(every)) }
            } while follow
        }

        /// The record named by id or label, or the only one.
        static func pick(_ name: String?, from records: [FleetInstanceRecord]) throws -> FleetInstanceRecord {
            guard let name else {
                guard records.count == 1, let only = records.first else {
                    throw ValidationError(
                        records.isEmpty
                            ? "no instances recorded"
                            : "several instances; name one: " + records.map { "\($0.id) (\($0.label))" }.joined(separator: ", ")
                    )
                }
                return only
            }
            guard let record = records.first(where: { String($0.id) == name || $0.label == name }) else {
                throw ValidationError("no instance \(name) recorded; 'swarmctl instance status' lists them")
            }
            return record
        }
    }

    struct Down: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set the fleet to 0 instances (kept until 'instance up') and destroy every one, confirming each is gone.",
            discussion: "Destroys the instances the database knows and every instance labeled <fleet-label>-… (needs VAST_API_KEY)."
        )
        @OptionGroup var context: Context
        @Option(help: "Label prefix of the fleet's instances (or SWARM_FLEET_LABEL; default swarm).") var fleetLabel: String?
        @Flag(help: "Do not ask.") var yes = false
        @Option(help: "Seconds to wait for vast.ai to show each destroyed instance gone.") var confirmTimeout: Double = 120
        @Option(help: ArgumentHelp("Seconds before listing again after the destroys.", visibility: .hidden)) var settle: Double = 5

        func run() async throws {
            let client = try context.requireVastClient(for: "instance down")
            let prefix = try SharedSettings.fleetLabel(flag: fleetLabel, environment: ProcessInfo.processInfo.environment)
            let yes = yes
            let timeout = Duration.seconds(confirmTimeout)
            let settle = Duration.seconds(settle)
            let pollInterval = Duration.seconds(min(3, max(0.2, confirmTimeout / 10)))
            try await context.withFleet { fleet in
                let teardown = FleetTeardown(
                    client: client,
                    store: fleet,
                    labelPrefix: prefix,
                    confirmTimeout: timeout,
                    pollInterval: pollInterval,
                    settle: settle
                )
                if !yes {
                    let targets = try await teardown.targets()
                    let names = targets.map { "\($0.id)" + ($0.label.map { " \($0)" } ?? "") }
                    FileHandle.standardOutput.write(
                        Data(
                            ("set the fleet to 0 instances" + (names.isEmpty ? "" : " and destroy \(names.joined(separator: ", "))") + "? [y/N] ")
                                .utf8
                        )
                    )
                    guard readLine()?.lowercased().hasPrefix("y") == true else {
                        print("nothing changed")
                        return
                    }
                }
                let outcomes = try await teardown.run { print($0) }
                let confirmed = Set(outcomes.filter(\.confirmed).map(\.id)).count
                print("fleet size set to 0 (kept until 'swarmctl instance up'); \(confirmed) instance(s) destroyed, none labeled \(prefix)-… left")
            }
        }
    }
}

/// vast.ai's retries and warnings on stderr, so that stdout stays the command's (JSON included).
private let vastLogger: Logger = {
    var logger = Logger(label: "swarmctl.instance", factory: { label in StreamLogHandler.standardError(label: label) })
    logger.logLevel = .warning
    return logger
}()
