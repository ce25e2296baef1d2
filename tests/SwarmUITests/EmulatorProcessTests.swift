import Foundation
import Testing

/// The stand-alone emulator as the worker's supervisor sees it: one listening line, exit 0 on SIGTERM.
@Suite("swarmui-emulator process")
struct EmulatorProcessTests {
    static let binary = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug/swarmui-emulator")

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: binary.path), "swarmui-emulator is not built"))
    func printsItsAddressAndExitsOnSIGTERM() async throws {
        let process = Process()
        process.executableURL = Self.binary
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("swarmui-proc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        process.arguments = ["--launch_mode", "none", "--host", "127.0.0.1", "--port", "0", "--data-dir", root.path]
        let stdout = Pipe()
        process.standardOutput = stdout
        try process.run()
        var line = ""
        while !line.hasSuffix("\n") {
            let byte = stdout.fileHandleForReading.readData(ofLength: 1)
            guard !byte.isEmpty else { break }
            line += String(decoding: byte, as: UTF8.self)
        }
        let match = try #require(line.wholeMatch(of: /SwarmUI emulator listening on http:\/\/127\.0\.0\.1:(\d+)\n/))
        #expect(Int(match.1).map { $0 > 0 } == true)
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0)
    }
}
