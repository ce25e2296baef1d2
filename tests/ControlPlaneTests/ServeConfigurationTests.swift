import Fleet
import ArgumentParser
import ControlPlane
import Foundation
import Logging
import SwarmCore
import Testing
import VastAI

/// `swarmctl serve`'s one reader of flags and environment: which wins, and errors that name what to fix.
@Suite struct ServeConfigurationTests {
    /// Reads `arguments` and `environment`, with a storage secret given so that nothing is written to a data directory.
    static func read(_ arguments: [String], _ environment: [String: String]) throws -> ServeConfiguration {
        try ServeConfiguration(flags: ServeFlags.parse(arguments), environment: ["SWARM_STORAGE_SECRET": "s"].merging(environment) { $1 })
    }

    /// The problem `arguments` and `environment` are refused with.
    static func problem(_ arguments: [String], _ environment: [String: String] = [:]) -> String? {
        do {
            _ = try read(arguments, environment)
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// One setting: what it reads as with its flag and its variable both given, with the variable alone, and with neither.
    struct Setting: CustomTestStringConvertible {
        var flag: [String]
        var variables: [String: String]
        var value: @Sendable (ServeConfiguration) -> String?
        var fromFlag: String
        var fromVariable: String
        var byDefault: String?
        /// Arguments and environment every read of this setting needs (the fleet's image and public URL, fal's key).
        var base: (arguments: [String], environment: [String: String]) = ([], [:])

        var testDescription: String { flag.first ?? "?" }
    }

    static let fleetOn = (arguments: ["--image", "ghcr.io/o/w:1", "--public-url", "https://q.example"], environment: ["VAST_API_KEY": "k"])
    static let falOn = (arguments: [String](), environment: ["SWARM_FAL_KEY_ENV": "FAL_A", "FAL_A": "ka", "FAL_B": "kb"])
    static let certificate = FileManager.default.temporaryDirectory.appendingPathComponent("serve-config-\(UUID().uuidString).pem").path

    static let settings: [Setting] = [
        // The scaler (issue 23's flags, RunPod's workersMin, workersMax, idleTimeout, scalerType, scalerValue).
        Setting(
            flag: ["--workers-min", "2"],
            variables: ["SWARM_WORKERS_MIN": "3"],
            value: { "\($0.fleet!.scaler.workersMin)" },
            fromFlag: "2",
            fromVariable: "3",
            byDefault: "1",
            base: fleetOn
        ),
        Setting(
            flag: ["--workers-max", "4"],
            variables: ["SWARM_WORKERS_MAX": "6"],
            value: { "\($0.fleet!.scaler.workersMax)" },
            fromFlag: "4",
            fromVariable: "6",
            byDefault: "1",
            base: fleetOn
        ),
        Setting(
            flag: ["--idle-timeout", "120"],
            variables: ["SWARM_IDLE_TIMEOUT": "60"],
            value: { "\($0.fleet!.scaler.idleTimeout)" },
            fromFlag: "120.0",
            fromVariable: "60.0",
            byDefault: "300.0",
            base: fleetOn
        ),
        // RunPod's spelling is accepted in the variable.
        Setting(
            flag: ["--scaler", "queue-delay"],
            variables: ["SWARM_SCALER_TYPE": "REQUEST_COUNT"],
            value: { $0.fleet!.scaler.scaler.rawValue },
            fromFlag: "queue-delay",
            fromVariable: "request-count",
            byDefault: "queue-delay",
            base: fleetOn
        ),
        Setting(
            flag: ["--scaler-value", "10"],
            variables: ["SWARM_SCALER_VALUE": "20"],
            value: { "\($0.fleet!.scaler.scalerValue)" },
            fromFlag: "10.0",
            fromVariable: "20.0",
            byDefault: "4.0",
            base: fleetOn
        ),
        Setting(
            flag: ["--keep-warm", "0"],
            variables: ["SWARM_KEEP_WARM": "3"],
            value: { "\($0.fleet!.scaler.keepWarm)" },
            fromFlag: "0",
            fromVariable: "3",
            byDefault: "1",
            base: fleetOn
        ),
        // The fleet.
        Setting(
            flag: ["--fleet-size", "2"],
            variables: ["SWARM_FLEET_SIZE": "3"],
            value: { "\($0.fleet!.policy.desiredSize)" },
            fromFlag: "2",
            fromVariable: "3",
            byDefault: "1",
            base: fleetOn
        ),
        Setting(
            flag: ["--gpu", "RTX 5090"],
            variables: ["SWARM_FLEET_GPU": "RTX 4090,H100 SXM"],
            value: { $0.fleet!.filter.gpuNames.joined(separator: "|") },
            fromFlag: "RTX 5090",
            fromVariable: "RTX 4090|H100 SXM",
            byDefault: "",
            base: fleetOn
        ),
        Setting(
            flag: ["--max-dph", "0.5"],
            variables: ["SWARM_FLEET_MAX_DPH": "0.4"],
            value: { $0.fleet!.filter.maxDPH.map { "\($0)" } },
            fromFlag: "0.5",
            fromVariable: "0.4",
            byDefault: nil,
            base: fleetOn
        ),
        Setting(
            flag: ["--disk", "80"],
            variables: ["SWARM_FLEET_DISK_GB": "120"],
            value: { "\($0.fleet!.diskGB)" },
            fromFlag: "80.0",
            fromVariable: "120.0",
            byDefault: "100.0",
            base: fleetOn
        ),
        Setting(
            flag: ["--budget-per-day", "30"],
            variables: ["SWARM_BUDGET_PER_DAY": "20"],
            value: { $0.fleet!.policy.budgetPerDay.map { "\($0)" } },
            fromFlag: "30.0",
            fromVariable: "20.0",
            byDefault: nil,
            base: fleetOn
        ),
        Setting(
            flag: ["--heartbeat-timeout", "120"],
            variables: ["SWARM_HEARTBEAT_TIMEOUT": "200"],
            value: { "\($0.fleet!.policy.heartbeatTimeout.components.seconds)" },
            fromFlag: "120",
            fromVariable: "200",
            byDefault: "300",
            base: fleetOn
        ),
        Setting(
            flag: ["--public-url", "https://a.example/"],
            variables: ["SWARM_PUBLIC_URL": "https://b.example"],
            value: { $0.controlPlane.publicURL },
            fromFlag: "https://a.example",
            fromVariable: "https://b.example",
            byDefault: nil
        ),
        // TLS: the files must be readable (their content is read when the server starts).
        Setting(
            flag: ["--tls-cert", certificate, "--tls-key", certificate],
            variables: ["SWARM_TLS_CERT": "/dev/null", "SWARM_TLS_KEY": "/dev/null"],
            value: { $0.listen.tls.map { "\($0.certificate) \($0.key)" } },
            fromFlag: "\(certificate) \(certificate)",
            fromVariable: "/dev/null /dev/null",
            byDefault: nil
        ),
        // fal.ai.
        Setting(
            flag: ["--fal-key-env", "FAL_B"],
            variables: ["SWARM_FAL_KEY_ENV": "FAL_A", "FAL_A": "ka", "FAL_B": "kb"],
            value: { $0.controlPlane.fal?.key.value },
            fromFlag: "kb",
            fromVariable: "ka",
            byDefault: nil
        ),
        Setting(
            flag: ["--fal-url", "http://f1.example"],
            variables: ["SWARM_FAL_URL": "http://f2.example"],
            value: { $0.controlPlane.fal?.url },
            fromFlag: "http://f1.example",
            fromVariable: "http://f2.example",
            byDefault: "https://queue.fal.run",
            base: falOn
        ),
        Setting(
            flag: ["--spill-after", "90s", "--spill-budget-per-day", "5"],
            variables: ["SWARM_SPILL_AFTER": "2m", "SWARM_SPILL_BUDGET_PER_DAY": "7"],
            value: { $0.controlPlane.fal?.spill.map { "\($0.after) \($0.budgetPerDay)" } },
            fromFlag: "90.0 seconds 5.0",
            fromVariable: "120.0 seconds 7.0",
            byDefault: nil,
            base: falOn
        ),
        // Shared with `keys` and `instance` (SharedSettings), so they find serve's database and instances.
        Setting(
            flag: ["--database", "/tmp/flag.db"],
            variables: ["SWARM_DATABASE_URL": "/tmp/variable.db"],
            value: { if case .sqlite(let path) = $0.database { path } else { "postgres" } },
            fromFlag: "/tmp/flag.db",
            fromVariable: "/tmp/variable.db",
            byDefault: "./.swarm/swarm.db"
        ),
        Setting(
            flag: ["--fleet-label", "flagged"],
            variables: ["SWARM_FLEET_LABEL": "named"],
            value: { $0.fleet!.policy.labelPrefix },
            fromFlag: "flagged",
            fromVariable: "named",
            byDefault: "swarm",
            base: fleetOn
        ),
    ]

    @Test(arguments: settings)
    func aFlagOutranksItsVariableWhichOutranksTheDefault(_ setting: Setting) throws {
        FileManager.default.createFile(atPath: Self.certificate, contents: Data())
        let (arguments, environment) = setting.base
        let both = try Self.read(arguments + setting.flag, environment.merging(setting.variables) { $1 })
        #expect(setting.value(both) == setting.fromFlag)
        let variable = try Self.read(arguments, environment.merging(setting.variables) { $1 })
        #expect(setting.value(variable) == setting.fromVariable)
        // An empty variable is unset.
        let empty = try Self.read(arguments, environment.merging(setting.variables.mapValues { _ in "" }) { $1 })
        #expect(setting.value(empty) == setting.byDefault)
        #expect(setting.value(try Self.read(arguments, environment)) == setting.byDefault)
    }

    /// A flag outranks both variables; of the two variables, the template wins (as .env.example says).
    @Test func theWorkersImageOrTemplateComesFromAFlagThenTheVariables() throws {
        func source(_ arguments: [String], _ environment: [String: String]) throws -> String {
            let fleet = try #require(
                try Self.read(["--public-url", "https://q.example"] + arguments, ["VAST_API_KEY": "k"].merging(environment) { $1 }).fleet
            )
            switch fleet.source {
            case .image(let image): return "image \(image)"
            case .template(let hashID): return "template \(hashID)"
            }
        }
        let both = ["SWARM_FLEET_IMAGE": "env/w:2", "SWARM_FLEET_TEMPLATE": "envhash"]
        #expect(try source(["--image", "flag/w:1"], both) == "image flag/w:1")
        #expect(try source(["--template", "flaghash"], both) == "template flaghash")
        #expect(try source([], both) == "template envhash")
        #expect(try source([], ["SWARM_FLEET_IMAGE": "env/w:2"]) == "image env/w:2")
        #expect(try source([], ["SWARM_FLEET_IMAGE": "env/w:2", "SWARM_FLEET_TEMPLATE": ""]) == "image env/w:2")
    }

    @Test func theRestIsReadOnceIntoItsGroups() throws {
        let configuration = try Self.read(
            ["--host", "0.0.0.0", "--port", "0", "--endpoint", "other", "--lease-timeout", "30", "--max-attempts", "5", "--local-worker"],
            [
                "SWARM_API_KEYS": "c1, c2", "SWARM_WORKER_KEYS": "w1", "SWARM_WEBHOOK_SECRET": "hook", "SWARM_PUBLIC_URL": "https://b.example/",
                "LOG_LEVEL": "debug",
            ]
        )
        #expect(configuration.listen.host == "0.0.0.0" && configuration.listen.port == 0 && !configuration.listen.isLoopback)
        #expect(configuration.listen.scheme == "http" && configuration.controlPlane.scheme == "http")
        #expect(configuration.database == .sqlite(path: "./.swarm/swarm.db"))
        #expect(configuration.localWorker?.environment["SWARM_API_KEYS"] == "c1, c2" && configuration.localWorker?.emulatorOutputBytes == nil)
        #expect(configuration.logLevel == .debug && configuration.fleet == nil)
        #expect(try Self.read(["--local-worker"], ["SWARM_EMULATOR_OUTPUT_BYTES": "1000"]).localWorker?.emulatorOutputBytes == 1000)
        #expect(try Self.read([], [:]).localWorker == nil)
        let controlPlane = configuration.controlPlane
        #expect(controlPlane.endpoints == ["swarmui", "other"] && controlPlane.leaseTimeout == .seconds(30) && controlPlane.maxAttempts == 5)
        #expect(controlPlane.clientKeys.map(\.value) == ["c1", "c2"] && controlPlane.workerKeys.map(\.value) == ["w1"])
        #expect(controlPlane.webhooks.secret?.value == "hook" && controlPlane.fal == nil)
        // Output links follow SWARM_PUBLIC_URL (not --public-url, which is the fleet's), signed with SWARM_STORAGE_SECRET.
        #expect(controlPlane.outputs?.publicURL == "https://b.example" && controlPlane.outputs?.signingSecret.value == "s")
        #expect(controlPlane.outputs.map { "\($0)" } == "local files in ./.swarm/outputs")
    }

    /// Each refusal names the flag (and the variable, where one sets the same) and says what would do.
    @Test(
        arguments: [
            (["--port", "70000"], [:], ["--port", "0-65535"]),
            (["--max-attempts", "0"], [:], ["--max-attempts", "at least 1"]),
            (["--lease-timeout", "2"], [:], ["--lease-timeout", "at least 5 seconds"]),
            (["--endpoint", "a/b"], [:], ["--endpoint", "'a/b'", "letters, digits"]),
            (["--database", "mysql://h/db"], [:], ["--database", "postgres://"]),
            (["--local-worker"], ["SWARM_EMULATOR_OUTPUT_BYTES": "12MB"], ["SWARM_EMULATOR_OUTPUT_BYTES: '12MB' is not a number (--local-worker)"]),
            ([], ["SWARM_STORAGE": "ftp"], ["SWARM_STORAGE=ftp", "local or s3"]),
            (["--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/dev/null"], [:], ["--tls-cert (SWARM_TLS_CERT)", "cannot read"]),
            ([], ["SWARM_TLS_KEY": "/dev/null"], ["--tls-key needs --tls-cert (SWARM_TLS_CERT)"]),
            ([], ["SWARM_FAL_KEY_ENV": "FAL_NONE"], ["--fal-key-env (SWARM_FAL_KEY_ENV)", "FAL_NONE is unset", "export"]),
            ([], ["SWARM_FAL_KEY_ENV": "FAL_A", "FAL_A": "k", "SWARM_FAL_URL": "ftp://x"], ["--fal-url (SWARM_FAL_URL)", "https://queue.fal.run"]),
            ([], ["SWARM_FAL_KEY_ENV": "FAL_A", "FAL_A": "k", "SWARM_SPILL_AFTER": "soon"], ["--spill-after (SWARM_SPILL_AFTER)", "90s, 2m or 1h"]),
            (
                [], ["SWARM_FAL_KEY_ENV": "FAL_A", "FAL_A": "k", "SWARM_SPILL_AFTER": "2m"],
                ["--spill-budget-per-day (SWARM_SPILL_BUDGET_PER_DAY)", "e.g. 20"]
            ),
        ] as [([String], [String: String], [String])]
    )
    func aBadSettingIsRefusedNamingItsFlagAndVariable(_ arguments: [String], _ environment: [String: String], _ expected: [String]) throws {
        let problem = try #require(Self.problem(arguments, environment))
        for part in expected { #expect(problem.contains(part), "\(problem)") }
    }

    @Test(
        arguments: [
            (
                [], ["VAST_API_KEY": "k", "SWARM_PUBLIC_URL": "https://q.example"],
                ["--image (or SWARM_FLEET_IMAGE)", "--template hash (or SWARM_FLEET_TEMPLATE)"]
            ),
            (["--image", "i", "--template", "t"], ["SWARM_PUBLIC_URL": "https://q.example"], ["--image and --template", "give one"]),
            (["--image", "i"], ["SWARM_PUBLIC_URL": ""], ["--public-url (or SWARM_PUBLIC_URL)"]),
            (["--image", "i", "--fleet-label", "a b"], [:], ["--fleet-label", "letters, digits"]),
            (["--image", "i"], ["SWARM_FLEET_LABEL": "a/b"], ["SWARM_FLEET_LABEL", "letters, digits"]),
            (["--image", "i", "--budget-per-day", "0"], [:], ["--budget-per-day", "more than 0"]),
            (["--image", "i"], ["SWARM_BUDGET_PER_DAY": "-5"], ["--budget-per-day (SWARM_BUDGET_PER_DAY)", "more than 0"]),
            (["--image", "i"], ["SWARM_HEARTBEAT_TIMEOUT": "5m"], ["SWARM_HEARTBEAT_TIMEOUT: '5m' is not a number (--heartbeat-timeout)"]),
            (["--image", "i", "--instance-env", "NOT_SET"], [:], ["--instance-env NOT_SET", "no NOT_SET"]),
            (["--image", "i"], ["SWARM_FLEET_SIZE": "-1"], ["--fleet-size (SWARM_FLEET_SIZE)", "0 or more"]),
            (["--image", "i"], ["SWARM_FLEET_SIZE": "two"], ["SWARM_FLEET_SIZE: 'two' is not a number (--fleet-size)"]),
            (["--image", "i"], ["SWARM_FLEET_DISK_GB": "0"], ["--disk (SWARM_FLEET_DISK_GB)", "more than 0 GB"]),
            (["--image", "i"], ["SWARM_FLEET_MAX_DPH": "cheap"], ["SWARM_FLEET_MAX_DPH: 'cheap'", "(--max-dph)"]),
            // The scaler's variables, each named with its flag.
            (["--image", "i"], ["SWARM_WORKERS_MIN": "x"], ["SWARM_WORKERS_MIN: 'x' is not a number (--workers-min)"]),
            (["--image", "i"], ["SWARM_WORKERS_MAX": "1.5"], ["SWARM_WORKERS_MAX: '1.5' is not a number (--workers-max)"]),
            (["--image", "i"], ["SWARM_IDLE_TIMEOUT": "5m"], ["SWARM_IDLE_TIMEOUT: '5m' is not a number (--idle-timeout)"]),
            (["--image", "i"], ["SWARM_SCALER_TYPE": "fastest"], ["SWARM_SCALER_TYPE: 'fastest'", "queue-delay or request-count", "(--scaler)"]),
            (["--image", "i"], ["SWARM_SCALER_VALUE": "lots"], ["SWARM_SCALER_VALUE: 'lots' is not a number (--scaler-value)"]),
            (["--image", "i"], ["SWARM_KEEP_WARM": "all"], ["SWARM_KEEP_WARM: 'all' is not a number (--keep-warm)"]),
            (
                ["--image", "i"], ["SWARM_WORKERS_MIN": "3", "SWARM_WORKERS_MAX": "2"],
                ["--workers-min 3 is more than --workers-max 2", "SWARM_WORKERS_MIN, SWARM_WORKERS_MAX"]
            ),
            (["--image", "i"], ["SWARM_IDLE_TIMEOUT": "0"], ["--idle-timeout", "SWARM_IDLE_TIMEOUT"]),
            (["--image", "i"], ["SWARM_SCALER_VALUE": "0"], ["--scaler-value", "SWARM_SCALER_VALUE"]),
            (["--image", "i"], ["SWARM_KEEP_WARM": "-1"], ["--keep-warm", "SWARM_KEEP_WARM"]),
            (
                ["--image", "i", "--workers-max", "3"], ["SWARM_FLEET_SIZE": "2"],
                ["--fleet-size (SWARM_FLEET_SIZE)", "SWARM_WORKERS_MAX", "give one"]
            ),
            (
                ["--image", "i", "--fleet-size", "2"], ["SWARM_WORKERS_MIN": "1"],
                ["--fleet-size (SWARM_FLEET_SIZE)", "SWARM_WORKERS_MIN", "give one"]
            ),
        ] as [([String], [String: String], [String])]
    )
    func aBadFleetSettingIsRefusedNamingItsFlagAndVariable(_ arguments: [String], _ environment: [String: String], _ expected: [String]) throws {
        let fleetOn = ["VAST_API_KEY": "k", "SWARM_PUBLIC_URL": "https://q.example"]
        let problem = try #require(Self.problem(arguments, fleetOn.merging(environment) { $1 }))
        for part in expected { #expect(problem.contains(part), "\(problem)") }
    }
}
