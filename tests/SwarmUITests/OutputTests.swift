import Crypto
import Foundation
import NIOCore
import SwarmCore
@testable import SwarmUI
import SwarmUIEmulator
import Testing

@Suite("Outputs")
struct OutputTests {
    @Test func largeOutputIsStreamedWithTheRightBytes() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("swarmui-large-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let size = 24 << 20
        try await withEmulatorClient(.init(largeOutputBytes: size, dataDirectory: root)) { _, client in
            let outputs = try await client.generate(request()) { _ in }
            let output = try await client.fetchOutput(outputs[0].reference)
            #expect(output.length == Int64(size))
            var hash = SHA256()
            var count = 0
            var chunks = 0
            var largest = 0
            for try await chunk in output.body {
                chunks += 1
                largest = max(largest, chunk.readableBytes)
                count += chunk.readableBytes
                hash.update(data: Data(chunk.readableBytesView))
            }
            #expect(count == size)
            // Streamed: many pieces, none close to the whole file.
            #expect(chunks > 8 && largest < size / 4)
            let onDisk = root + "/Output/local/" + outputs[0].reference.dropFirst("View/local/".count)
            let expected = SHA256.hash(data: try Data(contentsOf: URL(fileURLWithPath: onDisk)))
            #expect(hash.finalize() == expected)
        }
    }

    @Test func deleteOutputRemovesTheSavedFileAndNamesAMissingOne() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("swarmui-delete-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try await withEmulatorClient(.init(dataDirectory: root)) { _, client in
            let outputs = try await client.generate(request(["overrideoutpathformat": "jobs/a b,c-[batch_id]"])) { _ in }
            let reference = try #require(outputs.first?.reference)
            let onDisk = root + "/Output/local/" + reference.dropFirst("View/local/".count)
            #expect(FileManager.default.fileExists(atPath: onDisk))
            try await client.deleteOutput(reference)
            #expect(!FileManager.default.fileExists(atPath: onDisk))
            // SwarmUI answers 200 with an error for a file that is not there: the client throws it.
            let error = await #expect(throws: SwarmUIError.self) { try await client.deleteOutput(reference) }
            #expect(error?.description.contains("does not exist") == true)
            // A data URL was never saved: nothing to delete, no call made.
            try await client.deleteOutput("data:image/png;base64,AAAA")
        }
    }

    @Test func deleteRefusesPathsOutsideTheOutputFolder() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("swarmui-escape-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/Output/local", withIntermediateDirectories: true)
        let outside = root + "/keep.txt"
        #expect(FileManager.default.createFile(atPath: outside, contents: Data("x".utf8)))
        try await withEmulatorClient(.init(dataDirectory: root)) { _, client in
            for path in ["../../keep.txt", "/\(outside)"] {
                let error = await #expect(throws: SwarmUIError.self) { _ = try await client.call("DeleteImage", ["path": .string(path)]) }
                #expect(error?.description.contains("Invalid path") == true, "\(path): \(String(describing: error))")
            }
        }
        #expect(FileManager.default.fileExists(atPath: outside))
    }

    @Test func deletePathsAreRelativeToTheUsersOutputFolder() {
        #expect(SwarmUIClient.outputPath(of: "View/local/jobs/a b,c-0.png") == "jobs/a b,c-0.png")
        #expect(SwarmUIClient.outputPath(of: "/View/someone/raw/2026-12-01/x.mp4") == "raw/2026-12-01/x.mp4")
        // SwarmUI with AppendUserNameToOutputPath off sends Output/<path>.
        #expect(SwarmUIClient.outputPath(of: "Output/raw/x.png") == "raw/x.png")
        #expect(SwarmUIClient.outputPath(of: "data:image/png;base64,AAAA") == nil)
    }

    @Test func dataURLOutputsDecode() async throws {
        try await withEmulatorClient { _, client in
            let outputs = try await client.generate(request(["donotsave": true])) { _ in }
            let reference = try #require(outputs.first?.reference)
            #expect(outputs[0].isDataURL && reference.hasPrefix("data:image/png;base64,"))
            let output = try await client.fetchOutput(reference)
            #expect(output.contentType == "image/png" && output.length == 4096)
            let (bytes, chunks, _) = try await drain(output)
            #expect(bytes.count == 4096 && chunks == 1)
            #expect(Array(bytes.prefix(8)) == pngSignature)
        }
    }

    @Test func plainAndTypelessDataURLsDecode() async throws {
        let plain = try SwarmUIClient.decodeDataURL("data:,hello%20world")
        #expect(plain.contentType == "text/plain" && plain.length == 11)
        #expect(try await drain(plain).bytes == Array("hello world".utf8))
        let typeless = try SwarmUIClient.decodeDataURL("data:;base64,aGk=")
        #expect(typeless.contentType == "text/plain")
        #expect(try await drain(typeless).bytes == Array("hi".utf8))
        #expect(throws: SwarmUIError.self) { try SwarmUIClient.decodeDataURL("data:image/png;base64") }
    }

    @Test func pathsWithSpacesCommasAndPercentAreEncoded() async throws {
        #expect(
            SwarmUIClient.percentEncodePath("View/local/raw/a red fox, 100% é+x.png")
                == "View/local/raw/a%20red%20fox%2C%20100%25%20%C3%A9%2Bx.png"
        )
        try await withEmulatorClient { _, client in
            let outputs = try await client.generate(request(["prompt": "a red fox, 100% snow & ice"])) { _ in }
            let reference = outputs[0].reference
            #expect(reference.contains(" ") && reference.contains(",") && reference.contains("%"))
            let (bytes, _, _) = try await drain(try await client.fetchOutput(reference))
            #expect(bytes.count == 4096)
        }
    }

    @Test func missingOutputIsA404() async throws {
        try await withEmulatorClient { _, client in
            let error = await expectSwarmUIError(.httpStatus(404)) { _ = try await client.fetchOutput("View/local/raw/none.png") }
            #expect(error?.isRetryable == false)
        }
    }
}
