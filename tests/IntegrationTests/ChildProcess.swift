import Synchronization
import Testing

import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real child process for whole-program tests: its output collected line by line, signals, exit status.
final class ChildProcess: Sendable {
    let name: String
    private let process: Process
    private let buffer = OutputBuffer()

    init(_ name: String, executable: String, arguments: [String] = [], environment: [String: String] = [:], inheritEnvironment: Bool = true) throws {
        self.name = name
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = inheritEnvironment ? ProcessInfo.processInfo.environment : [:]
        env.merge(environment) { _, new in new }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let buffer = buffer, name = name
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            guard !data.isEmpty else { return }
            let complete = buffer.append(data)
            if ProcessInfo.processInfo.environment["SWARM_TEST_VERBOSE"] != nil {
                for line in complete { print("[\(name)] \(line)") }
            }
        }
        try process.run()
    }

    var output: [String] { buffer.lines }
    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Waits for a line containing `text` and returns it.
    @discardableResult
    func waitForLine(containing text: String, timeout: Duration = .seconds(60)) async throws -> String {
        try await poll("a line containing '\(text)'", timeout: timeout) {
            self.output.first { $0.contains(text) }
        }
    }

    /// The port `swarmctl serve` listens on, from its "listening on" line.
    func servePort() async throws -> Int {
        let line = try await waitForLine(containing: "swarmctl serve: listening on")
        let afterHost = try #require(line.range(of: "127.0.0.1:")).upperBound
        return try #require(Int(line[afterHost...].prefix { $0.isNumber }))
    }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits until the process exits and returns its status (the signal number for a signal death).
    func waitForExit(timeout: Duration = .seconds(60)) async throws -> Int32 {
        try await poll("exit", timeout: timeout) { self.process.isRunning ? nil : self.process.terminationStatus }
    }

    /// Kills the process if it still runs (test teardown).
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    func poll<T>(_ what: String, timeout: Duration, every interval: Duration = .milliseconds(50), _ check: () async throws -> T?) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let value = try await check() { return value }
            try await Task.sleep(for: interval)
        }
        throw TimedOut(what: "\(name): \(what) within \(timeout); last output:\n" + output.suffix(30).joined(separator: "\n"))
    }
}

/// A child's output split into lines as it arrives.
private final class OutputBuffer: Sendable {
    private let state = Mutex<(lines: [String], partial: String)>(([], ""))

    /// Adds a chunk and returns the lines it completed.
    func append(_ data: Data) -> [String] {
        state.withLock { state in
            state.partial += String(decoding: data, as: UTF8.self)
            var parts = state.partial.components(separatedBy: "\n")
            state.partial = parts.removeLast()
            state.lines.append(contentsOf: parts)
            return parts
        }
    }

    var lines: [String] { state.withLock { $0.lines } }
}

struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}

/// Polls a condition outside any process.
func eventually<T>(_ what: String, timeout: Duration = .seconds(60), _ check: () async throws -> T?) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let value = try await check() { return value }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TimedOut(what: what)
}

enum Paths {
    /// The repository root, from this file's place in it.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Where SwiftPM put the built executables: beside the test bundle.
    static let binaries: URL = {
        if let dir = ProcessInfo.processInfo.environment["SWARM_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent("swarm-worker").path), dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir
    }()

    static func binary(_ name: String) -> String { binaries.appendingPathComponent(name).path }

    static func temporaryDirectory(_ prefix: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}
