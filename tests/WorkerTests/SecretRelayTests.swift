import Foundation
import JobProtocol
import Logging
import NIOCore
import NIOHTTP1
import SwarmCore
import Synchronization
import Testing

@testable import Worker

/// Secrets the worker holds never reach SwarmUI's environment, nor any line the worker passes on from SwarmUI
/// (its log, the pings' log tail, `/health`).
@Suite struct SecretRelayTests {
    static let workerKey = "swk_live_9f8e7d6c5b4a3210"
    static let hfToken = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    static let civitaiToken = "civ+tok/en=with&specials"
    static let swarmUIAuthorization = "Bearer swarmui-gate-secret-77"
    static var secrets: [String] { [workerKey, hfToken, civitaiToken, swarmUIAuthorization] }

    static func configuration(volume: String, extra: [String: String] = [:]) throws -> WorkerConfiguration {
        var environment = [
            "VOLUME_PATH": volume, "SWARM_QUEUE_URL": "http://127.0.0.1:9/v2/swarmui", "SWARM_WORKER_KEY": workerKey,
            "SWARM_WORKER_ID": "secret-test", "HUGGINGFACE_API_TOKEN": hfToken, "CIVITAI_API_TOKEN": civitaiToken,
            "SWARMUI_AUTHORIZATION": swarmUIAuthorization, "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin",
            "HOME": "/root", "CUDA_VISIBLE_DEVICES": "0", "LC_ALL": "C.UTF-8",
            // A secret under a name the allow-list would pass is still held back.
            "NVIDIA_NOTE": "copied \(hfToken) here",
        ]
        environment.merge(extra) { $1 }
        return try WorkerConfiguration(environment: environment)
    }

