import Foundation
import SwarmCore
import Testing

@testable import Worker

/// Files fetched as byte ranges over several connections: the layout of the ranges, their resumption after a cut
/// and after a restart, the caps on connections, and the checks around them.
@Suite struct RangedDownloadTests {
    /// 3 MiB: with 4 connections and 256 KiB minimum ranges (the test helper's), 12 ranges of 256 KiB.
    /// A GGUF diffusion model (its header is checked once downloaded) of exactly 3 MiB, so that ranges divide it evenly.
    static let model = withGGUFHeader(testBytes(count: 3 << 20, seed: 5))
    static let rangeSize = 256 << 10

    /// `bytes=a-b` as (a, b).
    static func bounds(_ range: String?) -> (Int, Int)? {
        guard let range, range.hasPrefix("bytes=") else { return nil }
        let parts = range.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let start = Int(parts[0]), let end = Int(parts[1]) else { return nil }
        return (start, end)
    }

    @Test func planCutsTheFileIntoRangesAndCountsAPrefixAsDone() {
        let plan = SegmentPlan(url: "u", total: 10_000, prefix: 2_500, connections: 2, minimum: 1_000, maximum: 4_000)
        #expect(plan.segments.map(\.start) == Array(stride(from: 0, to: 10_000, by: 1_250)))
        #expect(plan.segments.last?.end == 10_000)
        #expect(plan.segments.map(\.done) == [1_250, 1_250, 0, 0, 0, 0, 0, 0])
        #expect(plan.done == 2_500 && plan.contiguousPrefix == 2_500 && plan.isConsistent)

        var grown = plan
        grown.segments[3].done = 1_250
        grown.segments[2].done = 100
        #expect(grown.contiguousPrefix == 2_600)
        #expect(SegmentPlan(url: "u", total: 10_000, prefix: 0, connections: 64, minimum: 3_000, maximum: 4_000).segments.count == 4)
        #expect(SegmentPlan(url: "u", total: 1 << 40, prefix: 0, connections: 2, minimum: 1, maximum: 1 << 30).segments.count == 1024)

        var broken = plan
        broken.segments[1].start += 1
        #expect(!broken.isConsistent)
    }

