import Crypto
import Foundation
import NIOCore
import SwarmCore
import Synchronization

@testable import Storage

/// Deterministic bytes in 64 KiB chunks, produced on demand (never held whole), that can be told to break
/// after some bytes on its first openings, like a SwarmUI download that drops. Chunk `n` is a fixed pseudo-random
/// block stamped with `n`, so any reordering or repetition changes the SHA-256.
struct TestBytes: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    static let chunkSize = 65_536
    static let block: [UInt8] = (0..<chunkSize).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }

    let size: Int
    let failAfter: Int?

    /// `count` bytes of chunk `index` (the stamp first, then the block).
    static func chunk(_ index: Int, count: Int) -> ByteBuffer {
        var buffer = ByteBuffer(bytes: block[0..<count])
        withUnsafeBytes(of: UInt64(index).littleEndian) { stamp in
            buffer.setBytes(stamp.prefix(Swift.min(8, count)), at: 0)
        }
        return buffer
    }

    var sha256: String {
        var hasher = SHA256()
        var offset = 0
        while offset < size {
            let count = Swift.min(Self.chunkSize, size - offset)
            Self.chunk(offset / Self.chunkSize, count: count).withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            offset += count
        }
        return hasher.finalize().hexString
    }

    struct SourceBroke: Error {}

    struct AsyncIterator: AsyncIteratorProtocol {
        let size: Int
        let failAfter: Int?
        var offset = 0

        mutating func next() async throws -> ByteBuffer? {
            if let failAfter, offset >= failAfter { throw SourceBroke() }
            guard offset < size else { return nil }
            var count = Swift.min(TestBytes.chunkSize, size - offset)
            if let failAfter { count = Swift.min(count, failAfter - offset) }
            let buffer = TestBytes.chunk(offset / TestBytes.chunkSize, count: count)
            offset += count
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(size: size, failAfter: failAfter) }
}

/// A value of /proc/self/status in KiB (`VmRSS`, `VmHWM`), on Linux.
func processStatusKiB(_ field: String) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    let line = status.split(separator: "\n").first { $0.hasPrefix(field + ":") }
    return line?.split(separator: " ").dropFirst().first.flatMap { Int($0) }
}

/// Opens `TestBytes`, broken on the first `failures` openings; counts the openings.
final class FlakySource: Sendable {
    let size: Int
    let failures: Int
    let failAfter: Int
    private let openings = Mutex(0)

    init(size: Int, failures: Int = 0, failAfter: Int = 0) {
        self.size = size
        self.failures = failures
        self.failAfter = failAfter
    }

    var opened: Int { openings.withLock { $0 } }

    func open() -> TestBytes {
        let count = openings.withLock { value -> Int in
            value += 1
            return value
        }
        return TestBytes(size: size, failAfter: count <= failures ? failAfter : nil)
    }
}

/// Runs a program and returns its standard output; fails when it exits non-zero.
func run(_ executable: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw RunFailure(description: "\(executable) \(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(errorText)")
    }
    return String(decoding: data, as: UTF8.self)
}

struct RunFailure: Error, CustomStringConvertible {
    var description: String
}

/// The repository's root, for scripts and the project-local .venv.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
