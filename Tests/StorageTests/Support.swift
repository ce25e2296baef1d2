import Crypto
import Foundation
import NIOCore
import Synchronization

@testable import Storage

/// Deterministic bytes in 64 KiB chunks, produced on demand (never held whole), that can be told to break
/// after some bytes on its first openings, like a SwarmUI download that drops.
struct TestBytes: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let size: Int
    let failAfter: Int?

    static func byte(at index: Int) -> UInt8 { UInt8(truncatingIfNeeded: index &* 31 &+ index >> 12) }

    var sha256: String {
        var hasher = SHA256()
        var offset = 0
        while offset < size {
            let count = Swift.min(65_536, size - offset)
            hasher.update(data: (offset..<offset + count).map(Self.byte(at:)))
            offset += count
        }
        return SigV4.hex(hasher.finalize())
    }

    struct SourceBroke: Error {}

    struct AsyncIterator: AsyncIteratorProtocol {
        let size: Int
        let failAfter: Int?
        var offset = 0

        mutating func next() async throws -> ByteBuffer? {
            if let failAfter, offset >= failAfter { throw SourceBroke() }
            guard offset < size else { return nil }
            var count = Swift.min(65_536, size - offset)
            if let failAfter { count = Swift.min(count, failAfter - offset) }
            let buffer = ByteBuffer(bytes: (offset..<offset + count).map(TestBytes.byte(at:)))
            offset += count
            return buffer
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(size: size, failAfter: failAfter) }
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