    @Test func swarmUIsEnvironmentIsAnAllowListWithoutSecrets() throws {
        let configuration = try Self.configuration(
            volume: "/tmp/none",
            extra: ["SWARMUI_PASS_ENV": "MY_PROXY_SETTING, HF_TOKEN_COPY", "MY_PROXY_SETTING": "on", "HF_TOKEN_COPY": "x"]
        )
        let environment = configuration.swarmUIEnvironment
        #expect(environment["PATH"] != nil)
        #expect(environment["CUDA_VISIBLE_DEVICES"] == "0")
        #expect(environment["LC_ALL"] == "C.UTF-8")
        #expect(environment["MY_PROXY_SETTING"] == "on", "SWARMUI_PASS_ENV adds names")
        #expect(environment["HF_TOKEN_COPY"] == nil, "a name that reads like a credential is never passed")
        #expect(environment["NVIDIA_NOTE"] == nil, "a value holding a secret is never passed")
        #expect(!environment.keys.contains { $0.hasPrefix("SWARM_") }, "SwarmUI prints every SWARM_* variable: \(environment.keys.sorted())")
        for (name, value) in environment {
            for secret in Self.secrets { #expect(!value.contains(secret), "\(name) carries a secret") }
        }
        #expect(configuration.secrets.count == 4, "the worker key, both download tokens and SwarmUI's gate are all secrets")
    }

    @Test func theSupervisorGivesSwarmUINoSecretAndRedactsWhatSwarmUIPrints() async throws {
        let volume = FileManager.default.temporaryDirectory.appendingPathComponent("secret-relay-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: volume) }
        let folder = volume + "/SwarmUI"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // A SwarmUI that prints its environment as Program.cs does for SWARM_* (all of it here), then echoes tokens it
        // might hold from elsewhere (its own settings, a download URL), raw and percent-encoded, and dies during start.
        let encoded = Self.civitaiToken.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
        let script = """
            #!/usr/bin/env bash
            env | sed "s/^/EnvVar /"
            echo "downloading https://huggingface.co/x?token=\(Self.hfToken)"
            echo "civitai https://civitai.com/api/download/models/1?token=\(encoded)" >&2
            echo "auth header \(Self.swarmUIAuthorization) key \(Self.workerKey)"
            exit 7
            """
        try script.write(toFile: folder + "/launch-linux.sh", atomically: true, encoding: .utf8)
        let configuration = try Self.configuration(volume: volume)
        let lines = LineCollector()
        let logger = Logger(label: "secret-test", factory: { _ in lines })
        let monitor = SwarmUIProcessMonitor()
        let state = WorkerState()
        let supervisor = SwarmUISupervisor(
            folder: folder,
            host: "127.0.0.1",
            port: 7801,
            monitor: monitor,
            state: state,
            environment: configuration.swarmUIEnvironment,
            redactor: SecretRedactor(configuration.secrets),
            logger: logger
        )
        await #expect(throws: SupervisorError.self) { try await supervisor.run() }

        let logged = lines.all
        #expect(logged.contains { $0.contains("EnvVar PATH=") }, "the fake printed its environment: \(logged)")
        #expect(logged.contains { $0.contains("token=<redacted>") }, "an echoed token is scrubbed, not dropped: \(logged)")
        #expect(!logged.contains { $0.contains("SWARM_WORKER_KEY") || $0.contains("HUGGINGFACE_API_TOKEN") })
        // Exactly the allow-listed environment, not the worker's own (bash adds PWD, SHLVL and _ itself).
        let printed = Set(
            logged.compactMap { line -> String? in
                guard let range = line.range(of: "EnvVar ") else { return nil }
                return String(line[range.upperBound...].prefix { $0 != "=" })
            }
        )
        let unexpected = printed.subtracting(configuration.swarmUIEnvironment.keys).subtracting(["PWD", "SHLVL", "_", "OLDPWD"])
        #expect(unexpected.isEmpty, "SwarmUI saw variables outside the allow-list: \(unexpected.sorted())")
        let tail = await monitor.lastLines
        let failure = try #require(await monitor.failure)
        for secret in Self.secrets + [encoded] {
            #expect(!logged.contains { $0.contains(secret) }, "a secret reached the worker's log")
            #expect(!tail.contains { $0.contains(secret) }, "a secret reached the pings' log tail")
            #expect(!failure.contains(secret), "a secret reached the ERROR reason")
        }
    }

    @Test func healthRedactsAnErrorThatQuotesASecret() async throws {
        let state = WorkerState()
        await state.setStage(
            .error(WorkerFailure(reason: "SwarmUI's backend is errored: GET https://x/y?token=\(Self.hfToken) failed", kind: .transient))
        )
        let configuration = try Self.configuration(volume: "/tmp/none")
        let server = HealthServer(
            host: "127.0.0.1",
            port: 0,
            state: state,
            monitor: nil,
            redactor: SecretRedactor(configuration.secrets),
            logger: Logger(label: "t", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let reply = await server.answer(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/health"))
        let body = String(buffer: reply.body)
        #expect(body.contains("<redacted>"))
        #expect(!body.contains(Self.hfToken))
    }

    @Test func theWorkersLogHandlerScrubsMessagesAndMetadata() {
        let lines = LineCollector()
        let logger = Logger(label: "t") { _ in RedactingLogHandler(wrapping: lines, redactor: SecretRedactor([Secret(Self.hfToken)])) }
        logger.error(
            "GET https://x/?token=\(Self.hfToken) failed",
            metadata: ["url": "https://x/?token=\(Self.hfToken)", "n": ["a": "\(Self.hfToken)"]]
        )
        let logged = lines.all.joined(separator: "\n")
        #expect(!logged.contains(Self.hfToken))
        #expect(logged.components(separatedBy: "<redacted>").count == 4, "message and both metadata values: \(logged)")
    }

    @Test func theRedactorCatchesEncodedFormsAndLeavesShortValues() {
        let redactor = SecretRedactor([Secret("a b/c+d"), Secret("abc")])
        #expect(redactor.redact("x a b/c+d y a%20b%2Fc%2Bd z") == "x <redacted> y <redacted> z")
        #expect(redactor.redact("abc stays: too short to scrub") == "abc stays: too short to scrub")
        #expect(redactor.redact(["k": ["v a b/c+d"]]) == ["k": ["v <redacted>"]])
    }
}

/// A log handler that keeps every message (with its metadata) for the test to read.
final class LineCollector: LogHandler, Sendable {
    private let lines = Mutex<[String]>([])
    var all: [String] { lines.withLock { $0 } }

    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }
    var logLevel: Logger.Level {
        get { .trace }
        set {}
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    func log(event: LogEvent) {
        lines.withLock { $0.append("\(event.level) \(event.message) \(event.metadata ?? [:])") }
    }
}