    @Test func rangesDownloadInParallelUpToTheConnectionsOfAFile() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let entries = [entry("model.gguf", url: servers.a + "/slow/model.gguf", bytes: Self.model, sha256: sha256Hex(Self.model))]
            let reports = ProgressLog()
            _ = try await provision(entries, into: folder, connections: 4, progress: { await reports.add($0) })
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)
            #expect(!folder.exists("diffusion_models/model.gguf.partial"))
            #expect(!folder.exists("diffusion_models/model.gguf.partial.segments"))

            let ranges = await servers.log.requests.map(\.range)
            #expect(ranges.first == "bytes=0-")
            let fetched = ranges.dropFirst().compactMap(Self.bounds).sorted { $0.0 < $1.0 }
            #expect(fetched.map(\.0) == Array(stride(from: 0, to: Self.model.count, by: Self.rangeSize)))
            #expect(fetched.allSatisfy { $0.1 == $0.0 + Self.rangeSize - 1 })
            let most = await servers.log.mostRangesInFlight
            #expect(most == 4, "\(most)")
            let done = await reports.reports.map(\.done)
            #expect(done == done.sorted())
            #expect(await reports.reports.last?.percent == 100)
        }
    }

    @Test func theTotalCapHoldsAcrossFiles() async throws {
        let folder = try ModelsFolder()
        let other = withGGUFHeader(testBytes(count: 2 << 20, seed: 6))
        try await TestFileServers.withServers(files: ["model.gguf": Self.model, "other.gguf": other]) { servers in
            let entries = [
                entry("model.gguf", url: servers.a + "/slow/model.gguf", bytes: Self.model, sha256: sha256Hex(Self.model)),
                entry("other.gguf", url: servers.a + "/slow/other.gguf", bytes: other, sha256: sha256Hex(other)),
            ]
            _ = try await provision(entries, into: folder, connections: 4, totalConnections: 5)
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)
            #expect(folder.contents("diffusion_models/other.gguf") == other)
            let most = await servers.log.mostRangesInFlight
            #expect(most == 5, "\(most)")
        }
    }

    @Test func aRangeCutMidwayResumesWhereItStopped() async throws {
        let folder = try ModelsFolder()
        let cutAt = 5 * Self.rangeSize
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            await servers.log.cutRange("model.gguf", at: cutAt)
            let entries = [entry("model.gguf", url: servers.a + "/files/model.gguf", bytes: Self.model, sha256: sha256Hex(Self.model))]
            _ = try await provision(entries, into: folder, connections: 4)
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)

            let fetched = await servers.log.requests.dropFirst().compactMap { Self.bounds($0.range) }
            let rangeEnd = cutAt + Self.rangeSize - 1
            // The cut range was asked for once whole, then once from where its bytes stopped, to the same end.
            #expect(fetched.filter { $0 == (cutAt, rangeEnd) }.count == 1)
            let resumed = fetched.filter { $0.1 == rangeEnd && $0.0 != cutAt }
            #expect(resumed.count == 1)
            #expect(resumed.allSatisfy { $0.0 > cutAt && $0.0 < rangeEnd })
            // No other range was fetched twice.
            #expect(fetched.count == Self.model.count / Self.rangeSize + 1)
        }
    }

    @Test func aRestartResumesEveryRangeFromTheStateOnTheVolume() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let url = servers.a + "/files/model.gguf"
            // What a worker killed mid-download leaves: a preallocated partial, each range filled to its own point.
            var plan = SegmentPlan(
                url: url,
                total: Int64(Self.model.count),
                prefix: 0,
                connections: 4,
                minimum: Int64(Self.rangeSize),
                maximum: 1 << 30
            )
            var partial = [UInt8](repeating: 0, count: Self.model.count)
            for index in plan.segments.indices {
                let segment = plan.segments[index]
                let done = index % 3 == 0 ? segment.end - segment.start : Int64(index * 10_000)
                plan.segments[index].done = done
                let range = Int(segment.start)..<Int(segment.start + done)
                partial[range] = Self.model[range]
            }
            try folder.write("diffusion_models/model.gguf.partial", partial)
            try folder.write("diffusion_models/model.gguf.partial.segments", Array(try JSONEncoder().encode(plan)))
            let statuses = ModelProvisioner.status(
                of: ModelManifest(models: [entry("model.gguf", url: url, bytes: Self.model)]),
                modelsRoot: folder.models
            )
            #expect(statuses.map(\.status) == [.partial(bytes: plan.done)])

            let entries = [entry("model.gguf", url: url, bytes: Self.model, sha256: sha256Hex(Self.model))]
            _ = try await provision(entries, into: folder, connections: 4)
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)
            #expect(!folder.exists("diffusion_models/model.gguf.partial.segments"))

            // No probe, no range twice: each unfinished range is asked for from its own saved point, nothing else.
            let fetched = await servers.log.requests.map { Self.bounds($0.range) }
            let expected = plan.segments.filter { !$0.isComplete }.map { (Int($0.next), Int($0.end) - 1) }
            #expect(fetched.compactMap { $0 }.sorted { $0.0 < $1.0 }.map { [$0.0, $0.1] } == expected.map { [$0.0, $0.1] })
            #expect(fetched.count == expected.count)
        }
    }

    @Test func anInterruptedDownloadLeavesStateTheNextRunResumes() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let entries = [entry("model.gguf", url: servers.a + "/slow/model.gguf", bytes: Self.model, sha256: sha256Hex(Self.model))]
            let interrupted = Task {
                try await provision(entries, into: folder, connections: 2, progress: { _ in })
            }
            // The slow route holds each range 300 ms before its last byte: stop while ranges are open.
            try await Task.sleep(for: .milliseconds(700))
            interrupted.cancel()
            _ = await interrupted.result
            let saved = try #require(SegmentPlan.load(folder.models + "/diffusion_models/model.gguf.partial.segments"))
            #expect(saved.done > 0 && !saved.isComplete)
            // A range request the cancelled run had already sent can reach the server after the run returned: let the
            // log settle, so that only the next run's requests count as resumed.
            var before = await servers.log.requests.count
            while true {
                try await Task.sleep(for: .milliseconds(300))
                let now = await servers.log.requests.count
                if now == before { break }
                before = now
            }

            _ = try await provision(entries, into: folder, connections: 2)
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)
            let resumed = await servers.log.requests.dropFirst(before).compactMap { Self.bounds($0.range) }
            #expect(resumed.count == saved.remainingSegments)
            #expect(Set(resumed.map(\.0)) == Set(saved.segments.filter { !$0.isComplete }.map { Int($0.next) }))
        }
    }

    @Test func aServerThatGivesNoSizeGetsOneStream() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let entries = [entry("model.gguf", url: servers.a + "/nolength/model.gguf", bytes: Self.model, sha256: sha256Hex(Self.model))]
            _ = try await provision(entries, into: folder, connections: 4)
            #expect(folder.contents("diffusion_models/model.gguf") == Self.model)
            // No size, no ranges: the answer to the first request is the whole download.
            #expect(await servers.log.requests.map(\.range) == ["bytes=0-"])
            #expect(!folder.exists("diffusion_models/model.gguf.partial.segments"))
        }
    }

    @Test func aChecksumMismatchIsRejectedAndLeavesNothingBehind() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            let wrong = String(repeating: "cd", count: 32)
            let entries = [entry("model.gguf", url: servers.a + "/files/model.gguf", bytes: Self.model, sha256: wrong)]
            let error = await #expect(throws: ModelProvisioningError.self) {
                try await provision(entries, into: folder, maxAttempts: 2, connections: 4)
            }
            guard case .gaveUp(_, 2, .checksumMismatch(_, let expected, let actual))? = error else {
                Issue.record("expected a checksum mismatch, got \(String(describing: error))")
                return
            }
            #expect(expected == wrong && actual == sha256Hex(Self.model))
            #expect(!folder.exists("diffusion_models/model.gguf"))
            #expect(!folder.exists("diffusion_models/model.gguf.partial"))
            #expect(!folder.exists("diffusion_models/model.gguf.partial.segments"))
            // Both attempts fetched every range.
            #expect(await servers.log.requests.count == 2 * (Self.model.count / Self.rangeSize + 1))
        }
    }

    @Test func aFileLargerThanTheDiskIsRefusedBeforeAnyByteIsWritten() async throws {
        let folder = try ModelsFolder()
        try await TestFileServers.withServers(files: ["model.gguf": Self.model]) { servers in
            // The manifest's estimate fits; the server's real size does not.
            var model = entry("model.gguf", url: servers.a + "/files/model.gguf", bytes: Self.model)
            model.sizeBytes = 1_000
            let error = await #expect(throws: ModelProvisioningError.self) {
                try await provision([model], into: folder, freeSpace: { _ in 2_000_000 }, connections: 4)
            }
            guard case .notEnoughDisk(_, let needed, 2_000_000, 1)? = error else {
                Issue.record("expected notEnoughDisk, got \(String(describing: error))")
                return
            }
            #expect(needed == Int64(Self.model.count))
            #expect(!folder.exists("diffusion_models/model.gguf.partial"))
            #expect(!folder.exists("diffusion_models/model.gguf.partial.segments"))
            #expect(await servers.log.requests.map(\.range) == ["bytes=0-"])
        }
    }
}

/// `bytes` with its start overwritten by a GGUF header naming Wan, its size unchanged.
func withGGUFHeader(_ bytes: [UInt8]) -> [UInt8] {
    let header = ggufBytes(architecture: "wan")
    var result = bytes
    result.replaceSubrange(0..<header.count, with: header)
    return result
}
