import Foundation
import LoopbackServer
import SwarmCore

#if canImport(Glibc)
import Glibc
#endif

/// What an image holds, so that an instance created from it runs what a vast.ai container would run: under run type
/// `args` the ENTRYPOINT and CMD with the image's ENV and the create request's env; under `ssh`, `jupyter` or no run
/// type only the `onstart` script, with neither (vast's own entrypoint replaces the image's, and the env reaches the
/// script only through `/etc/environment`; vastai.md §1.5).
///
/// The image's files are this machine's: `paths` maps an image path to the file that stands for it, and is applied to
/// the command words and the onstart text. `/workspace` is each instance's own directory.
public struct EmulatedImage: Sendable, Codable, Hashable {
    public var entrypoint: [String]
    public var cmd: [String]
    /// The image's ENV. `/workspace` in a value becomes the instance's volume.
    public var env: [String: String]
    /// Image path → the file standing for it here, e.g. `/opt/swarm/onstart.sh` → the repo's `scripts/onstart.sh`.
    /// Paths under `/usr/local/bin/` are also put on the container's PATH under their own names.
    public var paths: [String: String]
    /// Env variables naming a port the image's processes listen on, with the container port. All instances share
    /// this machine's network, so each container start gets a free host port in the variable instead, and vast's
    /// `ports` map the container port to it, as docker's `-p` would.
    public var portVariables: [String: Int]
    /// What the image's onstart-time env file holds (the Dockerfile writes `/opt/swarm/image.env`); the container gets
    /// its path in `fileVariable`.
    public var envFile: EnvFile?

    public struct EnvFile: Sendable, Codable, Hashable {
        /// The variable a script reads the file's path from (`SWARM_IMAGE_ENV`).
        public var fileVariable: String
        /// Which of `env` the file lists.
        public var names: [String]
    }

    public init(
        entrypoint: [String] = [],
        cmd: [String],
        env: [String: String] = [:],
        paths: [String: String] = [:],
        portVariables: [String: Int] = [:],
        envFile: EnvFile? = nil
    ) {
        self.entrypoint = entrypoint
        self.cmd = cmd
        self.env = env
        self.paths = paths
        self.portVariables = portVariables
        self.envFile = envFile
    }

    enum CodingKeys: String, CodingKey {
        case entrypoint, cmd, env, paths
        case portVariables = "port_variables"
        case envFile = "env_file"
    }
}

extension EmulatedImage.EnvFile {
    enum CodingKeys: String, CodingKey {
        case fileVariable = "file_variable"
        case names
    }
}

/// One start of an instance's container: its processes run in a PID namespace of their own (`unshare`), so that, as
/// with docker, ending the container's first process ends every process it started, detached ones included.
/// `@unchecked`: `Process` is only read (`isRunning`, `processIdentifier`) after `run()`, which is thread-safe.
final class EmulatedContainer: @unchecked Sendable {
    /// Container port → host port, for vast's `ports`.
    let hostPorts: [Int: Int]
    let consolePath: String
    private let process: Process

    private init(process: Process, hostPorts: [Int: Int], consolePath: String) {
        self.process = process
        self.hostPorts = hostPorts
        self.consolePath = consolePath
    }

    /// How the container is started, as vast decides it from the create request.
    struct Launch: Sendable {
        var image: EmulatedImage
        /// The create request's (or template's) run type; nil: vast's default, `ssh`.
        var runtype: String?
        var onstart: String?
        var args: [String]?
        /// Env vars from the create request (docker flags already removed).
        var env: [String: String]
        var instanceID: Int
        /// The instance's directory: `workspace/` (the volume, kept across restarts), `console.log`, the env files.
        var directory: String
    }

