import Foundation
import SwarmCore
import Testing
import VastAI
import VastAIEmulator
import VastAITestSupport

/// The emulator runs what vast would run for a create request, and no more: the image's ENTRYPOINT only under run
/// type `args`, otherwise only the on-start script, with the request's env reaching it only through `/etc/environment`.
@Suite(.serialized) struct EmulatedInstanceTests {
    /// A shell image: its CMD and on-start script print what they see and leave a detached process behind.
    static func configuration(directory: URL) -> VastAIEmulator.Configuration {
        let image = EmulatedImage(
            cmd: ["/bin/sh", "-c", "echo cmd-ran greeting=$GREETING request=$FROM_REQUEST port=$APP_PORT; setsid sleep 300 & wait"],
            env: ["GREETING": "from-image", "VOLUME": "/workspace/data"],
            paths: ["/opt/app/start.sh": directory.appendingPathComponent("start.sh").path],
            portVariables: ["APP_PORT": 9000]
        )
        return VastAIEmulator.Configuration(
            nullAfterCreate: .zero,
            createdTime: .zero,
            loadingTime: .milliseconds(100),
            rebootTime: .milliseconds(50),
            logUploadDelay: .zero,
            images: ["shell:1": image],
            instancesDirectory: directory.appendingPathComponent("instances").path,
            templates: [
                [
                    "hash_id": "t-onstart", "image": "shell", "tag": "1", "runtype": "ssh", "onstart": "bash /opt/app/start.sh",
                    "env": "-e FROM_TEMPLATE=yes -p 9000:9000",
                ]
            ]
        )
    }

    static func withEmulator(_ body: (RunningVastAIEmulator, VastAIClient, URL) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("emulated-instances-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // The on-start script as the image holds it: prints what it sees, detaches a process, returns.
        try """
        #!/usr/bin/env bash
        set -a; . "$SWARM_ENV_FILE"; set +a
        echo "onstart-ran request=${FROM_REQUEST:-unset} template=${FROM_TEMPLATE:-unset} greeting=${GREETING:-unset}"
        setsid sleep 300 < /dev/null > /dev/null 2>&1 &
        """.write(to: directory.appendingPathComponent("start.sh"), atomically: true, encoding: .utf8)
        try await withVast(configuration(directory: directory)) { running, client in try await body(running, client, directory) }
    }

    /// Processes whose working directory is in the instance's volume.
    static func processes(of instance: Int, in directory: URL) -> [Int32] {
        let volume = directory.appendingPathComponent("instances/\(instance)/workspace").resolvingSymlinksInPath().path
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"))?.hasPrefix(volume) == true
        }
    }

    static func log(_ client: VastAIClient, _ id: Int, containing text: String) async throws -> String {
        try await eventuallyValue("the container log to show '\(text)'") {
            let log = try await client.logs(id: id)
            return log.contains(text) ? log : nil
        }
    }

    @Test func runTypeArgsRunsTheImagesCommandWithItsEnvAndTheRequests() async throws {
        try await Self.withEmulator { running, client, directory in
            let created = try await client.createInstance(
                offerID: 1001,
                CreateInstanceRequest(source: .image("shell:1"), diskGB: 20, env: ["FROM_REQUEST": "yes", "-p 9000:9000": "1"], runtype: "args")
            )
            let log = try await Self.log(client, created.id, containing: "cmd-ran")
            #expect(log.contains("greeting=from-image request=yes port="))
            // The published container port maps to the host port the process got.
            let record = try #require(try await client.instance(id: created.id))
            let hostPort = try #require(record.ports["9000/tcp"]?.first?.hostPort)
            #expect(log.contains("port=\(hostPort)"))
            #expect(!Self.processes(of: created.id, in: directory).isEmpty)

            // Destroying ends every process of the container, the detached one included.
            try await client.destroyInstance(id: created.id)
            _ = try await eventuallyValue("the container's processes to end") { Self.processes(of: created.id, in: directory).isEmpty ? true : nil }
        }
    }

    @Test func runTypeSSHRunsOnlyTheOnStartScriptAndNoScriptMeansNothingRuns() async throws {
        try await Self.withEmulator { running, client, directory in
            let withScript = try await client.createInstance(
                offerID: 1001,
                CreateInstanceRequest(
                    source: .image("shell:1"),
                    diskGB: 20,
                    env: ["FROM_REQUEST": "yes"],
                    onstart: "bash /opt/app/start.sh",
                    runtype: "ssh_direc ssh_proxy"
                )
            )
            let log = try await Self.log(client, withScript.id, containing: "onstart-ran")
            // The image's ENV is not the script's; the request's env arrives through /etc/environment only.
            #expect(log.contains("onstart-ran request=yes template=unset greeting=unset"))
            #expect(!log.contains("cmd-ran"))

            // No on-start script: vast's entrypoint runs nothing of the image's.
            let bare = try await client.createInstance(offerID: 1002, CreateInstanceRequest(source: .image("shell:1"), diskGB: 20))
            _ = try await eventuallyValue("the bare instance running") { await running.emulator.containerRunning(instance: bare.id) ? true : nil }
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await client.logs(id: bare.id).isEmpty)

            // A reboot ends the processes and runs the script again.
            try await client.rebootInstance(id: withScript.id)
            _ = try await eventuallyValue("the script run twice") {
                try await client.logs(id: withScript.id).components(separatedBy: "onstart-ran").count == 3 ? true : nil
            }
        }
    }

    @Test func aTemplatesRunTypeOnStartAndEnvApplyAndAreReadable() async throws {
        try await Self.withEmulator { running, client, _ in
            let template = try #require(try await client.template(hashID: "t-onstart"))
            #expect(template["runtype"] == "ssh" && template["onstart"] == "bash /opt/app/start.sh")
            #expect(try await client.template(hashID: "nope") == nil)
            let created = try await client.createInstance(
                offerID: 1001,
                CreateInstanceRequest(source: .template(hashID: "t-onstart"), diskGB: 20, env: ["FROM_REQUEST": "r"])
            )
            let log = try await Self.log(client, created.id, containing: "onstart-ran")
            #expect(log.contains("request=r template=yes"))
        }
    }

    @Test func aStoppedInstanceRunsNothingUntilStarted() async throws {
        try await Self.withEmulator { running, client, directory in
            let created = try await client.createInstance(
                offerID: 1001,
                CreateInstanceRequest(source: .image("shell:1"), diskGB: 20, runtype: "args")
            )
            _ = try await Self.log(client, created.id, containing: "cmd-ran")
            await running.emulator.setStopped(true, instance: created.id)
            _ = try await eventuallyValue("the container's processes to end") { Self.processes(of: created.id, in: directory).isEmpty ? true : nil }
            #expect(try await client.instance(id: created.id)?.actualStatus?.description == "stopped")
            await running.emulator.setStopped(false, instance: created.id)
            _ = try await eventuallyValue("the command run again") {
                try await client.logs(id: created.id).components(separatedBy: "cmd-ran").count == 3 ? true : nil
            }
        }
    }
}

struct TimedOut: Error, CustomStringConvertible {
    var description: String
}

/// Polls `check` until it gives a value; fails naming `what` after `timeout`.
func eventuallyValue<T>(_ what: String, timeout: Duration = .seconds(20), _ check: () async throws -> T?) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let value = try await check() { return value }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TimedOut(description: "timed out waiting for \(what)")
}