    /// Starts the container; `onExit` gets the first process's status when it ends (on its own or killed).
    static func start(_ launch: Launch, onExit: @escaping @Sendable (Int32) -> Void) throws -> EmulatedContainer {
        let fileManager = FileManager.default
        let directory = launch.directory
        let workspace = directory + "/workspace"
        let binDirectory = directory + "/image-bin"
        for folder in [workspace, binDirectory, directory + "/etc"] {
            try fileManager.createDirectory(atPath: folder, withIntermediateDirectories: true)
        }
        let image = launch.image
        var hostPorts: [Int: Int] = [:]
        var imageEnv = image.env.mapValues { Self.mapVolume($0, workspace: workspace) }
        for (variable, containerPort) in image.portVariables.sorted(by: { $0.key < $1.key }) {
            let port = try freeLoopbackPort()
            hostPorts[containerPort] = port
            imageEnv[variable] = String(port)
        }
        for (imagePath, hostPath) in image.paths where imagePath.hasPrefix("/usr/local/bin/") {
            let link = binDirectory + "/" + (imagePath as NSString).lastPathComponent
            try? fileManager.removeItem(atPath: link)
            try fileManager.createSymbolicLink(atPath: link, withDestinationPath: hostPath)
        }
        let basePath = binDirectory + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin")
        // What every process of a vast container has.
        let vastEnv = [
            "CONTAINER_ID": String(launch.instanceID), "VAST_CONTAINERLABEL": "C.\(launch.instanceID)", "HOME": workspace,
            "PUBLIC_IPADDR": "127.0.0.1",
        ]

        let command: [String]
        var environment: [String: String]
        if Self.runsArgs(launch) {
            let words = image.entrypoint + (launch.args ?? image.cmd)
            guard !words.isEmpty else { throw EmulatorError("image has neither ENTRYPOINT nor CMD") }
            command = words.map { image.paths[$0] ?? $0 }
            environment = vastEnv.merging(imageEnv) { _, image in image }
            environment["PATH"] = basePath
            environment.merge(launch.env) { _, request in request }
        } else {
            // vast's entrypoint: the onstart script once, then the container stays up (sshd, in the real one).
            var script = launch.onstart ?? ""
            for (imagePath, hostPath) in image.paths.sorted(by: { $0.key.count > $1.key.count }) {
                script = script.replacingOccurrences(of: imagePath, with: hostPath)
            }
            let etcEnvironment = directory + "/etc/environment"
            try launch.env.keys.sorted().map { "\($0)=\"\(launch.env[$0] ?? "")\"" }.joined(separator: "\n")
                .appending("\n").write(toFile: etcEnvironment, atomically: true, encoding: .utf8)
            environment = vastEnv
            environment["PATH"] = basePath
            environment["SWARM_ENV_FILE"] = etcEnvironment
            if let envFile = image.envFile {
                let path = directory + "/etc/image.env"
                try envFile.names.sorted().compactMap { name in imageEnv[name].map { "\(name)=\($0)" } }.joined(separator: "\n")
                    .appending("\n").write(toFile: path, atomically: true, encoding: .utf8)
                environment[envFile.fileVariable] = path
            }
            command = ["/bin/bash", "-c", script + "\nexec sleep infinity"]
        }

        let consolePath = directory + "/console.log"
        if !fileManager.fileExists(atPath: consolePath) { fileManager.createFile(atPath: consolePath, contents: nil) }
        guard let console = FileHandle(forWritingAtPath: consolePath) else { throw EmulatorError("cannot open \(consolePath)") }
        console.seekToEndOfFile()

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        // The first process is PID 1 of its namespace: when it ends, the kernel ends the rest; when unshare is
        // killed, --kill-child takes PID 1 with it.
        var unshare = ["--pid", "--fork", "--mount-proc", "--kill-child"]
        if geteuid() != 0 { unshare = ["--user", "--map-root-user"] + unshare }
        process.arguments = unshare + ["--"] + command
        process.environment = environment
        process.currentDirectoryURL = URL(fileURLWithPath: workspace)
        process.standardOutput = console
        process.standardError = console
        process.standardInput = FileHandle.nullDevice
        process.terminationHandler = { ended in onExit(ended.terminationStatus) }
        try process.run()
        try? console.close()
        return EmulatedContainer(process: process, hostPorts: hostPorts, consolePath: consolePath)
    }

    /// Ends every process of the container at once, as destroying or killing a container does.
    func kill() {
        guard process.isRunning else { return }
        Glibc.kill(process.processIdentifier, SIGKILL)
    }

    var isRunning: Bool { process.isRunning }

    /// Under `args` vast runs the image's ENTRYPOINT; every other run type replaces it with vast's own.
    static func runsArgs(_ launch: Launch) -> Bool {
        (launch.runtype ?? (launch.args == nil ? "ssh" : "args")).split(separator: " ").contains("args")
    }

    private static func mapVolume(_ value: String, workspace: String) -> String {
        value == "/workspace" || value.hasPrefix("/workspace/") ? workspace + value.dropFirst("/workspace".count) : value
    }
}

struct EmulatorError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
